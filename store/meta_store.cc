#include "store/meta_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "store/logging.h"
#include "store/meta_codec.h"
#include "store/meta_options.h"
#include "store/meta_store_internal.h"

namespace rankfs {
namespace {

// The errno a RocksDB failure means to a caller of rankfs.
int ErrnoOf(const rocksdb::Status& s) {
  if (s.IsNoSpace()) return ENOSPC;  // before IsIOError: NoSpace is an IOError subcode
  if (s.IsCorruption()) return EUCLEAN;
  if (s.IsPathNotFound()) return ENOENT;
  if (s.IsIOError()) return EIO;
  if (s.IsInvalidArgument()) return EINVAL;
  if (s.IsNotSupported()) return ENOTSUP;
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) return EAGAIN;
  if (s.IsShutdownInProgress()) return ESHUTDOWN;
  return EIO;
}

// What a column family's records are called in messages, indexed by Cf.
constexpr const char* kCfKinds[] = {"superblock", "inode", "dirent", "extent",
                                    "chunk",      "xattr", "orphan", "pack"};
static_assert(std::size(kCfKinds) == size_t(Cf::kCount));

}  // namespace

namespace meta_internal {

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  return Status(ErrnoOf(s), "metadata store: " + std::string(what) + ": " + s.ToString());
}

std::string DescribeKey(Cf cf, std::string_view key) {
  Ino ino = 0;
  uint64_t off = 0;
  uint32_t pack = 0;
  std::string_view name;
  ChunkHash h;
  const std::string kind = cf < Cf::kCount ? kCfKinds[int(cf)] : "record";
  auto quoted = [](std::string_view n) { return "\"" + std::string(n) + "\""; };
  switch (cf) {
    case Cf::kSuper:
      return kind;
    case Cf::kInodes:
      if (DecodeInodeKey(key, &ino)) return kind + " " + std::to_string(ino);
      break;
    case Cf::kDirents:
    case Cf::kXattrs:
      if (DecodeDirentKey(key, &ino, &name)) {  // both are parent/owner + name
        return kind + " " + std::to_string(ino) + "/" + quoted(name);
      }
      break;
    case Cf::kExtents:
      if (DecodeExtentKey(key, &ino, &off)) {
        return kind + " " + std::to_string(ino) + "@" + std::to_string(off);
      }
      break;
    case Cf::kChunks:
      if (DecodeChunkKey(key, &h)) return kind + " " + h.ToHex();
      break;
    case Cf::kOrphans:
      if (DecodeOrphanKey(key, &ino)) return kind + " " + std::to_string(ino);
      break;
    case Cf::kPacks:
      if (DecodePackKey(key, &pack)) return kind + " " + std::to_string(pack);
      break;
    case Cf::kCount:
      break;
  }
  return kind + " key of " + std::to_string(key.size()) + " bytes";
}

Status BadKey(Cf cf, std::string_view key) {
  return Status(EUCLEAN, "metadata store: malformed " + DescribeKey(cf, key));
}

bool StopBadKey(Status* st, Cf cf, std::string_view key) {
  *st = BadKey(cf, key);
  return false;
}
bool StopBadValue(Status* st, Cf cf, std::string_view key, const Status& why) {
  *st = why.Annotate("metadata store: " + DescribeKey(cf, key));
  return false;
}

}  // namespace meta_internal

namespace {

using meta_internal::BadKey;
using meta_internal::DescribeKey;
using meta_internal::FromRocks;
using meta_internal::kCfNames;
using meta_internal::ToSlice;
using meta_internal::ToView;

// Turns a found/not-found value into an optional record, decoding it with `decode`.
template <typename T>
Result<std::optional<T>> DecodeIfFound(Cf cf, std::string_view key, bool found,
                                       std::string_view value,
                                       Result<T> (*decode)(std::string_view)) {
  if (!found) return std::optional<T>();
  Result<T> r = decode(value);
  if (!r.ok()) return r.status().Annotate("metadata store: " + DescribeKey(cf, key));
  return std::optional<T>(std::move(r).value());
}

}  // namespace

// ---- Batch -----------------------------------------------------------------------------------

void MetaStore::Batch::Put(Cf cf, std::string key, std::string value) {
  ops_.push_back(Op{cf, false, std::move(key), std::move(value)});
}
void MetaStore::Batch::Delete(Cf cf, std::string key) {
  ops_.push_back(Op{cf, true, std::move(key), {}});
}

