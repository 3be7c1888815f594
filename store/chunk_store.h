// ChunkStore: content-addressed, reference-counted storage of chunks.
//
// A chunk is identified by the SHA-256 of its raw bytes. Put() stores a chunk once, however
// many times and from however many threads it is put, and takes a reference; Unref() drops one,
// and a chunk whose last reference goes has its space released. Every Get() checks the stored
// bytes against their checksum and returns EIO, never bytes, on a mismatch; a later Put() of the
// same content stores a fresh copy ("heals" the chunk).
//
// Durability contract with the metadata that refers to chunks (extents):
//   after Flush() returns OK, every chunk whose Put() returned before Flush() was called is
//   durable, and so is its index entry once the metadata store's WAL is synced. Metadata that
//   refers to a chunk must be written after a Flush() that covers the chunk's Put(); then a crash
//   can never leave metadata pointing at missing bytes. When Flush() fails, a chunk put before
//   it may be lost (its container's sync failed): the caller must not write metadata naming it,
//   drops its references and puts the bytes again (a new Put stores a fresh copy). Reference
//   counts err on the high side after a crash or a failed metadata write (space leaks until fsck
//   rebuilds them), never on the low side.
//
// The interface says nothing about pack files: a later backend may keep chunks in an object
// store. Thread-safety: every method is safe to call concurrently.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "store/status.h"
#include "store/types.h"

namespace rankfs {

struct ChunkStoreStats {
  uint64_t chunks = 0;          // distinct chunks stored
  uint64_t raw_bytes = 0;       // their uncompressed size
  uint64_t stored_bytes = 0;    // their size as stored (records incl. headers)
  uint64_t put_calls = 0;       // Put() calls that succeeded
  uint64_t put_bytes = 0;       // bytes passed to those calls
  uint64_t dedup_hits = 0;      // Put() calls that found the chunk already stored
  uint64_t reclaimed_bytes = 0; // record bytes released since start
  uint64_t reclaim_backlog = 0; // record bytes released but not yet punched
  uint64_t packs = 0;           // containers in use (backend-specific meaning)
  uint64_t allocated_bytes = 0; // space the containers take on disk
  uint64_t read_errors = 0;     // Get() calls that found damaged bytes
  uint64_t index_reads = 0;     // chunk records read back from the metadata store
};

// One chunk of a GetMany call: what to read, where to put it, and how it went.
struct ChunkRead {
  ChunkHash hash;
  // The chunk's raw bytes go to `direct` when it is exactly `direct_len` bytes long (a reader
  // that wants the whole chunk in a buffer of its own saves a copy), else to *out. On an
  // error, `direct` may hold any bytes. REQUIRES: out != nullptr.
  char* direct = nullptr;
  size_t direct_len = 0;
  std::string* out = nullptr;
  // Results: where the bytes went, and the chunk's own status (as Get would return it).
  bool wrote_direct = false;
  Status status;
  // Whether more than one reference holds the chunk (other files, or other places of one
  // file, may want it soon): true when the backend cannot tell.
  bool shared = true;
};

// What a GetMany cost.
struct GetManyStats {
  uint64_t reads = 0;           // read calls to the backend (one per run of adjacent chunks)
  uint64_t decompressions = 0;  // chunks decompressed (or copied, when stored raw)
};

class ChunkStore {
 public:
  virtual ~ChunkStore() = default;

  // Stores `data` unless a chunk with `hash` is already stored, and takes one reference.
  // REQUIRES: hash == ChunkHash::Of(data).
  virtual Status Put(const ChunkHash& hash, std::string_view data) = 0;
  // Put for a per-uid dedup store: the chunk is recorded as owned by `scope_uid`, whose
  // address is ChunkHash::OfScoped(scope_uid, data); Verify and fsck check it that way.
  // REQUIRES: hash == ChunkHash::OfScoped(scope_uid, data).
  virtual Status PutScoped(const ChunkHash& hash, std::string_view data, uint32_t scope_uid) = 0;
  // Takes `n` more references to a stored chunk (ENOENT when it is not stored).
  virtual Status Ref(const ChunkHash& hash, uint64_t n) = 0;
  // Drops `n` references; at zero the chunk is deleted and its space released.
  virtual Status Unref(const ChunkHash& hash, uint64_t n) = 0;
  // Replaces *out with the chunk's raw bytes. ENOENT when not stored; EIO when damaged.
  virtual Status Get(const ChunkHash& hash, std::string* out) = 0;
  // Gets every chunk of `reads`, each exactly as Get would (verified; EIO for a damaged one,
  // for that chunk only), filling their results. A backend may read chunks stored next to each
  // other with one call. This default reads them one by one.
  virtual void GetMany(std::span<ChunkRead> reads, GetManyStats* stats) {
    for (ChunkRead& r : reads) {
      r.wrote_direct = false;
      r.status = Get(r.hash, r.out);
      ++stats->reads;
      if (!r.status.ok()) continue;
      ++stats->decompressions;
      if (r.direct != nullptr && r.out->size() == r.direct_len) {
        std::memcpy(r.direct, r.out->data(), r.direct_len);
        r.wrote_direct = true;
      }
    }
  }
  // Like Get, and also checks the content against `hash` (SHA-256, scoped as it was put).
  virtual Status Verify(const ChunkHash& hash) = 0;
  // See the durability contract above.
  virtual Status Flush() = 0;
  // Releases the space of deleted chunks now instead of in the background.
  virtual Status Reclaim() = 0;
  virtual ChunkStoreStats GetStats() = 0;
};

}  // namespace rankfs
