// OfflineStore: an existing, unmounted store opened for an offline tool (fsck, gc), with what
// both tools read before they do their own work: the pack files and the chunk index, grouped
// by pack. Not part of the store's API.
//
// Open takes STORE/LOCK (EBUSY while a daemon has the store) and opens the metadata, but never
// the PackChunkStore: its recovery at open would delete orphan packs and punch unindexed ranges,
// which fsck must report and a dry run of gc must leave as they are.
//
// Memory after Load: about 100 bytes per indexed chunk.
//
// Thread-safety: none; one tool run owns it, on one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/env.h"
#include "store/meta_store.h"
#include "store/offline_options.h"
#include "store/status.h"
#include "store/types.h"

namespace rankfs {

// One entry of the chunk index.
struct IndexedChunk {
  ChunkHash hash;
  ChunkRecord rec;
};

// A pack as the index and the packs directory describe it.
struct OfflinePack {
  bool has_file = false;       // packs/NNNNNN.pack exists (else only index entries name it)
  uint64_t size = 0;           // of the file
  uint64_t allocated = 0;      // disk space the file uses (holes excluded)
  std::vector<size_t> chunks;  // the chunks the index places here (OfflineStore::chunks()
                               // indices), by offset in the pack
};

class OfflineStore {
 public:
  static constexpr size_t kNoChunk = size_t(-1);

  // Fails with ENOENT when `dir` holds no store, EBUSY while a daemon has it open.
  static Result<std::unique_ptr<OfflineStore>> Open(const std::string& dir,
                                                    const OfflineOptions& options);
  // Closes the metadata if Close was not called (a failure to close is then lost).
  ~OfflineStore();
  OfflineStore(const OfflineStore&) = delete;
  OfflineStore& operator=(const OfflineStore&) = delete;

  // Lists the pack files (size, disk space) and reads the whole chunk index. REQUIRES: called
  // once, before chunks(), packs(), Find() and max_pack_id().
  Status Load();

  const std::string& dir() const { return dir_; }
  Env* env() const { return env_; }
  MetaStore* meta() const { return meta_.get(); }
  std::string PacksDir() const { return dir_ + "/packs"; }
  std::string PackPath(uint32_t pack_id) const;

  // The chunk index, sorted by hash.
  const std::vector<IndexedChunk>& chunks() const { return chunks_; }
  // The index in chunks() of `hash`, or kNoChunk.
  size_t Find(const ChunkHash& hash) const;
  // By id: every pack file, and every pack the index names (has_file false when it is gone).
  const std::map<uint32_t, OfflinePack>& packs() const { return packs_; }
  // The highest id of a pack file or of a pack the index names (0: none). A new pack takes a
  // higher one, so that no stale index entry can ever name it.
  uint32_t max_pack_id() const { return packs_.empty() ? 0 : packs_.rbegin()->first; }

  // Passes progress on to OfflineOptions::progress, if any.
  void Progress(std::string_view phase, uint64_t done, uint64_t total) const;

  // Closes the metadata and says whether that succeeded. The lock is held until destruction.
  Status Close();

 private:
  OfflineStore(std::string dir, const OfflineOptions& options);

  const std::string dir_;
  Env* const env_;
  const OfflineProgress progress_;
  std::unique_ptr<FileLock> lock_;  // declared before meta_: released after it is closed
  std::unique_ptr<MetaStore> meta_;
  std::vector<IndexedChunk> chunks_;
  std::map<uint32_t, OfflinePack> packs_;
};

// Reads the record that index entry `loc` places in `pack` (an open pack file of `pack_size`
// bytes) into *record and checks it against the entry: lengths, record header, CRC32C of the
// stored bytes (not the content hash: only fsck needs that). Never reads past `pack_size`.
// Returns "" when the record is intact, otherwise what is wrong with it; fails only when the
// read itself fails.
Result<std::string> ReadIndexedRecord(File* pack, uint64_t pack_size, const ChunkHash& hash,
                                      const ChunkLocation& loc, std::string* record);

}  // namespace rankfs