void MetaStore::Batch::PutSuper(const Superblock& sb) {
  Put(Cf::kSuper, std::string(kSuperKey), EncodeSuperblock(sb));
}
void MetaStore::Batch::PutInode(const InodeAttr& a) {
  Put(Cf::kInodes, InodeKey(a.ino), EncodeInodeAttr(a));
}
void MetaStore::Batch::DeleteInode(Ino ino) { Delete(Cf::kInodes, InodeKey(ino)); }
void MetaStore::Batch::PutDirent(Ino parent, std::string_view name, const DirEntry& e) {
  Put(Cf::kDirents, DirentKey(parent, name), EncodeDirEntry(e));
}
void MetaStore::Batch::DeleteDirent(Ino parent, std::string_view name) {
  Delete(Cf::kDirents, DirentKey(parent, name));
}
void MetaStore::Batch::PutExtent(Ino ino, uint64_t file_offset, const Extent& e) {
  Put(Cf::kExtents, ExtentKey(ino, file_offset), EncodeExtent(e));
}
void MetaStore::Batch::DeleteExtent(Ino ino, uint64_t file_offset) {
  Delete(Cf::kExtents, ExtentKey(ino, file_offset));
}
void MetaStore::Batch::PutChunk(const ChunkHash& h, const ChunkRecord& r) {
  Put(Cf::kChunks, ChunkKey(h), EncodeChunkRecord(r));
}
void MetaStore::Batch::DeleteChunk(const ChunkHash& h) { Delete(Cf::kChunks, ChunkKey(h)); }
void MetaStore::Batch::PutXattr(Ino ino, std::string_view name, std::string_view value) {
  Put(Cf::kXattrs, XattrKey(ino, name), std::string(value));
}
void MetaStore::Batch::DeleteXattr(Ino ino, std::string_view name) {
  Delete(Cf::kXattrs, XattrKey(ino, name));
}
void MetaStore::Batch::PutOrphan(Ino ino) { Put(Cf::kOrphans, OrphanKey(ino), {}); }
void MetaStore::Batch::DeleteOrphan(Ino ino) { Delete(Cf::kOrphans, OrphanKey(ino)); }
void MetaStore::Batch::PutPack(uint32_t pack_id, const PackStats& s) {
  Put(Cf::kPacks, PackKey(pack_id), EncodePackStats(s));
}
void MetaStore::Batch::DeletePack(uint32_t pack_id) { Delete(Cf::kPacks, PackKey(pack_id)); }

void MetaStore::Batch::Append(const Batch& other) {
  if (&other == this) {  // inserting a vector's own range into itself is undefined
    std::vector<Op> copy = ops_;
    ops_.insert(ops_.end(), copy.begin(), copy.end());
    return;
  }
  ops_.insert(ops_.end(), other.ops_.begin(), other.ops_.end());
}

// ---- Open / Close ----------------------------------------------------------------------------

