// FsCore: names, attributes, extended attributes, inode lifetime and whole-filesystem calls.
// The data path is in file_data.cc.
#include "fs/fs_core.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cinttypes>
#include <ctime>
#include <unordered_map>

#include "fs/fs_core_impl.h"
#include "store/logging.h"

namespace rankfs {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t SteadyNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

namespace {

constexpr size_t kNameMax = 255;
constexpr size_t kXattrNameMax = 255;
constexpr size_t kXattrValueMax = 65536;

bool IsDir(const InodeAttr& a) { return S_ISDIR(a.mode); }
uint8_t TypeOf(uint32_t mode) { return uint8_t((mode & S_IFMT) >> 12); }

Status CheckName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return Status(EINVAL, "invalid name");
  if (name.size() > kNameMax) return Status(ENAMETOOLONG, "name longer than 255 bytes");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Status(EINVAL, "name contains '/' or NUL");
  }
  return Status::Ok();
}

Status NotFound(Ino parent, std::string_view name) {
  return Status(ENOENT, "no entry '" + std::string(name) + "' in directory " +
                            std::to_string(parent));
}

// Successor slots (fs/successor_table.h): ~90 bytes each; 64 Ki slots remember the order of
// the last ~2 GiB of distinct chunks (32 KiB mean), far more than the chunk cache holds.
constexpr size_t kSuccessorSlots = 1 << 16;

