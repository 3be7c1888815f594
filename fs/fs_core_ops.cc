// FsCore: rename, attributes, directories, extended attributes and whole-filesystem calls.
#include <fcntl.h>
#include <linux/fs.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>

#include "fs/fs_core.h"
#include "fs/fs_core_impl.h"
#include "store/logging.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace rankfs {
namespace {

bool IsDir(const InodeAttr& a) { return S_ISDIR(a.mode); }
uint8_t TypeOf(uint32_t mode) { return uint8_t((mode & S_IFMT) >> 12); }
bool IsStatsName(Ino parent, std::string_view name) {
  return parent == kRootIno && name == kStatsFileName;
}

// Exclusive locks on a set of inodes, taken in ascending inode order (the lock order).
class MultiLock {
 public:
  explicit MultiLock(std::vector<Inode*> inodes) {
    std::sort(inodes.begin(), inodes.end(),
              [](Inode* a, Inode* b) { return a->attr.ino < b->attr.ino; });
    inodes.erase(std::unique(inodes.begin(), inodes.end()), inodes.end());
    for (Inode* i : inodes) locks_.emplace_back(i->mu);
  }

 private:
  std::vector<std::unique_lock<std::shared_mutex>> locks_;
};

}  // namespace

Status FsCore::Rename(Ino parent, std::string_view name, Ino new_parent,
                      std::string_view new_name, unsigned flags) {
  if ((flags & ~unsigned(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0 ||
      (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)) {
    return Status(EINVAL, "unsupported rename flags");
  }
  if (new_name.empty() || new_name.size() > 255) return Status(ENAMETOOLONG, "bad new name");
  if (new_name.find('/') != std::string_view::npos) return Status(EINVAL, "bad new name");
  if (IsStatsName(parent, name) || IsStatsName(new_parent, new_name)) {
    return Status(EPERM, "the stats file cannot be renamed or replaced");
  }
  Impl* im = impl_.get();
  Ino victim = 0;
  {
    std::lock_guard<std::mutex> ns(im->ns_mu_);
    RANKFS_ASSIGN_OR_RETURN(std::optional<DirEntry> src, im->meta_->GetDirent(parent, name));
    if (!src) return Status(ENOENT, "rename source '" + std::string(name) + "' does not exist");
    RANKFS_ASSIGN_OR_RETURN(std::optional<DirEntry> dst,
                            im->meta_->GetDirent(new_parent, new_name));
    bool exchange = flags & RENAME_EXCHANGE;
    if (exchange && !dst) return Status(ENOENT, "rename exchange target does not exist");
    if (dst && (flags & RENAME_NOREPLACE)) return Status(EEXIST, "rename target exists");
    if (dst && dst->ino == src->ino) return Status::Ok();  // same inode: nothing to do

    RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> p, im->GetInode(parent));
    RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> np, im->GetInode(new_parent));
    RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> s, im->GetInode(src->ino));
    std::shared_ptr<Inode> d;
    if (dst) {
      RANKFS_ASSIGN_OR_RETURN(d, im->GetInode(dst->ino));
    }
    std::vector<Inode*> all = {p.get(), np.get(), s.get()};
    if (d) all.push_back(d.get());
    MultiLock lock(all);

    if (!IsDir(np->attr)) return Status(ENOTDIR, "rename target parent is not a directory");
    if (np->attr.nlink == 0) return Status(ENOENT, "rename target directory was removed");
    if (dst && !exchange) {
      if (IsDir(s->attr)) {
        if (!IsDir(d->attr)) return Status(ENOTDIR, "rename of a directory over a non-directory");
        RANKFS_ASSIGN_OR_RETURN(bool empty, im->meta_->CheckDirEmpty(d->attr.ino));
        if (!empty) return Status(ENOTEMPTY, "rename target not empty");
      } else if (IsDir(d->attr)) {
        return Status(EISDIR, "rename of a non-directory over a directory");
      }
    }
    int64_t now = NowNs();
    // Work on copies; the in-memory attributes change only after the batch is written.
    InodeAttr pa = p->attr, npa = np->attr, sa = s->attr, da = d ? d->attr : InodeAttr();
    InodeAttr& npa_ref = (p == np) ? pa : npa;
    MetaStore::Batch b;
    if (exchange) {
      b.PutDirent(parent, name, DirEntry{da.ino, TypeOf(da.mode)});
      b.PutDirent(new_parent, new_name, DirEntry{sa.ino, TypeOf(sa.mode)});
      if (IsDir(da)) da.parent = parent;
      if (p != np) {
        if (IsDir(sa)) { --pa.nlink; ++npa.nlink; }
        if (IsDir(da)) { --npa.nlink; ++pa.nlink; }
      }
      da.ctime_ns = now;
    } else {
      b.DeleteDirent(parent, name);
      b.PutDirent(new_parent, new_name, DirEntry{sa.ino, TypeOf(sa.mode)});
      if (d) {
        if (IsDir(da) && npa_ref.nlink > 2) --npa_ref.nlink;
        da.nlink = (IsDir(da) || da.nlink == 0) ? 0 : da.nlink - 1;
        da.ctime_ns = now;
        if (da.nlink == 0) b.PutOrphan(da.ino);
      }
      if (IsDir(sa) && p != np) { --pa.nlink; ++npa.nlink; }
    }
    // Set even within one directory: a record older than the field gets it here.
    if (IsDir(sa)) sa.parent = new_parent;
    sa.ctime_ns = now;
    pa.mtime_ns = pa.ctime_ns = now;
    npa_ref.mtime_ns = npa_ref.ctime_ns = now;
    b.PutInode(pa);
    if (p != np) b.PutInode(npa);
    b.PutInode(sa);
    if (d) b.PutInode(da);
    RANKFS_RETURN_IF_ERROR(im->meta_->Write(b, false));
    p->attr = pa;
    if (p != np) np->attr = npa;
    s->attr = sa;
    if (d) {
      d->attr = da;
      if (da.nlink == 0) victim = da.ino;
    }
  }
  if (victim != 0) im->MaybeEvict(victim);
  return Status::Ok();
}