Result<std::unique_ptr<MetaStore>> MetaStore::Open(const std::string& dir,
                                                   const MetaStoreOptions& options,
                                                   const Superblock& initial_super) {
  const std::string ctx = "opening metadata store " + dir;
  // Refuse to create a store this build could not read back.
  Result<Superblock> check = DecodeSuperblock(EncodeSuperblock(initial_super));
  if (!check.ok()) {
    return Status(EINVAL, "invalid initial superblock: " + check.status().message()).Annotate(ctx);
  }
  rocksdb::DBOptions db_options = MetaDbOptions(options);
  if (!options.create_if_missing || options.read_only) {
    rocksdb::Env* env = db_options.env;
    if (env->FileExists(dir + "/CURRENT").IsNotFound()) {
      return Status(ENOENT, ctx + ": no database there");
    }
  } else {
    // Made here so that RocksDB does not log a missing directory as an error (its log goes to
    // the daemon's, see RocksLogger); if this fails, DB::Open says why.
    db_options.env->CreateDirIfMissing(dir).PermitUncheckedError();
  }

  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (int i = 0; i < int(Cf::kCount); ++i) {
    descs.emplace_back(kCfNames[i], MetaCfOptions(Cf(i), cache, options));
  }
  // RocksDB refuses to open a database unless every family in it is named. Families we do not
  // know (a newer rankfs made them) are opened too, so that the superblock check below can say
  // why this store cannot be used. Failure here just means there is no database yet.
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, dir, &existing).ok()) {
    for (const std::string& name : existing) {
      if (std::find(std::begin(kCfNames), std::end(kCfNames), name) == std::end(kCfNames)) {
        descs.emplace_back(name, rocksdb::ColumnFamilyOptions());
      }
    }
  }

  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = options.read_only
                          ? rocksdb::DB::OpenForReadOnly(db_options, dir, descs, &handles, &raw)
                          : rocksdb::DB::Open(db_options, dir, descs, &handles, &raw);
  if (!s.ok()) return FromRocks(s, "opening " + dir);
  std::unique_ptr<MetaStore> store(new MetaStore());
  store->read_only_ = options.read_only;
  store->write_hook_ = options.write_hook;
  store->db_.reset(raw);
  store->cfs_.assign(handles.begin(), handles.begin() + int(Cf::kCount));
  for (size_t i = size_t(Cf::kCount); i < handles.size(); ++i) {
    raw->DestroyColumnFamilyHandle(handles[i]).PermitUncheckedError();
  }

  std::string value;
  bool found = false;
  RANKFS_RETURN_IF_ERROR(store->Get(Cf::kSuper, kSuperKey, &value, &found));
  if (found) {
    Result<Superblock> sb = DecodeSuperblock(value);
    if (!sb.ok()) return sb.status().Annotate(ctx);
    if (options.upgrade_format && !options.read_only &&
        sb->format_version < Superblock::kFormatVersion) {
      sb->format_version = Superblock::kFormatVersion;
      Batch b;
      b.PutSuper(*sb);
      RANKFS_RETURN_IF_ERROR(
          store->Write(b, /*sync=*/true).Annotate(ctx + ": upgrading its format"));
    }
    store->super_ = *sb;
    return store;
  }
  // No superblock: a new database, or a crash between its creation and the superblock's
  // write. Either way it must hold nothing else; if it holds inodes, the superblock was lost.
  bool has_inodes = false;
  RANKFS_RETURN_IF_ERROR(
      store->Scan(Cf::kInodes, {}, {}, false, [&](std::string_view, std::string_view) {
        has_inodes = true;
        return false;
      }));
  if (has_inodes) return Status(EUCLEAN, ctx + ": inodes present but no superblock");
  if (options.read_only) return Status(EROFS, ctx + ": no superblock, and it is open read-only");
  Batch b;
  b.PutSuper(initial_super);
  RANKFS_RETURN_IF_ERROR(store->Write(b, /*sync=*/true).Annotate(ctx));
  store->super_ = initial_super;
  return store;
}

MetaStore::~MetaStore() { Close().IgnoreError(); }

MetaStore::MemoryUse MetaStore::GetMemoryUse() {
  MemoryUse m;
  if (!db_) return m;
  db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &m.memtables);
  db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kEstimateTableReadersMem,
                                &m.table_readers);
  // One cache serves every family: ask one of them, summing would count it once per family.
  db_->GetIntProperty(cfs_[0], rocksdb::DB::Properties::kBlockCacheUsage, &m.block_cache);
  return m;
}

