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
// Never reads outside [data, data + n); runs in time linear in n (plus the rows' offsets).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "store/chunker.h"

namespace rankfs {

struct ArrowCutOptions {
  uint32_t min_row_piece = 256;      // a row at least this long is a piece of its own
  uint32_t row_group_target = 4096;  // shorter rows are grouped up to this many bytes
  uint32_t min_piece = 64;           // shorter structural pieces merge into a neighbour
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

// The piece lengths (summing to n) of a whole file: FindArrowCuts over the understood prefix,
// where a piece longer than the chunker's max_size is cut again by `cdc`, and `cdc` over the
// rest of the file.
std::vector<size_t> CutArrowOrFastCdc(const uint8_t* data, size_t n, const FastCdc& cdc,
                                      const ArrowCutOptions& options);

}  // namespace rankfs
