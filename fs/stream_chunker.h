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
// The SHA-256 of a chunk it cuts is not computed here, on the writer's thread, but by
// EnsureHashed on a pipeline worker (fs/flush_pipeline.h): the chunker computes only the cheap
// key (CRC32C) that the successor table is indexed by. A chunk's successor entry is recorded
// when it is hashed; until then the cutter's claim makes other streams wait for it, or, once
// the cutter has attached the chunk to its claim, confirm their bytes against it and hash it
// themselves (EnsureHashed runs once per chunk, whichever thread gets there first).
//
// Dedup scope (per-uid stores): a chunk's address is computed in the scope of the call that
// emits it, and the chunk carries that scope to the store (StreamChunk::scope). The owner of a
// file can change between calls (chown); the stream then drops its guess and its link to the
// previous chunk, so that no guessed chunk and no successor entry joins two scopes.
//
// Memory and copies: a write is cut in place; only its uncut tail (under max_size bytes, more
// while a guess or claim waits for bytes, up to kMaxWaitBytes: fs/successor_table.h) is copied
// into the buffer, to be joined with the next write. A cut chunk's bytes are copied once into
// their own string; a guessed chunk's are not copied at all.
//
// Thread-safety: a StreamChunker is not; the owner (an inode, under its lock) serializes calls.
// EnsureHashed, the successor table and the cache are thread-safe.
#pragma once

#include <atomic>
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

// One chunk cut from a stream, shared by the stream's batch and the pipeline's hash queue.
struct StreamChunk {
  uint64_t offset = 0;                       // of its first byte in the file
  std::shared_ptr<const std::string> bytes;  // its raw bytes (shared with the chunk cache)
  // The uid its address is scoped by (per-uid stores): fixed when it is emitted, and the one
  // its record is stored under.
  std::optional<uint32_t> scope;
  uint64_t key = 0;                          // its successor-table key (MakeKey)
  // The key of the chunk before it in the stream, when both ends are content-defined: once
  // this chunk is hashed it is recorded as that chunk's successor.
  std::optional<uint64_t> prev_key;
  bool predicted = false;  // taken from a confirmed guess: neither scanned nor hashed here

  // Its address in the store. A guessed chunk's is known when it is cut; a cut chunk's is set
  // by EnsureHashed. Read it only after EnsureHashed returned (or for a predicted chunk).
  ChunkHash hash;
  enum : int { kUnhashed = 0, kHashing = 1, kHashed = 2 };
  std::atomic<int> hash_state{kUnhashed};
};
using ChunkRef = std::shared_ptr<StreamChunk>;

// The successor-table key of a chunk: CRC32C of its bytes, its length and its scope.
uint64_t MakeKey(const std::optional<uint32_t>& scope, std::string_view bytes);

// Computes the chunk's address once (a concurrent caller waits for the first), puts its bytes
// in the cache and records it as its predecessor's successor. Either pointer may be null.
void EnsureHashed(StreamChunk& c, SuccessorTable* successors, ChunkCache* cache);

class StreamChunker {
 public:
  struct Context {
    const FastCdc* cdc = nullptr;          // required
    SuccessorTable* successors = nullptr;  // null: no guessing
    ChunkCache* cache = nullptr;           // null: no guessing
  };
  // Bytes buffered while waiting for another stream's claim before cutting them anyway.
  static constexpr size_t kMaxWaitBytes = 4u << 20;

  // A stream whose next byte goes to file offset `start`. `owner` identifies this stream in
  // claims (any value unique among live streams, not 0).
  StreamChunker(const Context& ctx, uint64_t start, uint64_t owner);

  uint64_t start() const { return pos_; }             // first byte not yet in an emitted chunk
  uint64_t end() const { return pos_ + buffered(); }  // where the next Append goes
  size_t buffered() const { return buf_.size() - head_; }

  // Appends `data` at end() and emits (appends to *out) every chunk it completes. `scope` is
  // the uid the store scopes this file's chunk addresses by (nullopt in a global store).
  // Emitted chunks that are not predicted still need EnsureHashed.
  void Append(std::string_view data, const std::optional<uint32_t>& scope,
              std::vector<ChunkRef>* out);
  // The stream ends at end(): emits the rest.
  void Finish(const std::optional<uint32_t>& scope, std::vector<ChunkRef>* out);
  // Copies the buffered bytes that fall in [off, off + n) to dst (dst[0] is offset off).
  void CopyBuffered(uint64_t off, size_t n, char* dst) const;

  uint64_t predicted_bytes() const { return predicted_bytes_; }
  uint64_t cut_bytes() const { return cut_bytes_; }  // cut by FastCDC (to be hashed)

 private:
  // Emits the chunks that can be decided among the n bytes at p, which are the stream's bytes
  // from start() on (the buffer, or a caller's write in place); with `final`, all of them.
  // Returns how many bytes it emitted.
  size_t Process(const char* p, size_t n, bool final, const std::optional<uint32_t>& scope,
                 std::vector<ChunkRef>* out);
  // Process() over the buffer.
  void ProcessBuffer(bool final, const std::optional<uint32_t>& scope, std::vector<ChunkRef>* out);
  // Tries the guess for the chunk at p[0]. Returns true if it emitted a chunk, false if the
  // chunk must be cut here; sets *wait when the caller should wait for more bytes instead.
  bool TryGuess(const char* p, size_t avail, bool final, const std::optional<uint32_t>& scope,
                std::vector<ChunkRef>* out, bool* wait);
  // Called first by Append and Finish: a new scope forgets the guess and the previous chunk.
  void SetScope(const std::optional<uint32_t>& scope);
  // Emits a chunk known without hashing (a confirmed guess or claim): `bytes` at pos_.
  void EmitPredicted(std::shared_ptr<const std::string> bytes, uint64_t key, const ChunkHash& hash,
                     const std::optional<uint32_t>& scope, std::vector<ChunkRef>* out);
  // Emits the chunk of `len` bytes at pos_; `content_defined` says whether its end is.
  void Emit(ChunkRef c, size_t len, bool content_defined, std::vector<ChunkRef>* out);

  const Context ctx_;
  const uint64_t owner_;
  uint64_t pos_;
  std::string buf_;  // the stream's bytes from pos_ - head_ on; the first head_ are emitted
  size_t head_ = 0;
  std::optional<uint64_t> prev_key_;  // the last emitted chunk's key, if its end is content-defined
  std::optional<uint32_t> scope_;     // of the last call; prev_key_ and guess_ belong to it
  // The guess being confirmed for the chunk at pos_, while its bytes arrive.
  struct Guess {
    SuccessorTable::Next next;
    std::shared_ptr<const std::string> bytes;
    size_t matched = 0;  // bytes already compared equal
  };
  std::optional<Guess> guess_;
  bool no_guess_here_ = false;  // the guess for the chunk at pos_ failed: cut it
  uint64_t predicted_bytes_ = 0, cut_bytes_ = 0;
};

}  // namespace rankfs