bool IsStatsName(Ino parent, std::string_view name) {
  return parent == kRootIno && name == kStatsFileName;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Impl: construction, inode table, background deletion

FsCore::Impl::Impl(Store* store, const FsOptions& o)
    : store_(store),
      meta_(store->meta()),
      chunks_(store->chunks()),
      options_(o),
      room_(o.write_buffer_bytes, o.idle_trim_ms,
            [this](const std::shared_ptr<Inode>& inode) { return PushHeld(inode); }),
      cdc_(store->super().chunker),
      cache_(store->chunks(), o.chunk_cache_bytes),
      successors_(kSuccessorSlots) {}

FsCore::Impl::~Impl() {
  // The write buffer's keeper and the lazy closer first (they submit to the pipeline), then
  // the pipeline (finishing its batches queues eviction checks for the delete thread).
  room_.Stop();
  {
    std::lock_guard<std::mutex> l(lazy_mu_);
    lazy_stop_ = true;
    lazy_cv_.notify_all();
  }
  if (lazy_thread_.joinable()) lazy_thread_.join();
  if (pipeline_) pipeline_->Stop();
  // Failed batches not yet taken back (an unlinked file still open at unmount) hold their
  // inode, which holds them.
  for (auto& [ino, inode] : table_) {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    inode->batches.clear();
  }
  {
    std::lock_guard<std::mutex> l(delete_mu_);
    stop_ = true;
    delete_cv_.notify_all();
  }
  if (delete_thread_.joinable()) delete_thread_.join();
}

Status FsCore::Impl::Init() {
  generation_ = uint64_t(NowNs());
  RANKFS_ASSIGN_OR_RETURN(std::optional<InodeAttr> root, meta_->GetInode(kRootIno));
  if (!root && options_.read_only) {
    return Status(EROFS, "the store has no root directory, and it is open read-only");
  }
  if (!root) {
    InodeAttr a;
    a.ino = kRootIno;
    a.mode = S_IFDIR | (options_.root_mode & 07777);
    a.uid = options_.root_uid;
    a.gid = options_.root_gid;
    a.nlink = 2;
    a.atime_ns = a.mtime_ns = a.ctime_ns = NowNs();
    a.generation = generation_;
    a.parent = kRootIno;
    a.allocated_bytes = 0;
    RANKFS_RETURN_IF_ERROR(PersistAttr(a, /*sync=*/true));
    root = a;
  }
  root->parent = kRootIno;  // also for a record older than the field
  RANKFS_RETURN_IF_ERROR(FillAllocated(&*root));
  auto inode = std::make_shared<Inode>(*root);
  inode->nlookup = UINT64_MAX / 2;  // the kernel never forgets the root
  table_.emplace(kRootIno, inode);
  RANKFS_ASSIGN_OR_RETURN(Ino max_ino, meta_->MaxIno());
  next_ino_ = std::max<Ino>(max_ino + 1, kFirstAllocatedIno);

  std::vector<Ino> orphans;
  RANKFS_RETURN_IF_ERROR(meta_->ForEachOrphan([&](Ino ino) {
    orphans.push_back(ino);
    return true;
  }));
  delete_thread_ = std::thread([this] { DeleteLoop(); });
  lazy_thread_ = std::thread([this] { LazyLoop(); });
  room_.Start();
  int workers = options_.flush_threads;
  if (workers <= 0) workers = std::max(2, int(std::thread::hardware_concurrency()));
  pipeline_ = std::make_unique<FlushPipeline>(
      chunks_, &successors_, &cache_, workers, [this](FlushBatch& b) { return CommitBatch(b); },
      [this](const std::shared_ptr<FlushBatch>& b, const Status& st) { BatchFinished(b, st); },
      [this] { return CheckSpace(SpaceUse::kFlush); });
  if (options_.read_only) {
    if (!orphans.empty()) {
      Log(LogLevel::kInfo, "fs",
          "read-only: " + std::to_string(orphans.size()) +
              " unlinked inodes left by an earlier run stay until a read-write mount");
    }
    return Status::Ok();
  }
  for (Ino ino : orphans) {
    Log(LogLevel::kInfo, "fs", "releasing unlinked inode " + std::to_string(ino) +
                                   " left by an earlier run");
    QueueDelete(ino, /*in_store=*/true);
  }
  return Status::Ok();
}

Result<std::shared_ptr<Inode>> FsCore::Impl::GetInode(Ino ino) {
  {
    std::lock_guard<std::mutex> l(table_mu_);
    auto it = table_.find(ino);
    if (it != table_.end()) return it->second;
  }
  RANKFS_ASSIGN_OR_RETURN(std::optional<InodeAttr> a, meta_->GetInode(ino));
  if (!a) return Status(ENOENT, "inode " + std::to_string(ino) + " does not exist");
  RANKFS_RETURN_IF_ERROR(FillAllocated(&*a));
  // Made before the table changes: an allocation that throws must not leave a null entry.
  auto fresh = std::make_shared<Inode>(*a);
  std::lock_guard<std::mutex> l(table_mu_);
  return table_.try_emplace(ino, std::move(fresh)).first->second;
}

std::shared_ptr<Inode> FsCore::Impl::FindInode(Ino ino) {
  std::lock_guard<std::mutex> l(table_mu_);
  auto it = table_.find(ino);
  return it == table_.end() ? nullptr : it->second;
}

std::shared_ptr<Inode> FsCore::Impl::AddNewInode(const InodeAttr& attr) {
  auto inode = std::make_shared<Inode>(attr);
  inode->nlookup = 1;
  inode->no_caps = true;  // a new inode has nothing in the store but its record
  inode->may_have_xattrs = false;
  inode->may_have_extents = false;
  std::lock_guard<std::mutex> l(table_mu_);
  table_[attr.ino] = inode;
  return inode;
}

void FsCore::Impl::AddLookup(const std::shared_ptr<Inode>& inode) {
  std::lock_guard<std::mutex> l(table_mu_);
  ++inode->nlookup;
}

void FsCore::Impl::MaybeEvict(Ino ino) {
  if (ino == kRootIno) return;
  std::shared_ptr<Inode> inode;
  {
    std::lock_guard<std::mutex> l(table_mu_);
    auto it = table_.find(ino);
    if (it == table_.end()) return;
    if (it->second->nlookup > 0 || it->second->open_count > 0) return;
    inode = it->second;
  }
  bool remove_data, in_store = true;
  {
    std::unique_lock<std::shared_mutex> il(inode->mu);
    in_store = inode->may_have_extents || inode->may_have_xattrs;
    if (inode->attr.nlink > 0 && HoldsDataLocked(inode.get())) return;  // keep unwritten data
    remove_data = inode->attr.nlink == 0 && !inode->deleted;
    if (remove_data) {
      // A batch in the pipeline cannot be called back: its commit comes first, then
      // BatchFinished asks again.
      if (!DropHeldDataLocked(inode.get())) return;
      inode->deleted = true;
    }
  }
  {
    std::lock_guard<std::mutex> l(table_mu_);
    auto it = table_.find(ino);
    if (it == table_.end() || it->second != inode) return;
    if (inode->nlookup > 0 || inode->open_count > 0) {
      // Looked up again meanwhile (possible only for linked inodes).
      if (remove_data) inode->deleted = false;
      return;
    }
    table_.erase(it);
  }
  if (remove_data) QueueDelete(ino, in_store);
}

void FsCore::Impl::QueueDelete(Ino ino, bool in_store) {
  std::lock_guard<std::mutex> l(delete_mu_);
  delete_queue_.push_back({ino, in_store});
  // The delete thread gathers a round (DeleteLoop): it needs waking for the first inode, and
  // when a round is full, not for every inode of an rm -rf (a wake-up per file).
  if (delete_queue_.size() == 1 || delete_queue_.size() == kDeleteRoundInodes) {
    delete_cv_.notify_all();
  }
}

void FsCore::Impl::QueueEvictCheck(Ino ino) {
  std::lock_guard<std::mutex> l(delete_mu_);
  evict_checks_.push_back(ino);
  delete_cv_.notify_all();
}

void FsCore::Impl::DeleteLoop() {
  std::unique_lock<std::mutex> l(delete_mu_);
  for (;;) {
    delete_cv_.wait(l, [&] { return stop_ || !delete_queue_.empty() || !evict_checks_.empty(); });
    if (!evict_checks_.empty()) {
      std::deque<Ino> checks;
      checks.swap(evict_checks_);
      deleting_ = true;
      l.unlock();
      for (Ino ino : checks) MaybeEvict(ino);
      l.lock();
      deleting_ = false;
      delete_cv_.notify_all();
      continue;
    }
    if (delete_queue_.empty()) break;  // stop_ and nothing left
    // A round of inodes goes in as few metadata writes as their extents allow: an rm -rf of
    // many small files then costs one write per round rather than one per file. The thread
    // waits a little for the rest of a burst to queue up (space comes back that much later).
    delete_cv_.wait_for(l, kDeleteGatherTime, [&] {
      return stop_ || !evict_checks_.empty() || delete_queue_.size() >= kDeleteRoundInodes;
    });
    std::vector<QueuedDeletion> round;
    while (!delete_queue_.empty() && round.size() < kDeleteRoundInodes) {
      round.push_back(delete_queue_.front());
      delete_queue_.pop_front();
    }
    deleting_ = true;
    l.unlock();
    // A failed write keeps its operations in the batch, and the next write tries them again
    // (deleting is idempotent); their references are dropped only after a write succeeded.
    DeletionBatch batch(meta_, chunks_);
    for (const QueuedDeletion& d : round) {
      Status st = DeleteInodeData(d.ino, d.in_store, &batch);
      if (st.ok() && batch.Full()) st = batch.Write();
      if (!st.ok()) {
        Log(LogLevel::kError, "fs",
            "releasing inode " + std::to_string(d.ino) + ": " + st.ToString());
      }
    }
    if (Status st = batch.Write(); !st.ok()) {
      Log(LogLevel::kError, "fs",
          "releasing " + std::to_string(round.size()) + " unlinked inodes: " + st.ToString());
    }
    room_.NoteActivity();  // a job's rmtree: trim the heap once it is over too
    l.lock();
    deleting_ = false;
    delete_cv_.notify_all();
  }
}

Status FsCore::Impl::DeletionBatch::Write() {
  if (batch_.Empty()) return Status::Ok();
  RANKFS_RETURN_IF_ERROR(meta_->Write(batch_, /*sync=*/false));
  batch_.Clear();
  // Only now: a reference is dropped after the removal of its extent is written (reference
  // counts err high, never low). After a failed write the references stay, leaked, not freed.
  auto refs = std::move(refs_);
  refs_.clear();
  for (const auto& [h, n] : refs) RANKFS_RETURN_IF_ERROR(chunks_->Unref(h, n));
  return Status::Ok();
}

// Removes an unlinked inode's extents, xattrs, attributes and orphan entry into `out` (written
// by the caller, or here each time it fills).
Status FsCore::Impl::DeleteInodeData(Ino ino, bool in_store, DeletionBatch* out) {
  if (!in_store) {  // a file that never reached the store: its record and orphan entry only
    out->batch().DeleteInode(ino);
    out->batch().DeleteOrphan(ino);
    return Status::Ok();
  }
  // One forward scan over the extents, writing the batch whenever it fills while it goes on
  // (the iterator keeps the view it started with). A new scan per batch would step over the
  // tombstones of every extent deleted so far -- forward from offset 0, or backward from
  // where the last batch ended (ListExtents looks for an extent reaching into its range) --
  // quadratic in the file's extents.
  // A batch's references are dropped per chunk, n at a time: slices of one chunk are common
  // (copy_file_range, punched files).
  Status written;
  auto visit = [&](uint64_t off, const Extent& e) {
    out->batch().DeleteExtent(ino, off);
    if (!e.unwritten) out->AddRef(e.chunk);  // an unwritten extent holds no reference
    if (!out->Full()) return true;
    written = out->Write();
    return written.ok();
  };
  if (options_.on_delete_scan) options_.on_delete_scan(ino, 0);
  RANKFS_RETURN_IF_ERROR(meta_->ListExtents(ino, 0, UINT64_MAX, visit));
  RANKFS_RETURN_IF_ERROR(written);
  std::vector<std::string> names;
  RANKFS_RETURN_IF_ERROR(meta_->ListXattrs(ino, [&](std::string_view n) {
    names.emplace_back(n);
    return true;
  }));
  for (const auto& n : names) out->batch().DeleteXattr(ino, n);
  out->batch().DeleteInode(ino);
  out->batch().DeleteOrphan(ino);
  return Status::Ok();
}

Status FsCore::Impl::PersistAttr(const InodeAttr& attr, bool sync) {
  MetaStore::Batch b;
  b.PutInode(attr);
  return meta_->Write(b, sync);
}

uint64_t FsCore::Impl::ReserveFor(uint64_t total) const {
  if (options_.reserve_bytes != FsOptions::kAutoReserve) return options_.reserve_bytes;
  return std::min(std::max<uint64_t>(total / 100, 64ull << 20), total / 4);
}

// Why a reserve at all: RocksDB treats a failed WAL append as a hard error and refuses every
// later write -- including the unlink that would free space -- until it recovers (see
// docs/reliability.md, "Full disk"). Keeping it out of ENOSPC is far more robust than
// recovering from it, so calls that consume space stop while RocksDB still has room.
Status FsCore::Impl::CheckSpace(SpaceUse use) {
  if (options_.reserve_bytes == 0) return Status::Ok();
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const int64_t now = int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  std::lock_guard<std::mutex> l(space_mu_);
  uint64_t reserve = ReserveFor(space_.total_bytes);
  // While space is plentiful a 100 ms old answer will do (statvfs on every write would cost);
  // near the reserve every call asks, so that concurrent flushes cannot overshoot it by much.
  // 256 MiB: what flushes can store in 100 ms, with room to spare.
  const bool plenty = space_.avail_bytes > 2 * reserve + (256ull << 20);
  if (space_probed_ns_ == 0 || !plenty || now - space_probed_ns_ > 100000000) {
    Result<SpaceInfo> info = store_->env()->GetSpaceInfo(store_->dir());
    if (!info.ok()) return Status::Ok();  // cannot tell: let RocksDB and the packs decide
    space_ = *info;
    space_probed_ns_ = now;
    reserve = ReserveFor(space_.total_bytes);
  }
  const uint64_t floor = use == SpaceUse::kGrow ? reserve : reserve / 2;
  if (space_.avail_bytes >= floor) return Status::Ok();
  return Status(ENOSPC, "the store's filesystem has " + std::to_string(space_.avail_bytes) +
                            " bytes free, less than the " + std::to_string(floor) +
                            " bytes kept for metadata (mount option reserve=)");
}

// ---------------------------------------------------------------------------------------------
// FsCore

FsCore::FsCore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<FsCore>> FsCore::Create(Store* store, const FsOptions& options) {
  auto impl = std::make_unique<Impl>(store, options);
  RANKFS_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<FsCore>(new FsCore(std::move(impl)));
}

FsCore::~FsCore() {
  Status s = Shutdown();
  if (!s.ok()) Log(LogLevel::kError, "fs", "shutdown: " + s.ToString());
}

const FsOptions& FsCore::options() const { return impl_->options_; }

namespace {

InodeAttr StatsAttr(size_t size) {
  InodeAttr a;
  a.ino = kStatsIno;
  a.mode = S_IFREG | 0444;
  a.nlink = 1;
  a.size = size;
  a.allocated_bytes = 0;
  a.atime_ns = a.mtime_ns = a.ctime_ns = NowNs();
  return a;
}

}  // namespace

Result<InodeAttr> FsCore::Lookup(Ino parent, std::string_view name) {
  if (IsStatsName(parent, name)) return StatsAttr(StatsText().size());
  if (name.size() > kNameMax) return Status(ENAMETOOLONG, "name longer than 255 bytes");
  RANKFS_ASSIGN_OR_RETURN(std::optional<DirEntry> e, impl_->meta_->GetDirent(parent, name));
  if (!e) return NotFound(parent, name);
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(e->ino));
  impl_->AddLookup(inode);
  std::shared_lock<std::shared_mutex> l(inode->mu);
  if (!IsDir(inode->attr) || inode->attr.parent != 0) return Impl::ReportLocked(*inode);
  // A directory whose record predates the parent field: a directory has one name, so the one
  // it was found by names its parent. Rename sets the field under the same lock, so a rename
  // racing this lookup wins. The record gets it with its next write.
  l.unlock();
  std::unique_lock<std::shared_mutex> wl(inode->mu);
  if (inode->attr.parent == 0) inode->attr.parent = parent;
  return Impl::ReportLocked(*inode);
}

