// StreamChunker: cuts one file's appending byte stream into chunks as its writes arrive.
//
// The cuts are exactly FastCdc::Split of the whole stream, whatever the sizes of the writes
// (a chunk is cut only once max_size bytes past its start are known, or at Finish), which is
// what makes N ranks' copies share their chunks.
//
// Before cutting a chunk it asks the SuccessorTable which chunk followed the previous one in
// other streams. When the guess's bytes are in the chunk cache and equal the next bytes of
// this stream, the chunk is taken as is: no FastCDC scan and no SHA-256 over it. That is
// exactly the chunk FastCDC would have cut, because a content-defined cut depends only on the
// bytes before it (store/fastcdc.cc): equal bytes up to the guessed cut give the same cut and,
// being equal, the same SHA-256. Only cuts that are content-defined are recorded as
// successors (not the last chunk of a stream, whose end is wherever the writer stopped).
//
// Memory and copies: a write is cut in place; only its uncut tail (under max_size bytes, more
// while a guess or claim waits for bytes, up to kMaxWaitBytes: fs/successor_table.h) is copied
// into the buffer, to be joined with the next write. A cut chunk's bytes are copied once into
// their own string; a guessed chunk's are not copied at all.
//
// Thread-safety: none; the owner (an inode, under its lock) serializes calls. The successor
// table and the cache it uses are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/chunk_cache.h"
#include "fs/successor_table.h"
#include "store/chunker.h"
#include "store/types.h"

namespace rankfs {

// One chunk cut from a stream.
struct StreamChunk {
  uint64_t offset = 0;  // of its first byte in the file
  ChunkHash hash;       // its address in the store (scoped in a per-uid store)
  std::shared_ptr<const std::string> bytes;  // its raw bytes (shared with the chunk cache)
  bool predicted = false;  // taken from a confirmed guess: neither scanned nor hashed here
};

class StreamChunker {
 public:
  struct Context {
    const FastCdc* cdc = nullptr;         // required
    SuccessorTable* successors = nullptr;  // null: no guessing
    ChunkCache* cache = nullptr;           // null: no guessing and no cache inserts
  };
  // Bytes buffered while waiting for another stream's claim before hashing them anyway.
  static constexpr size_t kMaxWaitBytes = 4u << 20;

  // A stream whose next byte goes to file offset `start`. `owner` identifies this stream in
  // claims (any value unique among live streams, not 0).
  StreamChunker(const Context& ctx, uint64_t start, uint64_t owner);

  uint64_t start() const { return pos_; }  // first byte not yet in an emitted chunk
  uint64_t end() const { return pos_ + buffered(); }  // where the next Append goes
  size_t buffered() const { return buf_.size() - head_; }

  // Appends `data` at end() and emits (appends to *out) every chunk it completes. `scope` is
  // the uid the store scopes this file's chunk addresses by (nullopt in a global store).
  void Append(std::string_view data, const std::optional<uint32_t>& scope,
              std::vector<StreamChunk>* out);
  // The stream ends at end(): emits the rest.
  void Finish(const std::optional<uint32_t>& scope, std::vector<StreamChunk>* out);
  // Copies the buffered bytes that fall in [off, off + n) to dst (dst[0] is offset off).
  void CopyBuffered(uint64_t off, size_t n, char* dst) const;

  // The last emitted chunk if its end was content-defined (the key for the next guess). A
  // chunker that continues another's stream at its end() may take it over.
  const std::optional<ChunkHash>& last() const { return prev_; }
  void set_last(const std::optional<ChunkHash>& prev) { prev_ = prev; }

  uint64_t predicted_bytes() const { return predicted_bytes_; }
  uint64_t hashed_bytes() const { return hashed_bytes_; }

 private:
  // Emits the chunks that can be decided among the n bytes at p, which are the stream's bytes
  // from start() on (the buffer, or a caller's write in place); with `final`, all of them.
  // Returns how many bytes it emitted.
  size_t Process(const char* p, size_t n, bool final, const std::optional<uint32_t>& scope,
                 std::vector<StreamChunk>* out);
  // Process() over the buffer.
  void ProcessBuffer(bool final, const std::optional<uint32_t>& scope,
                     std::vector<StreamChunk>* out);
  // Tries the guess for the chunk at p[0]. Returns true if it emitted a chunk, false if the
  // chunk must be cut here; sets *wait when the caller should wait for more bytes instead.
  bool TryGuess(const char* p, size_t avail, bool final, std::vector<StreamChunk>* out,
                bool* wait);
  void Emit(size_t len, const ChunkHash& hash, std::shared_ptr<const std::string> bytes,
            bool predicted, bool content_defined, std::vector<StreamChunk>* out);

  const Context ctx_;
  const uint64_t owner_;
  uint64_t pos_;
  std::string buf_;  // the stream's bytes from pos_ - head_ on; the first head_ are emitted
  size_t head_ = 0;
  std::optional<ChunkHash> prev_;
  // The guess being confirmed for the chunk at head_, while its bytes arrive.
  struct Guess {
    SuccessorTable::Next next;
    std::shared_ptr<const std::string> bytes;
    size_t matched = 0;  // bytes already compared equal
  };
  std::optional<Guess> guess_;
  bool no_guess_here_ = false;  // the guess for the chunk at head_ failed: cut it
  uint64_t predicted_bytes_ = 0, hashed_bytes_ = 0;
};

}  // namespace rankfs
