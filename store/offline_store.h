// OfflineStore: an existing, unmounted store opened for an offline tool (fsck, gc).
#pragma once

#include <memory>
#include <string>

#include "store/env.h"
#include "store/meta_store.h"
#include "store/status.h"

namespace rocksdb {
class Env;
}

namespace rankfs {

// An existing, unmounted store opened for an offline tool (fsck, gc): its LOCK held (EBUSY
// while a daemon has the store), its metadata open, its packs untouched. `lock` outlives
// `meta` (members are destroyed in reverse order).
struct OfflineStore {
  std::unique_ptr<FileLock> lock;
  std::unique_ptr<MetaStore> meta;
};
// `rocks_env`: the metadata's RocksDB Env; nullptr for RocksDB's default. Not owned.
Result<OfflineStore> OpenOfflineStore(Env* env, const std::string& dir, rocksdb::Env* rocks_env);

}  // namespace rankfs