void FsCore::Forget(Ino ino, uint64_t nlookup) {
  if (ino == kStatsIno || ino == kRootIno) return;
  {
    std::lock_guard<std::mutex> l(impl_->table_mu_);
    auto it = impl_->table_.find(ino);
    if (it == impl_->table_.end()) return;
    Inode& inode = *it->second;
    inode.nlookup -= std::min(inode.nlookup, nlookup);
    if (inode.nlookup > 0 || inode.open_count > 0) return;
  }
  impl_->MaybeEvict(ino);
}

// Creates a name and its new inode (one lookup taken). REQUIRES: ns_mu_ not held.
Result<InodeAttr> FsCore::Impl::MakeEntry(Ino parent, std::string_view name, const NewEntry& ne,
                                          const Caller& caller, bool open) {
  Impl* impl = this;
  RANKFS_RETURN_IF_ERROR(CheckName(name));
  RANKFS_RETURN_IF_ERROR(impl->CheckSpace(SpaceUse::kGrow));
  std::lock_guard<std::mutex> ns(impl->ns_mu_);
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> dir, impl->GetInode(parent));
  std::unique_lock<std::shared_mutex> dl(dir->mu);
  if (!IsDir(dir->attr)) return Status(ENOTDIR, "parent is not a directory");
  if (dir->attr.nlink == 0) return Status(ENOENT, "parent directory was removed");
  if (IsStatsName(parent, name)) return Status(EEXIST, "reserved name");
  RANKFS_ASSIGN_OR_RETURN(std::optional<DirEntry> existing, impl->meta_->GetDirent(parent, name));
  if (existing) return Status(EEXIST, "'" + std::string(name) + "' exists");

  int64_t now = NowNs();
  InodeAttr a;
  a.ino = impl->next_ino_.fetch_add(1);
  a.mode = ne.mode;
  a.uid = caller.uid;
  a.gid = caller.gid;
  if (dir->attr.mode & S_ISGID) {  // BSD group semantics on setgid directories
    a.gid = dir->attr.gid;
    if (S_ISDIR(a.mode)) a.mode |= S_ISGID;
  }
  a.nlink = S_ISDIR(a.mode) ? 2 : 1;
  if (S_ISDIR(a.mode)) a.parent = parent;
  a.allocated_bytes = 0;
  a.rdev = ne.rdev;
  a.generation = impl->generation_;
  a.atime_ns = a.mtime_ns = a.ctime_ns = now;
  if (S_ISLNK(a.mode)) {
    a.symlink_target = std::string(ne.symlink_target);
    a.size = a.symlink_target.size();
  }
  InodeAttr dir_attr = dir->attr;
  dir_attr.mtime_ns = dir_attr.ctime_ns = now;
  if (S_ISDIR(a.mode)) ++dir_attr.nlink;

  MetaStore::Batch b;
  b.PutInode(a);
  b.PutDirent(parent, name, DirEntry{a.ino, TypeOf(a.mode)});
  b.PutInode(dir_attr);
  RANKFS_RETURN_IF_ERROR(impl->meta_->Write(b, /*sync=*/false));
  dir->attr = dir_attr;
  auto inode = impl->AddNewInode(a);
  if (open) {
    std::lock_guard<std::mutex> l(impl->table_mu_);
    ++inode->open_count;
  }
  return a;
}