Result<std::string> FsCore::ReadLink(Ino ino) {
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::shared_lock<std::shared_mutex> l(inode->mu);
  if (!S_ISLNK(inode->attr.mode)) return Status(EINVAL, "not a symlink");
  return inode->attr.symlink_target;
}

Result<InodeAttr> FsCore::GetAttr(Ino ino) {
  if (ino == kStatsIno) {
    InodeAttr a;
    a.ino = kStatsIno;
    a.mode = S_IFREG | 0444;
    a.nlink = 1;
    a.allocated_bytes = 0;
    a.size = StatsText().size();
    a.atime_ns = a.mtime_ns = a.ctime_ns = NowNs();
    return a;
  }
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::shared_lock<std::shared_mutex> l(inode->mu);
  return Impl::ReportLocked(*inode);
}

Result<InodeAttr> FsCore::SetAttr(Ino ino, const SetAttrRequest& r) {
  if (ino == kStatsIno) return Status(EPERM, "the stats file is read-only");
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  if (inode->deleted) return Status(ENOENT, "inode was deleted");
  int64_t now = NowNs();
  if (r.set_size) {
    if (IsDir(inode->attr)) return Status(EISDIR, "truncate of a directory");
    if (!S_ISREG(inode->attr.mode)) return Status(EINVAL, "truncate of a special file");
    if (r.size != inode->attr.size) RANKFS_RETURN_IF_ERROR(impl_->DropPrivsLocked(inode.get()));
    RANKFS_RETURN_IF_ERROR(impl_->TruncateLocked(inode.get(), r.size));
    inode->attr.mtime_ns = now;
  }
  if ((r.set_uid || r.set_gid) && !r.set_mode) {
    // chown clears setuid/setgid-exec and file capabilities, for root too (Linux since 2.2.13);
    // under KILLPRIV_V2 the kernel leaves that to the filesystem.
    RANKFS_RETURN_IF_ERROR(impl_->DropPrivsLocked(inode.get()));
  }
  InodeAttr a = inode->attr;
  if (r.set_mode) a.mode = (a.mode & S_IFMT) | (r.mode & 07777);
  if (r.set_uid) a.uid = r.uid;
  if (r.set_gid) a.gid = r.gid;
  if (r.set_atime) a.atime_ns = r.atime_ns;
  if (r.set_atime_now) a.atime_ns = now;
  if (r.set_mtime) a.mtime_ns = r.mtime_ns;
  if (r.set_mtime_now) a.mtime_ns = now;
  a.ctime_ns = r.set_ctime ? r.ctime_ns : now;
  // An unlinked inode's attributes die with it (the kernel pushes times at the last close).
  // Times the writeback cache pushes onto a file whose bytes are still in its stream reach the
  // store with those bytes (or not at all, for a temporary file removed before that): the
  // store's record never says more than its data does, and a create-write-close-unlink costs
  // one RocksDB write fewer.
  const bool times_only = !r.set_size && !r.set_mode && !r.set_uid && !r.set_gid;
  const bool deferred = times_only && Impl::RecordFollowsLocked(*inode);
  if (a.nlink > 0 && !deferred) RANKFS_RETURN_IF_ERROR(impl_->PersistAttr(a, false));
  inode->attr = a;
  return Impl::ReportLocked(*inode);
}

