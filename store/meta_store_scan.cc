// MetaStore's range scans: directory listings, extent lookups by file range, xattr names and
// the whole-family walks used by fsck and rebuilds. Open, writes and point reads are in
// meta_store.cc.
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <memory>

#include "store/meta_codec.h"
#include "store/meta_store.h"
#include "store/meta_store_internal.h"

namespace rankfs {
namespace {

using meta_internal::BadKey;
using meta_internal::DescribeKey;
using meta_internal::FromRocks;
using meta_internal::kCfNames;
using meta_internal::StopBadKey;
using meta_internal::StopBadValue;
using meta_internal::ToSlice;
using meta_internal::ToView;

// The smallest string greater than every string starting with `prefix`; false when there is
// none (empty prefix, or all bytes 0xff).
bool PrefixSuccessor(std::string_view prefix, std::string* out) {
  out->assign(prefix);
  while (!out->empty() && uint8_t(out->back()) == 0xff) out->pop_back();
  if (out->empty()) return false;
  out->back() = char(uint8_t(out->back()) + 1);
  return true;
}

// Decodes an extent read from the store. Frame extents (format 3) are refused: nothing in this
// rankfs resolves a frame yet, and every reader of extents takes `chunk` as the backing chunk
// of any extent that is not unwritten.
Result<Extent> DecodeStoredExtent(std::string_view value) {
  Result<Extent> e = DecodeExtent(value);
  if (e.ok() && e->kind() == Extent::Kind::kFrame) {
    return Status(EUCLEAN, "extent names frame " + std::to_string(e->frame_id) +
                               " (store format 3), which this rankfs does not read yet");
  }
  return e;
}

}  // namespace

// ---- Scans -----------------------------------------------------------------------------------

Status MetaStore::Scan(Cf cf, std::string_view prefix, std::string_view start, bool full_scan,
                       const ScanFn& fn) {
  rocksdb::ReadOptions ro;
  if (full_scan) {
    ro.fill_cache = false;
    ro.readahead_size = 2 << 20;
  }
  std::string upper;
  rocksdb::Slice upper_slice;
  if (PrefixSuccessor(prefix, &upper)) {
    upper_slice = ToSlice(upper);
    ro.iterate_upper_bound = &upper_slice;  // lets RocksDB stop at the prefix's end
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[int(cf)]));
  for (it->Seek(ToSlice(std::max(start, prefix))); it->Valid(); it->Next()) {
    std::string_view key = ToView(it->key());
    if (!key.starts_with(prefix)) break;
    if (!fn(key, ToView(it->value()))) return Status::Ok();
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), std::string("scanning ") + kCfNames[int(cf)]);
  }
  return Status::Ok();
}

Status MetaStore::ListDir(Ino parent, std::string_view start_after,
                          const std::function<bool(std::string_view, const DirEntry&)>& fn) {
  const std::string start = start_after.empty() ? std::string() : DirentKey(parent, start_after);
  Status st;
  auto visit = [&](std::string_view key, std::string_view value) {
    Ino p = 0;
    std::string_view name;
    if (!DecodeDirentKey(key, &p, &name)) return StopBadKey(&st, Cf::kDirents, key);
    if (name == start_after) return true;  // the scan starts at it; list what follows
    Result<DirEntry> e = DecodeDirEntry(value);
    if (!e.ok()) return StopBadValue(&st, Cf::kDirents, key, e.status());
    return fn(name, *e);
  };
  RANKFS_RETURN_IF_ERROR(Scan(Cf::kDirents, DirentPrefix(parent), start, false, visit));
  return st;
}

Result<bool> MetaStore::CheckDirEmpty(Ino parent) {
  bool empty = true;
  auto visit = [&](std::string_view, std::string_view) {
    empty = false;
    return false;  // one entry settles it
  };
  RANKFS_RETURN_IF_ERROR(Scan(Cf::kDirents, DirentPrefix(parent), {}, false, visit));
  return empty;
}

bool MetaStore::DirIsEmpty(Ino parent) {
  Result<bool> r = CheckDirEmpty(parent);
  return r.ok() && *r;
}