Result<InodeAttr> FsCore::MkNod(Ino parent, std::string_view name, uint32_t mode, uint64_t rdev,
                                const Caller& caller) {
  uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  if (type != S_IFREG && type != S_IFCHR && type != S_IFBLK && type != S_IFIFO &&
      type != S_IFSOCK) {
    return Status(EINVAL, "mknod of an unsupported file type");
  }
  return impl_->MakeEntry(parent, name, Impl::NewEntry{type | (mode & 07777), rdev, {}}, caller,
                   false);
}

Result<InodeAttr> FsCore::MkDir(Ino parent, std::string_view name, uint32_t mode,
                                const Caller& caller) {
  return impl_->MakeEntry(parent, name, Impl::NewEntry{S_IFDIR | (mode & 07777), 0, {}}, caller,
                   false);
}

Result<InodeAttr> FsCore::Symlink(Ino parent, std::string_view name, std::string_view target,
                                  const Caller& caller) {
  if (target.empty() || target.size() >= 4096) return Status(ENAMETOOLONG, "symlink target length");
  return impl_->MakeEntry(parent, name, Impl::NewEntry{S_IFLNK | 0777, 0, target}, caller, false);
}

Result<InodeAttr> FsCore::Create(Ino parent, std::string_view name, uint32_t mode, int flags,
                                 const Caller& caller) {
  return impl_->MakeEntry(parent, name, Impl::NewEntry{S_IFREG | (mode & 07777), 0, {}}, caller,
                   true);
}

