#include "store/offline_store.h"

namespace rankfs {

Result<OfflineStore> OpenOfflineStore(Env* env, const std::string& dir,
                                      rocksdb::Env* rocks_env) {
  Result<FileInfo> info = env->Stat(dir);
  if (!info.ok()) return info.status().Annotate("store " + dir);
  if (!info->is_dir) return Status(ENOTDIR, "store " + dir + " is not a directory");
  if (!env->Stat(dir + "/meta/CURRENT").ok()) {
    return Status(ENOENT, dir + " holds no rankfs store (no meta/ database)");
  }
  OfflineStore store;
  Result<std::unique_ptr<FileLock>> lock = env->LockFile(dir + "/LOCK");
  if (!lock.ok()) {
    if (lock.status().code() == EBUSY) {
      return Status(EBUSY,
                    "store " + dir + " is in use by a rankfs daemon (mounted?); unmount it first");
    }
    return lock.status().Annotate("locking store " + dir);
  }
  store.lock = std::move(lock).value();
  MetaStoreOptions mo;
  mo.create_if_missing = false;
  mo.rocks_env = rocks_env;
  Result<std::unique_ptr<MetaStore>> meta = MetaStore::Open(dir + "/meta", mo, Superblock());
  if (!meta.ok()) return meta.status().Annotate("store " + dir);
  store.meta = std::move(meta).value();
  return store;
}

}  // namespace rankfs
