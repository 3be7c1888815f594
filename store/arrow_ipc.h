// Cut points for files that hold an Arrow IPC stream, as Hugging Face `datasets` writes its cache
// files, so that the rows a derived table shares with its source (permuted, filtered, copied)
// become equal pieces that deduplicate.
//
// FindArrowCuts reads the stream's framing and message headers with its own FlatBuffers reader
// (no Arrow library) and cuts:
//   - at every message boundary and at the end of each message's header;
//   - at the start of every body buffer;
//   - inside the value buffers of variable-length data (utf8/binary values, and every buffer
//     below a list or fixed-size list), at top-level row boundaries taken from the offsets
//     buffers: a row of at least min_row_piece bytes is a piece of its own, shorter rows are
//     grouped until the group reaches row_group_target bytes;
//   - a structural piece (header, small buffer) shorter than min_piece is merged into a
//     neighbour: the piece before it when that one ends at a structural cut of the same message
//     (so a buffer cut at rows keeps its first row apart), else the piece after it.
// It understands the stream message by message and stops at the first thing it does not fully
// understand: a truncated message (a stream still being written, a truncated file), a
// compressed body, an unknown message or type, offsets that disagree with the buffers, a
// big-endian schema, the Arrow *file* format, ... Bytes after `understood_end` are for the
// caller's fallback (FastCDC). The cuts of a complete message depend only on that message and
// the schema, so a stream that grows keeps the cuts of the messages already there.
//
// ArrowStreamCutter does the same work incrementally, for the write path: it is told a file's
// bytes in order, in any split, and emits each message's cuts as soon as the message is
// complete. FindArrowCuts runs the same per-message code over a whole input, so both give the
// same cuts, understood_end, messages, row_cuts and stop over the same bytes.
//
// Never reads outside [data, data + n); runs in time linear in n (plus the rows' offsets).
// Thread-safety: FindArrowCuts and CutArrowOrFastCdc are pure functions; an ArrowStreamCutter
// is not thread-safe (its owner serializes calls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/chunker.h"

namespace rankfs {

struct ArrowCutOptions {
  uint32_t min_row_piece = 256;      // a row at least this long is a piece of its own
  uint32_t row_group_target = 4096;  // shorter rows are grouped up to this many bytes
  uint32_t min_piece = 64;           // shorter structural pieces merge into a neighbour
  // A message (prefix, header and body) longer than this stops the cutter (kUnsupported) as
  // soon as its header says so, before its body is read: what bounds ArrowStreamCutter's
  // buffer. Unlimited by default; the write path should set it (e.g. 64 MiB).
  uint64_t max_message = UINT64_MAX;
};

enum class ArrowStop {
  kEndOfStream,  // the end-of-stream marker; bytes after it are left to the fallback
  kEndOfInput,   // the input ended exactly at a message boundary, before an end-of-stream marker
  kTruncated,    // the input ends inside a message
  kNotArrow,     // no Arrow IPC stream starts here
  kUnsupported,  // a valid stream using something this reader does not handle
  kMalformed,    // inconsistent headers, offsets or buffers
};

const char* ArrowStopName(ArrowStop s);

struct ArrowCuts {
  // Cuts cover [0, understood_end); 0 when nothing was understood.
  uint64_t understood_end = 0;
  // Strictly increasing, each in (0, understood_end]; the last is understood_end when it is > 0.
  std::vector<uint64_t> cuts;
  uint64_t messages = 0;  // complete messages understood (the end-of-stream marker included)
  uint64_t row_cuts = 0;  // cuts placed at row boundaries
  ArrowStop stop = ArrowStop::kNotArrow;
  std::string detail;  // why it stopped, for logs and tests
};

ArrowCuts FindArrowCuts(const uint8_t* data, size_t n, const ArrowCutOptions& options);

namespace arrow_internal {
class MessageCutter;
}

// Cuts an Arrow IPC stream incrementally: Feed it the stream's bytes in order (any split, from
// one byte to many MiB at a time); it appends the cuts of each message as soon as the message
// is complete. Its cuts, understood_end, messages, row_cuts and stop are exactly FindArrowCuts's
// over the bytes fed (once Finish has been called).
//
// Memory: it keeps the schema (the layout of each field and dictionary, not their bytes) and
// the bytes of the current, incomplete message only; bytes of messages already cut are never
// held. A call that completes messages cuts them in the caller's buffer without copying; only
// an incomplete message's bytes are copied, so the buffer is below the current message's
// length, which is at most options.max_message. While a record batch is cut it also holds its
// node and buffer lists and the top-level row boundaries (8 bytes per row and nesting level,
// kept only when the batch has at most one row per 4 body bytes).
//
// Once stopped() the caller falls back (FastCDC) for the bytes after understood_end(): on
// kEndOfStream the bytes after the marker, on any other stop the message that stopped it and
// everything after it.
class ArrowStreamCutter {
 public:
  explicit ArrowStreamCutter(const ArrowCutOptions& options = {});
  ~ArrowStreamCutter();
  ArrowStreamCutter(ArrowStreamCutter&&) noexcept;
  ArrowStreamCutter& operator=(ArrowStreamCutter&&) noexcept;
  ArrowStreamCutter(const ArrowStreamCutter&) = delete;
  ArrowStreamCutter& operator=(const ArrowStreamCutter&) = delete;

  // Takes the next n bytes of the stream and appends to *cuts (absolute file offsets,
  // increasing across calls) the cuts of every message they complete. Ignores the bytes once
  // stopped(). REQUIRES: Finish has not been called.
  void Feed(const uint8_t* data, size_t n, std::vector<uint64_t>* cuts);

  // The stream ended (e.g. the file is closed): a message left incomplete stops the cutter
  // (kTruncated), as does an empty stream (kNotArrow) or one that ends at a message boundary
  // without the end-of-stream marker (kEndOfInput). Appends any cut it makes to *cuts (none:
  // a message that was complete was cut by Feed). After it, stopped() is true.
  void Finish(std::vector<uint64_t>* cuts);

  bool stopped() const { return stopped_; }
  ArrowStop stop() const;  // why it stopped; meaningful once stopped()
  const std::string& detail() const;
  uint64_t understood_end() const;  // the end of the last message understood
  uint64_t messages() const;        // complete messages understood
  uint64_t row_cuts() const;        // cuts placed at row boundaries
  // How many more bytes must be fed before the current message can be cut: exact once its
  // header has been read, a lower bound before (the prefix and the header come first). 0 once
  // stopped().
  uint64_t needed() const { return stopped_ ? 0 : need_ - buffer_.size(); }
  // Bytes of the current message held (copied) by the cutter.
  size_t buffered() const { return buffer_.size(); }

 private:
  void Release();

  std::unique_ptr<arrow_internal::MessageCutter> core_;
  std::vector<uint8_t> buffer_;  // the current message's first bytes, from understood_end()
  uint64_t need_ = 8;            // bytes of the current message needed before the next step
  bool stopped_ = false;
};

// The piece lengths (summing to n) of a whole file: FindArrowCuts over the understood prefix,
// where a piece longer than the chunker's max_size is cut again by `cdc`, and `cdc` over the
// rest of the file.
std::vector<size_t> CutArrowOrFastCdc(const uint8_t* data, size_t n, const FastCdc& cdc,
                                      const ArrowCutOptions& options);

}  // namespace rankfs