Result<InodeAttr> FsCore::Link(Ino ino, Ino new_parent, std::string_view new_name) {
  RANKFS_RETURN_IF_ERROR(CheckName(new_name));
  if (ino == kStatsIno) return Status(EPERM, "the stats file cannot be linked");
  RANKFS_RETURN_IF_ERROR(impl_->CheckSpace(Impl::SpaceUse::kGrow));
  std::lock_guard<std::mutex> ns(impl_->ns_mu_);
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> dir, impl_->GetInode(new_parent));
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  if (IsStatsName(new_parent, new_name)) return Status(EEXIST, "reserved name");
  RANKFS_ASSIGN_OR_RETURN(auto existing, impl_->meta_->GetDirent(new_parent, new_name));
  if (existing) return Status(EEXIST, "'" + std::string(new_name) + "' exists");
  std::unique_lock<std::shared_mutex> l1(dir->mu, std::defer_lock), l2(inode->mu, std::defer_lock);
  if (dir.get() == inode.get()) return Status(EPERM, "hard link to a directory");
  if (new_parent < ino) { l1.lock(); l2.lock(); } else { l2.lock(); l1.lock(); }
  if (IsDir(inode->attr)) return Status(EPERM, "hard link to a directory");
  if (!IsDir(dir->attr)) return Status(ENOTDIR, "parent is not a directory");
  if (inode->attr.nlink == 0) return Status(ENOENT, "inode was unlinked");
  if (inode->attr.nlink >= 65000) return Status(EMLINK, "too many links");
  int64_t now = NowNs();
  InodeAttr a = inode->attr, d = dir->attr;
  ++a.nlink;
  a.ctime_ns = now;
  d.mtime_ns = d.ctime_ns = now;
  MetaStore::Batch b;
  b.PutInode(a);
  b.PutInode(d);
  b.PutDirent(new_parent, new_name, DirEntry{ino, TypeOf(a.mode)});
  RANKFS_RETURN_IF_ERROR(impl_->meta_->Write(b, false));
  inode->attr = a;
  dir->attr = d;
  impl_->AddLookup(inode);
  return Impl::ReportLocked(*inode);
}

