#include "store/store.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>

#include "store/chunker.h"
#include "store/logging.h"
#include "store/pack_chunk_store.h"

namespace rankfs {
namespace {

std::array<uint8_t, 16> NewUuid() {
  std::array<uint8_t, 16> u{};
  if (getrandom(u.data(), u.size(), 0) != ssize_t(u.size())) {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);  // weak fallback; the uuid only labels packs
    for (size_t i = 0; i < u.size(); ++i) u[i] = uint8_t((ts.tv_nsec >> (i % 8)) ^ i);
  }
  u[6] = (u[6] & 0x0f) | 0x40;  // version 4
  u[8] = (u[8] & 0x3f) | 0x80;  // variant 1
  return u;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir, const StoreOptions& options) {
  Env* env = options.env ? options.env : Env::Default();
  RANKFS_RETURN_IF_ERROR(FastCdc::ValidateParams(options.chunker));
  auto info = env->Stat(dir);
  if (!info.ok()) {
    if (info.status().code() != ENOENT) return info.status().Annotate("opening store");
    if (options.read_only) {
      return Status(ENOENT, "store " + dir + " does not exist (a new store cannot be read-only)");
    }
    RANKFS_RETURN_IF_ERROR(env->CreateDir(dir).Annotate("creating store"));
  } else if (!info->is_dir) {
    return Status(ENOTDIR, "store " + dir + " is not a directory");
  } else if (env == Env::Default()) {
    struct stat st;
    const uid_t me = geteuid();
    if (::stat(dir.c_str(), &st) == 0 && me != 0 && st.st_uid != me) {
      return Status(EACCES, "store " + dir + " is owned by uid " + std::to_string(st.st_uid) +
                                ", not by the caller (uid " + std::to_string(me) +
                                "); only its owner or root may open it");
    }
  }
  std::unique_ptr<Store> store(new Store());
  store->dir_ = dir;
  store->env_ = env;
  store->read_only_ = options.read_only;
  auto lock = env->LockFile(dir + "/LOCK");
  if (!lock.ok()) {
    if (lock.status().code() == EBUSY) {
      return Status(EBUSY, "store " + dir + " is already in use by another rankfs process");
    }
    return lock.status().Annotate("locking store " + dir);
  }
  store->lock_ = std::move(lock).value();

  Superblock initial;
  initial.uuid = NewUuid();
  initial.chunker = options.chunker;
  initial.compression_level = options.compression_level;
  initial.dedup_scope = options.dedup_scope.value_or(DedupScope::kGlobal);
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  initial.created_ns = int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  MetaStoreOptions mo = options.meta;
  mo.rocks_env = options.rocks_env;
  if (options.read_only) {
    mo.read_only = true;  // a read-only mount leaves even an older format as it is
    mo.create_if_missing = false;
  } else {
    mo.upgrade_format = true;
  }
  auto meta = MetaStore::Open(dir + "/meta", mo, initial);
  if (!meta.ok()) return meta.status().Annotate("opening store " + dir);
  store->meta_ = std::move(meta).value();
  if (Status v = FastCdc::ValidateParams(store->meta_->super().chunker); !v.ok()) {
    return Status(EUCLEAN, "store " + dir + " has invalid chunking parameters: " + v.message());
  }

  if (options.dedup_scope && *options.dedup_scope != store->meta_->super().dedup_scope) {
    auto name = [](DedupScope s) { return s == DedupScope::kPerUid ? "per-uid" : "global"; };
    return Status(EINVAL, "store " + dir + " was created with dedup=" +
                              name(store->meta_->super().dedup_scope) + "; it cannot be opened " +
                              "with dedup=" + name(*options.dedup_scope) +
                              " (the scope is fixed at creation)");
  }

  PackChunkStoreOptions po = options.packs;
  po.compression_level = store->meta_->super().compression_level;
  po.read_only = options.read_only;
  auto chunks = PackChunkStore::Open(env, dir + "/packs", store->meta_.get(), po);
  if (!chunks.ok()) return chunks.status().Annotate("opening store " + dir);
  store->chunks_ = std::move(chunks).value();
  return store;
}

ChunkStore* Store::chunks() { return chunks_.get(); }

Store::~Store() {
  Status s = Close();
  if (!s.ok()) Log(LogLevel::kWarning, "store", "close: " + s.ToString());
}

Status Store::Close() {
  Status st;
  if (chunks_) {
    st = chunks_->Close();
    chunks_.reset();
  }
  if (meta_) {
    Status ms = meta_->Close();
    if (st.ok()) st = ms;
    meta_.reset();
  }
  lock_.reset();
  return st;
}

}  // namespace rankfs