Result<std::unique_ptr<FsCore::DirListing>> FsCore::OpenDir(Ino ino) {
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  Ino parent;
  {
    std::shared_lock<std::shared_mutex> l(inode->mu);
    if (!IsDir(inode->attr)) return Status(ENOTDIR, "not a directory");
    // 0: a record older than the parent field, not reached by a lookup in this run (which
    // would have filled it in): the directory itself, as rankfs answered before.
    parent = inode->attr.parent != 0 ? inode->attr.parent : ino;
  }
  auto listing = std::make_unique<DirListing>();
  listing->dir = ino;
  listing->entries.push_back({".", ino, S_IFDIR});
  listing->entries.push_back({"..", ino == kRootIno ? kRootIno : parent, S_IFDIR});
  RANKFS_RETURN_IF_ERROR(impl_->meta_->ListDir(ino, "", [&](std::string_view n, const DirEntry& e) {
    listing->entries.push_back({std::string(n), e.ino, uint32_t(e.type) << 12});
    return true;
  }));
  return listing;
}

Status FsCore::FsyncDir(Ino ino) {
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  {
    std::shared_lock<std::shared_mutex> l(inode->mu);
    if (!IsDir(inode->attr)) return Status(ENOTDIR, "fsync of a directory that is not one");
  }
  // Every name change is in the metadata log when its call returns; syncing the log makes
  // them all durable.
  return impl_->meta_->SyncWal().Annotate("fsyncdir");
}

Status FsCore::SetXattr(Ino ino, std::string_view name, std::string_view value, int flags) {
  if (!impl_->options_.xattrs) return Status(ENOSYS, "xattrs are off for this mount");
  if (ino == kStatsIno) return Status(EPERM, "the stats file is read-only");
  if (name.empty() || name.size() > 255) return Status(ERANGE, "xattr name length");
  if (value.size() > 65536) return Status(E2BIG, "xattr value larger than 64 KiB");
  RANKFS_RETURN_IF_ERROR(impl_->CheckSpace(Impl::SpaceUse::kGrow));
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  RANKFS_ASSIGN_OR_RETURN(std::optional<std::string> old, impl_->meta_->GetXattr(ino, name));
  if ((flags & XATTR_CREATE) && old) return Status(EEXIST, "xattr exists");
  if ((flags & XATTR_REPLACE) && !old) return Status(ENODATA, "xattr does not exist");
  InodeAttr a = inode->attr;
  a.ctime_ns = NowNs();
  MetaStore::Batch b;
  b.PutXattr(ino, name, value);
  b.PutInode(a);
  RANKFS_RETURN_IF_ERROR(impl_->meta_->Write(b, false));
  inode->attr = a;
  inode->may_have_xattrs = true;
  if (name == "security.capability") inode->no_caps = false;
  return Status::Ok();
}

Result<std::string> FsCore::GetXattr(Ino ino, std::string_view name) {
  impl_->getxattr_requests_.fetch_add(1, std::memory_order_relaxed);
  if (!impl_->options_.xattrs) return Status(ENOSYS, "xattrs are off for this mount");
  if (ino == kStatsIno) return Status(ENODATA, "no xattrs on the stats file");
  // The kernel asks every new file for security.capability: answer from memory when the file
  // never had an xattr.
  if (std::shared_ptr<Inode> inode = impl_->FindInode(ino)) {
    std::shared_lock<std::shared_mutex> l(inode->mu);
    if (!inode->may_have_xattrs) return Status(ENODATA, "no such xattr");
  }
  RANKFS_ASSIGN_OR_RETURN(std::optional<std::string> v, impl_->meta_->GetXattr(ino, name));
  if (!v) return Status(ENODATA, "no such xattr");
  return std::move(*v);
}

