// PackChunkStoreOptions: the settings of a pack store (pack_chunk_store.h), apart so that
// StoreOptions can carry them without showing the pack store to the store's users.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace rankfs {

struct PackChunkStoreOptions {
  int compression_level = 1;            // zstd level; 0 stores every chunk raw
  uint64_t max_pack_bytes = 256ull << 20;
  size_t max_open_packs = 128;          // pack files kept open for reading
  bool background_reclaim = true;       // punch released ranges from a background thread
  std::chrono::milliseconds reclaim_delay{100};  // batching window of the background thread
  // Reads only: recovery changes nothing (no punch, no deletion), packs are opened read-only,
  // and every call that would store, reference or release a chunk fails with EROFS.
  bool read_only = false;
};

}  // namespace rankfs