Status MetaStore::Close() {
  if (!db_) return Status::Ok();
  Status result;
  // Flushing makes the next Open fast (no WAL replay); the WAL would recover the data anyway.
  rocksdb::Status s;
  if (!read_only_) {
    rocksdb::FlushOptions fo;
    fo.wait = true;
    s = db_->Flush(fo, cfs_);
    if (!s.ok()) result = FromRocks(s, "flushing memtables at close");
  }
  for (rocksdb::ColumnFamilyHandle* h : cfs_) {
    db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  cfs_.clear();
  s = db_->Close();
  if (!s.ok() && result.ok()) result = FromRocks(s, "closing");
  db_.reset();
  return result;
}

// ---- Writes ----------------------------------------------------------------------------------

Status MetaStore::Write(const Batch& batch, bool sync) {
  if (batch.Empty() && (!sync || read_only_)) return Status::Ok();
  if (read_only_) return Status(EROFS, "the metadata store is open read-only");
  size_t bytes = 0;
  for (const Batch::Op& op : batch.ops_) bytes += op.key.size() + op.value.size() + 16;
  rocksdb::WriteBatch wb(bytes);
  for (const Batch::Op& op : batch.ops_) {
    rocksdb::ColumnFamilyHandle* cf = cfs_[int(op.cf)];
    rocksdb::Status s = op.is_delete ? wb.Delete(cf, ToSlice(op.key))
                                     : wb.Put(cf, ToSlice(op.key), ToSlice(op.value));
    if (!s.ok()) return FromRocks(s, "building a batch at " + DescribeKey(op.cf, op.key));
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  MetaWriteHook::Action action = MetaWriteHook::Action::kProceed;
  if (write_hook_ != nullptr) {
    bool touched[int(Cf::kCount)] = {};
    for (const Batch::Op& op : batch.ops_) touched[int(op.cf)] = true;
    std::string families;
    for (int i = 0; i < int(Cf::kCount); ++i) {
      if (!touched[i]) continue;
      if (!families.empty()) families += ",";
      families += kCfNames[i];
    }
    action = write_hook_->BeforeWrite(families, sync);
  }
  if (action == MetaWriteHook::Action::kFail) return Status(EIO, "metadata write failed (test)");
  rocksdb::Status s = db_->Write(wo, &wb);
  if (!s.ok()) {
    return FromRocks(s, "writing a batch of " + std::to_string(batch.Count()) + " operations");
  }
  if (action == MetaWriteHook::Action::kApplyThenFail) {
    return Status(EIO, "metadata write reported failed after it was applied (test)");
  }
  return Status::Ok();
}

Status MetaStore::SyncWal() {
  // A synced write of an empty batch, not FlushWAL(true): after a failed WAL write, RocksDB
  // 7.8's SyncWAL reaches the broken log writer and asserts (Debian's build keeps asserts),
  // while the write path answers with the DB's background error.
  if (read_only_) return Status::Ok();  // nothing was written
  rocksdb::WriteBatch empty;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Write(wo, &empty);
  if (!s.ok()) return FromRocks(s, "syncing the WAL");
  return Status::Ok();
}

// ---- Point reads -----------------------------------------------------------------------------

Status MetaStore::Get(Cf cf, std::string_view key, std::string* value, bool* found) {
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cfs_[int(cf)], ToSlice(key), value);
  *found = s.ok();
  if (s.ok() || s.IsNotFound()) return Status::Ok();
  return FromRocks(s, "reading " + DescribeKey(cf, key));
}

Result<std::optional<InodeAttr>> MetaStore::GetInode(Ino ino) {
  const std::string key = InodeKey(ino);
  std::string value;
  bool found = false;
  RANKFS_RETURN_IF_ERROR(Get(Cf::kInodes, key, &value, &found));
  RANKFS_ASSIGN_OR_RETURN(std::optional<InodeAttr> attr,
                          DecodeIfFound(Cf::kInodes, key, found, value, &DecodeInodeAttr));
  if (attr && attr->ino != ino) {
    return Status(EUCLEAN, "metadata store: inode " + std::to_string(ino) +
                               " holds the record of inode " + std::to_string(attr->ino));
  }
  return attr;
}

Result<std::optional<DirEntry>> MetaStore::GetDirent(Ino parent, std::string_view name) {
  const std::string key = DirentKey(parent, name);
  std::string value;
  bool found = false;
  RANKFS_RETURN_IF_ERROR(Get(Cf::kDirents, key, &value, &found));
  return DecodeIfFound(Cf::kDirents, key, found, value, &DecodeDirEntry);
}

Result<std::optional<ChunkRecord>> MetaStore::GetChunk(const ChunkHash& h) {
  const std::string key = ChunkKey(h);
  std::string value;
  bool found = false;
  RANKFS_RETURN_IF_ERROR(Get(Cf::kChunks, key, &value, &found));
  return DecodeIfFound(Cf::kChunks, key, found, value, &DecodeChunkRecord);
}

Result<std::optional<std::string>> MetaStore::GetXattr(Ino ino, std::string_view name) {
  std::string value;
  bool found = false;
  RANKFS_RETURN_IF_ERROR(Get(Cf::kXattrs, XattrKey(ino, name), &value, &found));
  if (!found) return std::optional<std::string>();
  return std::optional<std::string>(std::move(value));
}

Result<std::optional<PackStats>> MetaStore::GetPack(uint32_t pack_id) {
  const std::string key = PackKey(pack_id);
  std::string value;
  bool found = false;
  RANKFS_RETURN_IF_ERROR(Get(Cf::kPacks, key, &value, &found));
  return DecodeIfFound(Cf::kPacks, key, found, value, &DecodePackStats);
}

Result<Ino> MetaStore::MaxIno() {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cfs_[int(Cf::kInodes)]));
  it->SeekToLast();
  if (!it->Valid()) {
    if (!it->status().ok()) return FromRocks(it->status(), "finding the largest inode");
    return Ino{0};
  }
  Ino ino = 0;
  if (!DecodeInodeKey(ToView(it->key()), &ino)) return BadKey(Cf::kInodes, ToView(it->key()));
  return ino;
}

}  // namespace rankfs
