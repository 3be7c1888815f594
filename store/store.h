// Store: one rankfs backing directory, opened as a whole.
//
//   STORE/LOCK     flock()ed while open, so two daemons never share a store
//   STORE/meta/    the MetaStore (RocksDB)
//   STORE/packs/   the PackChunkStore's pack files
//
// Opening a directory that does not exist (or is empty) creates a new store with the given
// settings; an existing store keeps the settings in its superblock.
//
// Ownership: an existing store directory owned by another uid than the caller's effective uid
// is refused (EACCES) unless the caller is root, so that one user's daemon never serves (or
// changes) another user's store. (Checked only with the POSIX Env.)
//
// A store opened read-only (StoreOptions::read_only) changes nothing on disk: no creation, no
// recovery, RocksDB in its read-only mode; every change fails with EROFS.
//
// Thread-safety: the components are thread-safe; Open/Close are not (one owner).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "store/chunk_store.h"
#include "store/env.h"
#include "store/meta_store.h"
#include "store/pack_options.h"
#include "store/status.h"

namespace rocksdb {
class Env;
}

namespace rankfs {

class PackChunkStore;

struct StoreOptions {
  Env* env = nullptr;                 // nullptr: Env::Default(); not owned
  rocksdb::Env* rocks_env = nullptr;  // nullptr: RocksDB's default; not owned
  // Settings of a new store (an existing store's superblock wins).
  ChunkerParams chunker;
  int compression_level = 1;
  // Dedup scope of a new store. An existing store keeps its own; when this is set and differs
  // from the store's, Open fails with EINVAL (silently ignoring dedup=per-uid would be unsafe).
  std::optional<DedupScope> dedup_scope;
  // Runtime settings.
  bool read_only = false;       // see the header comment; the store must exist
  PackChunkStoreOptions packs;  // compression_level is taken from the superblock
  MetaStoreOptions meta;        // rocks_env is taken from above
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& dir, const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  MetaStore* meta() { return meta_.get(); }
  // The chunk store, through the interface every backend implements.
  ChunkStore* chunks();
  // The pack store itself, for tools and tests that look at pack files (include
  // store/pack_chunk_store.h to use it).
  PackChunkStore* packs() { return chunks_.get(); }
  bool read_only() const { return read_only_; }
  const Superblock& super() const { return meta_->super(); }
  const std::string& dir() const { return dir_; }
  Env* env() { return env_; }

  // Flushes and closes the chunk store, then the metadata. Also done by the destructor.
  Status Close();

 private:
  Store() = default;
  std::string dir_;
  Env* env_ = nullptr;
  bool read_only_ = false;
  std::unique_ptr<FileLock> lock_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<PackChunkStore> chunks_;
};

}  // namespace rankfs