Result<std::string> FsCore::ListXattr(Ino ino) {
  if (!impl_->options_.xattrs) return Status(ENOSYS, "xattrs are off for this mount");
  std::string out;
  if (ino == kStatsIno) return out;
  if (std::shared_ptr<Inode> inode = impl_->FindInode(ino)) {
    std::shared_lock<std::shared_mutex> l(inode->mu);
    if (!inode->may_have_xattrs) return out;
  }
  RANKFS_RETURN_IF_ERROR(impl_->meta_->ListXattrs(ino, [&](std::string_view n) {
    out.append(n);
    out.push_back('\0');
    return true;
  }));
  return out;
}

Status FsCore::RemoveXattr(Ino ino, std::string_view name) {
  if (!impl_->options_.xattrs) return Status(ENOSYS, "xattrs are off for this mount");
  if (ino == kStatsIno) return Status(EPERM, "the stats file is read-only");
  RANKFS_ASSIGN_OR_RETURN(std::shared_ptr<Inode> inode, impl_->GetInode(ino));
  std::unique_lock<std::shared_mutex> l(inode->mu);
  RANKFS_ASSIGN_OR_RETURN(std::optional<std::string> old, impl_->meta_->GetXattr(ino, name));
  if (!old) return Status(ENODATA, "no such xattr");
  InodeAttr a = inode->attr;
  a.ctime_ns = NowNs();
  MetaStore::Batch b;
  b.DeleteXattr(ino, name);
  b.PutInode(a);
  RANKFS_RETURN_IF_ERROR(impl_->meta_->Write(b, false));
  inode->attr = a;
  return Status::Ok();
}

Result<SpaceInfo> FsCore::StatFs() {
  RANKFS_ASSIGN_OR_RETURN(SpaceInfo info,
                          impl_->store_->env()->GetSpaceInfo(impl_->store_->dir()));
  // The reserve is not available to users (CheckSpace), so df must not count it as such.
  const uint64_t reserve = impl_->options_.reserve_bytes == 0 ? 0
                                                              : impl_->ReserveFor(info.total_bytes);
  info.avail_bytes = info.avail_bytes > reserve ? info.avail_bytes - reserve : 0;
  return info;
}

void FsCore::CountLookupRequest() {
  impl_->lookup_requests_.fetch_add(1, std::memory_order_relaxed);
}

void FsCore::CountPageFillStarted() {
  impl_->page_fills_started_.fetch_add(1, std::memory_order_relaxed);
}

void FsCore::CountPageFillDone(uint64_t bytes) {
  impl_->page_fill_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  impl_->page_fills_done_.fetch_add(1, std::memory_order_relaxed);
}