Status MetaStore::ListExtents(Ino ino, uint64_t from, uint64_t to,
                              const std::function<bool(uint64_t, const Extent&)>& fn) {
  if (from >= to) return Status::Ok();
  const std::string lower = ExtentPrefix(ino), upper = ExtentKey(ino, to);
  const std::string target = ExtentKey(ino, from);
  const rocksdb::Slice lower_slice = ToSlice(lower), upper_slice = ToSlice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[int(Cf::kExtents)]));
  const std::string what = "listing extents of inode " + std::to_string(ino);
  // The last extent starting at or before `from` may reach into the range; when there is
  // none, start at the first extent after `from`.
  it->SeekForPrev(ToSlice(target));
  if (!it->Valid()) {
    if (!it->status().ok()) return FromRocks(it->status(), what);
    it->Seek(ToSlice(target));
  }
  for (; it->Valid(); it->Next()) {
    std::string_view key = ToView(it->key());
    Ino key_ino = 0;
    uint64_t off = 0;
    if (!DecodeExtentKey(key, &key_ino, &off)) return BadKey(Cf::kExtents, key);
    if (key_ino != ino || off >= to) break;  // the bounds stop here already; be explicit
    Result<Extent> e = DecodeStoredExtent(ToView(it->value()));
    if (!e.ok()) return e.status().Annotate("metadata store: " + DescribeKey(Cf::kExtents, key));
    if (off < from && e->length <= from - off) continue;  // ends at or before `from`
    if (!fn(off, *e)) return Status::Ok();
  }
  if (!it->status().ok()) return FromRocks(it->status(), what);
  return Status::Ok();
}

Status MetaStore::ListXattrs(Ino ino, const std::function<bool(std::string_view)>& fn) {
  Status st;
  auto visit = [&](std::string_view key, std::string_view) {
    Ino i = 0;
    std::string_view name;
    if (!DecodeXattrKey(key, &i, &name)) return StopBadKey(&st, Cf::kXattrs, key);
    return fn(name);
  };
  RANKFS_RETURN_IF_ERROR(Scan(Cf::kXattrs, XattrPrefix(ino), {}, false, visit));
  return st;
}

Status MetaStore::ForEachInode(const std::function<bool(const InodeAttr&)>& fn) {
  Status st;
  auto visit = [&](std::string_view key, std::string_view value) {
    Ino ino = 0;
    if (!DecodeInodeKey(key, &ino)) return StopBadKey(&st, Cf::kInodes, key);
    Result<InodeAttr> a = DecodeInodeAttr(value);
    if (!a.ok()) return StopBadValue(&st, Cf::kInodes, key, a.status());
    if (a->ino != ino) {
      return StopBadValue(&st, Cf::kInodes, key,
                          Status(EUCLEAN, "holds the record of inode " + std::to_string(a->ino)));
    }
    return fn(*a);
  };
  RANKFS_RETURN_IF_ERROR(Scan(Cf::kInodes, {}, {}, true, visit));
  return st;
}

Status MetaStore::ForEachExtent(const std::function<bool(Ino, uint64_t, const Extent&)>& fn) {
  Status st;
  auto visit = [&](std::string_view key, std::string_view value) {
    Ino ino = 0;
    uint64_t off = 0;
    if (!DecodeExtentKey(key, &ino, &off)) return StopBadKey(&st, Cf::kExtents, key);
    Result<Extent> e = DecodeStoredExtent(value);
    if (!e.ok()) return StopBadValue(&st, Cf::kExtents, key, e.status());
    return fn(ino, off, *e);
  };
  RANKFS_RETURN_IF_ERROR(Scan(Cf::kExtents, {}, {}, true, visit));
  return st;
}

Status MetaStore::ForEachChunk(
    const std::function<bool(const ChunkHash&, const ChunkRecord&)>& fn) {
  Status st;
  auto visit = [&](std::string_view key, std::string_view value) {
    ChunkHash h;
    if (!DecodeChunkKey(key, &h)) return StopBadKey(&st, Cf::kChunks, key);
    Result<ChunkRecord> r = DecodeChunkRecord(value);
    if (!r.ok()) return StopBadValue(&st, Cf::kChunks, key, r.status());
    return fn(h, *r);
  };
  RANKFS_RETURN_IF_ERROR(Scan(Cf::kChunks, {}, {}, true, visit));
  return st;
}

Status MetaStore::ForEachOrphan(const std::function<bool(Ino)>& fn) {
  Status st;
  auto visit = [&](std::string_view key, std::string_view) {
    Ino ino = 0;
    if (!DecodeOrphanKey(key, &ino)) return StopBadKey(&st, Cf::kOrphans, key);
    return fn(ino);
  };
  RANKFS_RETURN_IF_ERROR(Scan(Cf::kOrphans, {}, {}, true, visit));
  return st;
}

Status MetaStore::ForEachPack(const std::function<bool(uint32_t, const PackStats&)>& fn) {
  Status st;
  auto visit = [&](std::string_view key, std::string_view value) {
    uint32_t id = 0;
    if (!DecodePackKey(key, &id)) return StopBadKey(&st, Cf::kPacks, key);
    Result<PackStats> s = DecodePackStats(value);
    if (!s.ok()) return StopBadValue(&st, Cf::kPacks, key, s.status());
    return fn(id, *s);
  };
  RANKFS_RETURN_IF_ERROR(Scan(Cf::kPacks, {}, {}, true, visit));
  return st;
}

}  // namespace rankfs