// Drops one name of `child` (already removed from its directory in `b`): nlink goes down, and
// an inode without names goes on the orphan list until its last user lets go.
static void DropLink(InodeAttr* child, int64_t now, MetaStore::Batch* b) {
  if (S_ISDIR(child->mode)) {
    child->nlink = 0;
  } else if (child->nlink > 0) {
    --child->nlink;
  }
  child->ctime_ns = now;
  b->PutInode(*child);
  if (child->nlink == 0) b->PutOrphan(child->ino);
}

// Removes `name` from `parent`: the shared body of Unlink (want_dir false) and RmDir.
Status FsCore::Impl::RemoveName(Ino parent, std::string_view name, bool want_dir) {
  Ino victim = 0;
  {
    std::lock_guard<std::mutex> ns(ns_mu_);
    RANKFS_ASSIGN_OR_RETURN(std::optional<DirEntry> e, meta_->GetDirent(parent, name));
    if (!e) return NotFound(parent, name);
    RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> dir, GetInode(parent));
    RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> child, GetInode(e->ino));
    std::unique_lock<std::shared_mutex> l1(dir->mu, std::defer_lock), l2(child->mu, std::defer_lock);
    if (parent < e->ino) { l1.lock(); l2.lock(); } else { l2.lock(); l1.lock(); }
    InodeAttr c = child->attr, d = dir->attr;
    if (want_dir) {
      if (!IsDir(c)) return Status(ENOTDIR, "rmdir of a non-directory");
      RANKFS_ASSIGN_OR_RETURN(bool empty, meta_->CheckDirEmpty(e->ino));
      if (!empty) return Status(ENOTEMPTY, "directory not empty");
      if (d.nlink > 2) --d.nlink;
    } else if (IsDir(c)) {
      return Status(EISDIR, "unlink of a directory");
    }
    int64_t now = NowNs();
    d.mtime_ns = d.ctime_ns = now;
    MetaStore::Batch b;
    b.DeleteDirent(parent, name);
    b.PutInode(d);
    DropLink(&c, now, &b);
    RANKFS_RETURN_IF_ERROR(meta_->Write(b, false));
    child->attr = c;
    dir->attr = d;
    victim = c.ino;
  }
  MaybeEvict(victim);
  return Status::Ok();
}

Status FsCore::Unlink(Ino parent, std::string_view name) {
  if (IsStatsName(parent, name)) return Status(EPERM, "the stats file cannot be removed");
  return impl_->RemoveName(parent, name, /*want_dir=*/false);
}

Status FsCore::RmDir(Ino parent, std::string_view name) {
  if (name == ".") return Status(EINVAL, "rmdir of '.'");
  if (name == "..") return Status(ENOTEMPTY, "rmdir of '..'");
  return impl_->RemoveName(parent, name, /*want_dir=*/true);
}

}  // namespace rankfs