FsStats FsCore::Stats() {
  FsStats s;
  s.chunks = impl_->chunks_->GetStats();
  s.unique_raw_bytes = s.chunks.raw_bytes;
  s.stored_bytes = s.chunks.stored_bytes;
  s.dirty_bytes = impl_->room_.buffered();
  s.dirty_peak_bytes = impl_->room_.peak();
  s.write_buffer_waits = impl_->room_.waits();
  s.idle_heap_trims = impl_->room_.idle_trims();
  s.heap_trims = s.idle_heap_trims;
  s.cache_hits = impl_->cache_.hits();
  s.cache_misses = impl_->cache_.misses();
  s.cache_shared_loads = impl_->cache_.shared_loads();
  s.page_fill_bytes = impl_->page_fill_bytes_.load(std::memory_order_relaxed);
  s.page_fills_started = impl_->page_fills_started_.load(std::memory_order_relaxed);
  s.page_fills_done = impl_->page_fills_done_.load(std::memory_order_relaxed);
  s.getxattr_requests = impl_->getxattr_requests_.load(std::memory_order_relaxed);
  s.lookup_requests = impl_->lookup_requests_.load(std::memory_order_relaxed);
  const Impl::StageCounters& g = impl_->stage_;
  s.gpu_reads = g.reads.load(std::memory_order_relaxed);
  s.gpu_bytes = g.bytes.load(std::memory_order_relaxed);
  s.gpu_fallback_reads = g.fallback_reads.load(std::memory_order_relaxed);
  s.gpu_chunk_reads = g.chunk_reads.load(std::memory_order_relaxed);
  s.gpu_preads = g.preads.load(std::memory_order_relaxed);
  s.gpu_direct_chunks = g.direct_chunks.load(std::memory_order_relaxed);
  s.gpu_cache_hits = g.cache_hits.load(std::memory_order_relaxed);
  s.gpu_repeat_uses = g.repeat_uses.load(std::memory_order_relaxed);
  s.gpu_max_concurrent_reads = g.max_in_flight.load(std::memory_order_relaxed);
  s.hashed_bytes = impl_->hashed_bytes_.load();
  s.predicted_bytes = impl_->predicted_bytes_.load();
  if (impl_->pipeline_) {
    FlushPipelineStats p = impl_->pipeline_->GetStats();
    s.batches = p.batches;
    s.commit_rounds = p.commit_rounds;
    s.heap_trims += p.heap_trims;
  }
  s.chunk_cache_bytes = impl_->cache_.bytes();
  s.chunk_buffer_bytes = LiveChunkBytes();
  const MetaStore::MemoryUse m = impl_->meta_->GetMemoryUse();
  s.meta_memtable_bytes = m.memtables;
  s.meta_block_cache_bytes = m.block_cache;
  s.meta_table_reader_bytes = m.table_readers;
  const struct mallinfo2 mi = mallinfo2();
  s.heap_used_bytes = mi.uordblks + mi.hblkhd;
  s.heap_free_bytes = mi.fordblks;
  // Logical bytes: every regular file's size (a scan; stats are read rarely).
  impl_->meta_->ForEachInode([&](const InodeAttr& a) {
    if (S_ISREG(a.mode) && a.nlink > 0) {
      s.logical_bytes += a.size;
      ++s.files;
    }
    return true;
  }).IgnoreError();
  s.physical_bytes = s.chunks.allocated_bytes;
  return s;
}

std::string FsCore::StatsText() {
  FsStats s = Stats();
  auto ratio = [](uint64_t a, uint64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", b == 0 ? 0.0 : double(a) / double(b));
    return std::string(buf);
  };
  std::string out;
  auto line = [&](const char* k, const std::string& v) { out += std::string(k) + "=" + v + "\n"; };
  line("logical_bytes", std::to_string(s.logical_bytes));
  line("files", std::to_string(s.files));
  line("unique_bytes", std::to_string(s.unique_raw_bytes));
  line("stored_bytes", std::to_string(s.stored_bytes));
  line("physical_bytes", std::to_string(s.physical_bytes));
  line("dirty_bytes", std::to_string(s.dirty_bytes));
  line("dirty_peak_bytes", std::to_string(s.dirty_peak_bytes));
  line("write_buffer_waits", std::to_string(s.write_buffer_waits));
  line("chunks", std::to_string(s.chunks.chunks));
  line("dedup_ratio", ratio(s.logical_bytes, s.unique_raw_bytes));
  line("compression_ratio", ratio(s.unique_raw_bytes, s.stored_bytes));
  line("space_saving_ratio", ratio(s.logical_bytes, s.physical_bytes));
  line("dedup_hits", std::to_string(s.chunks.dedup_hits));
  line("reclaim_backlog_bytes", std::to_string(s.chunks.reclaim_backlog));
  line("read_errors", std::to_string(s.chunks.read_errors));
  line("index_reads", std::to_string(s.chunks.index_reads));
  line("cache_hits", std::to_string(s.cache_hits));
  line("cache_misses", std::to_string(s.cache_misses));
  line("cache_shared_loads", std::to_string(s.cache_shared_loads));
  line("page_fill_bytes", std::to_string(s.page_fill_bytes));
  line("page_fills_started", std::to_string(s.page_fills_started));
  line("page_fills_done", std::to_string(s.page_fills_done));
  line("getxattr_requests", std::to_string(s.getxattr_requests));
  line("lookup_requests", std::to_string(s.lookup_requests));
  line("stream_hashed_bytes", std::to_string(s.hashed_bytes));
  line("stream_predicted_bytes", std::to_string(s.predicted_bytes));
  line("flush_batches", std::to_string(s.batches));
  line("commit_rounds", std::to_string(s.commit_rounds));
  line("chunk_cache_bytes", std::to_string(s.chunk_cache_bytes));
  line("chunk_buffer_bytes", std::to_string(s.chunk_buffer_bytes));
  line("meta_memtable_bytes", std::to_string(s.meta_memtable_bytes));
  line("meta_block_cache_bytes", std::to_string(s.meta_block_cache_bytes));
  line("meta_table_reader_bytes", std::to_string(s.meta_table_reader_bytes));
  line("heap_used_bytes", std::to_string(s.heap_used_bytes));
  line("heap_free_bytes", std::to_string(s.heap_free_bytes));
  line("heap_trims", std::to_string(s.heap_trims));
  line("idle_heap_trims", std::to_string(s.idle_heap_trims));
  line("gpu_reads", std::to_string(s.gpu_reads));
  line("gpu_bytes", std::to_string(s.gpu_bytes));
  line("gpu_fallback_reads", std::to_string(s.gpu_fallback_reads));
  line("gpu_chunk_reads", std::to_string(s.gpu_chunk_reads));
  line("gpu_preads", std::to_string(s.gpu_preads));
  line("gpu_direct_chunks", std::to_string(s.gpu_direct_chunks));
  line("gpu_cache_hits", std::to_string(s.gpu_cache_hits));
  line("gpu_repeat_uses", std::to_string(s.gpu_repeat_uses));
  line("gpu_max_concurrent_reads", std::to_string(s.gpu_max_concurrent_reads));
  if (!options().gpu_socket.empty()) line("gpu_socket", options().gpu_socket);
  return out;
}

Status FsCore::DrainBackground() {
  // Lazily closed files are stored now rather than when their time is up.
  std::deque<std::pair<int64_t, std::weak_ptr<Inode>>> lazy;
  {
    std::lock_guard<std::mutex> l(impl_->lazy_mu_);
    lazy.swap(impl_->lazy_);
  }
  Status first;
  for (auto& [until, weak] : lazy) {
    std::shared_ptr<Inode> inode = weak.lock();
    if (!inode) continue;
    std::unique_lock<std::shared_mutex> il(inode->mu);
    if (inode->lazy_until_ns == 0 || inode->deleted) continue;
    Status s = impl_->FinishStreamLocked(inode.get());
    if (!s.ok() && first.ok()) first = s;
  }
  impl_->pipeline_->Drain();  // batches of deleted files finish before their deletion
  std::unique_lock<std::mutex> l(impl_->delete_mu_);
  impl_->delete_cv_.wait(l, [&] {
    return impl_->delete_queue_.empty() && impl_->evict_checks_.empty() && !impl_->deleting_;
  });
  l.unlock();
  Status r = impl_->chunks_->Reclaim();
  return first.ok() ? r : first;
}

Status FsCore::Shutdown() {
  {
    std::lock_guard<std::mutex> ns(impl_->ns_mu_);
    if (impl_->shut_down_) return Status::Ok();
    impl_->shut_down_ = true;
  }
  Status first;
  std::vector<std::shared_ptr<Inode>> inodes;
  {
    std::lock_guard<std::mutex> l(impl_->table_mu_);
    for (auto& [ino, inode] : impl_->table_) inodes.push_back(inode);
  }
  for (auto& inode : inodes) {
    std::unique_lock<std::shared_mutex> l(inode->mu);
    if (inode->deleted || inode->attr.nlink == 0 || !impl_->HoldsDataLocked(inode.get())) continue;
    Status s = impl_->SettleLocked(inode.get(), /*sync=*/false);
    if (!s.ok() && first.ok()) first = s;
  }
  Status d = DrainBackground();
  if (first.ok()) first = d;
  Status f = impl_->chunks_->Flush();
  if (first.ok()) first = f;
  Status w = impl_->meta_->SyncWal();
  if (first.ok()) first = w;
  return first;
}

}  // namespace rankfs
