#include "store/meta_codec.h"

#include <cstring>

#include "store/coding.h"

namespace rankfs {
namespace {

// Encoding versions of each value kind. Bump one when its layout changes and keep decoding
// the old layout.
constexpr uint8_t kInodeAttrV1 = 1;
constexpr uint8_t kInodeAttrV2 = 2;  // v1 + parent + allocated bytes
constexpr uint8_t kDirEntryV1 = 1;
constexpr uint8_t kExtentV1 = 1;
constexpr uint8_t kExtentUnwrittenV2 = 2;  // a preallocated range: length only
constexpr uint8_t kChunkRecordV1 = 1;
constexpr uint8_t kChunkRecordV2 = 2;  // v1 + scope uid: a chunk of a per-uid dedup store
constexpr uint8_t kPackStatsV1 = 1;
constexpr uint8_t kSuperblockV1 = 1;
constexpr uint8_t kSuperblockV2 = 2;  // v1 + dedup scope; written only for per-uid stores

constexpr uint64_t kSuperMagic = 0x425353464B4E4152ull;  // the bytes "RANKFSSB" on disk

// Sizes of the v1 values, version byte included.
constexpr size_t kInodeFixedSize = 1 + 8 + 4 * 4 + 8 * 3 + 8 * 3 + 4;  // + target bytes
constexpr size_t kDirEntrySize = 1 + 8 + 1;
constexpr size_t kInodeV2FixedSize = kInodeFixedSize + 8 + 8;
constexpr size_t kExtentSize = 1 + 8 + 32 + 4;
constexpr size_t kExtentUnwrittenSize = 1 + 8;
constexpr size_t kChunkRecordSize = 1 + 4 + 8 + 4 + 4 + 4 + 1 + 4 + 8;
constexpr size_t kPackStatsSize = 1 + 8 + 8;
constexpr size_t kSuperblockSize = 1 + 8 + 4 + 16 + 4 * 3 + 4 + 8;
constexpr size_t kChunkRecordV2Size = kChunkRecordSize + 4;
constexpr size_t kSuperblockV2Size = kSuperblockSize + 1;

Status Malformed(std::string_view kind, std::string_view why) {
  std::string msg = "malformed ";
  msg += kind;
  msg += " record: ";
  msg += why;
  return Status(EUCLEAN, std::move(msg));
}

// Checks the version byte and the exact total size of a fixed-size value. `kind` names the
// record kind in the error.
Status CheckFixed(std::string_view value, std::string_view kind, uint8_t version, size_t size) {
  if (value.empty()) return Malformed(kind, "empty value");
  if (uint8_t(value[0]) != version) {
    return Malformed(kind, "unknown encoding version " + std::to_string(uint8_t(value[0])));
  }
  if (value.size() < size) {
    return Malformed(kind, "truncated (" + std::to_string(value.size()) + " of " +
                               std::to_string(size) + " bytes)");
  }
  if (value.size() > size) {
    return Malformed(kind, std::to_string(value.size() - size) + " trailing bytes");
  }
  return Status::Ok();
}

std::string PrefixedKey(uint64_t id, std::string_view suffix) {
  std::string k;
  k.reserve(8 + suffix.size());
  PutFixed64BE(&k, id);
  k.append(suffix);
  return k;
}

bool DecodeU64Key(std::string_view key, uint64_t* v) {
  if (key.size() != 8) return false;
  *v = DecodeFixed64BE(key.data());
  return true;
}

bool DecodeNamedKey(std::string_view key, uint64_t* id, std::string_view* name) {
  if (key.size() <= 8) return false;  // the name is never empty
  *id = DecodeFixed64BE(key.data());
  *name = key.substr(8);
  return true;
}

void GetHash(ByteReader* r, ChunkHash* h) {
  std::string_view b;
  if (r->GetBytes(h->bytes.size(), &b)) std::memcpy(h->bytes.data(), b.data(), b.size());
}

}  // namespace

// ---- Keys ----------------------------------------------------------------------------------

std::string InodeKey(Ino ino) { return PrefixedKey(ino, {}); }
std::string DirentPrefix(Ino parent) { return PrefixedKey(parent, {}); }
std::string DirentKey(Ino parent, std::string_view name) { return PrefixedKey(parent, name); }
std::string ExtentPrefix(Ino ino) { return PrefixedKey(ino, {}); }
std::string ExtentKey(Ino ino, uint64_t file_offset) {
  std::string k;
  k.reserve(16);
  PutFixed64BE(&k, ino);
  PutFixed64BE(&k, file_offset);
  return k;
}
std::string ChunkKey(const ChunkHash& h) { return std::string(h.AsBytes()); }
std::string XattrPrefix(Ino ino) { return PrefixedKey(ino, {}); }
std::string XattrKey(Ino ino, std::string_view name) { return PrefixedKey(ino, name); }
std::string OrphanKey(Ino ino) { return PrefixedKey(ino, {}); }
std::string PackKey(uint32_t pack_id) {
  std::string k;
  PutFixed32BE(&k, pack_id);
  return k;
}

bool DecodeInodeKey(std::string_view key, Ino* ino) { return DecodeU64Key(key, ino); }
bool DecodeDirentKey(std::string_view key, Ino* parent, std::string_view* name) {
  return DecodeNamedKey(key, parent, name);
}
bool DecodeExtentKey(std::string_view key, Ino* ino, uint64_t* file_offset) {
  if (key.size() != 16) return false;
  *ino = DecodeFixed64BE(key.data());
  *file_offset = DecodeFixed64BE(key.data() + 8);
  return true;
}
bool DecodeChunkKey(std::string_view key, ChunkHash* h) {
  if (key.size() != h->bytes.size()) return false;
  std::memcpy(h->bytes.data(), key.data(), key.size());
  return true;
}
bool DecodeXattrKey(std::string_view key, Ino* ino, std::string_view* name) {
  return DecodeNamedKey(key, ino, name);
}
bool DecodeOrphanKey(std::string_view key, Ino* ino) { return DecodeU64Key(key, ino); }
bool DecodePackKey(std::string_view key, uint32_t* pack_id) {
  if (key.size() != 4) return false;
  *pack_id = DecodeFixed32BE(key.data());
  return true;
}

// ---- InodeAttr: v1 | ino u64 | mode uid gid nlink u32 | size rdev generation u64 |
//                 atime mtime ctime i64 | target_len u32 | target bytes
//             v2: v1's fields up to ctime | parent u64 | allocated_bytes u64 | target_len u32 |
//                 target bytes (always written; v1 decodes with parent 0 and
//                 allocated_bytes kAllocatedUnknown)

std::string EncodeInodeAttr(const InodeAttr& a) {
  std::string v;
  v.reserve(kInodeV2FixedSize + a.symlink_target.size());
  v.push_back(char(kInodeAttrV2));
  PutFixed64LE(&v, a.ino);
  PutFixed32LE(&v, a.mode);
  PutFixed32LE(&v, a.uid);
  PutFixed32LE(&v, a.gid);
  PutFixed32LE(&v, a.nlink);
  PutFixed64LE(&v, a.size);
  PutFixed64LE(&v, a.rdev);
  PutFixed64LE(&v, a.generation);
  PutFixed64LE(&v, uint64_t(a.atime_ns));
  PutFixed64LE(&v, uint64_t(a.mtime_ns));
  PutFixed64LE(&v, uint64_t(a.ctime_ns));
  PutFixed64LE(&v, a.parent);
  PutFixed64LE(&v, a.allocated_bytes);
  PutFixed32LE(&v, uint32_t(a.symlink_target.size()));
  v.append(a.symlink_target);
  return v;
}

Result<InodeAttr> DecodeInodeAttr(std::string_view value) {
  constexpr std::string_view kKind = "inode";
  if (value.empty()) return Malformed(kKind, "empty value");
  const uint8_t version = uint8_t(value[0]);
  if (version != kInodeAttrV1 && version != kInodeAttrV2) {
    return Malformed(kKind, "unknown encoding version " + std::to_string(version));
  }
  const size_t fixed = version == kInodeAttrV1 ? kInodeFixedSize : kInodeV2FixedSize;
  if (value.size() < fixed) {
    return Malformed(kKind, "truncated (" + std::to_string(value.size()) + " of at least " +
                                std::to_string(fixed) + " bytes)");
  }
  ByteReader r(value.substr(1));
  InodeAttr a;
  uint32_t target_len = 0;
  // The size check above guarantees every fixed field is present.
  r.GetU64(&a.ino);
  r.GetU32(&a.mode);
  r.GetU32(&a.uid);
  r.GetU32(&a.gid);
  r.GetU32(&a.nlink);
  r.GetU64(&a.size);
  r.GetU64(&a.rdev);
  r.GetU64(&a.generation);
  r.GetI64(&a.atime_ns);
  r.GetI64(&a.mtime_ns);
  r.GetI64(&a.ctime_ns);
  if (version == kInodeAttrV2) {
    r.GetU64(&a.parent);
    r.GetU64(&a.allocated_bytes);
  } else {
    a.allocated_bytes = InodeAttr::kAllocatedUnknown;
  }
  r.GetU32(&target_len);
  if (a.ino == 0) return Malformed(kKind, "inode number 0");
  if (r.remaining() < target_len) {
    return Malformed(kKind, "truncated symlink target (" + std::to_string(r.remaining()) + " of " +
                                std::to_string(target_len) + " bytes)");
  }
  if (r.remaining() > target_len) {
    return Malformed(kKind, std::to_string(r.remaining() - target_len) + " trailing bytes");
  }
  a.symlink_target.assign(r.rest());
  return a;
}

// ---- DirEntry: v1 | ino u64 | type u8

std::string EncodeDirEntry(const DirEntry& e) {
  std::string v;
  v.reserve(kDirEntrySize);
  v.push_back(char(kDirEntryV1));
  PutFixed64LE(&v, e.ino);
  v.push_back(char(e.type));
  return v;
}

Result<DirEntry> DecodeDirEntry(std::string_view value) {
  constexpr std::string_view kKind = "dirent";
  RANKFS_RETURN_IF_ERROR(CheckFixed(value, kKind, kDirEntryV1, kDirEntrySize));
  DirEntry e;
  e.ino = DecodeFixed64LE(value.data() + 1);
  e.type = uint8_t(value[9]);
  if (e.ino == 0) return Malformed(kKind, "inode number 0");
  if (e.type > 15) return Malformed(kKind, "file type " + std::to_string(e.type) + " > 15");
  return e;
}

// ---- Extent: v1 | length u64 | chunk hash 32 | chunk_offset u32
//          v2 (unwritten): length u64

std::string EncodeExtent(const Extent& e) {
  std::string v;
  if (e.unwritten) {
    v.reserve(kExtentUnwrittenSize);
    v.push_back(char(kExtentUnwrittenV2));
    PutFixed64LE(&v, e.length);
    return v;
  }
  v.reserve(kExtentSize);
  v.push_back(char(kExtentV1));
  PutFixed64LE(&v, e.length);
  v.append(e.chunk.AsBytes());
  PutFixed32LE(&v, e.chunk_offset);
  return v;
}

Result<Extent> DecodeExtent(std::string_view value) {
  constexpr std::string_view kKind = "extent";
  if (!value.empty() && uint8_t(value[0]) == kExtentUnwrittenV2) {
    RANKFS_RETURN_IF_ERROR(CheckFixed(value, kKind, kExtentUnwrittenV2, kExtentUnwrittenSize));
    Extent e = Extent::Unwritten(DecodeFixed64LE(value.data() + 1));
    if (e.length == 0) return Malformed(kKind, "zero length");
    return e;
  }
  RANKFS_RETURN_IF_ERROR(CheckFixed(value, kKind, kExtentV1, kExtentSize));
  ByteReader r(value.substr(1));
  Extent e;
  r.GetU64(&e.length);
  GetHash(&r, &e.chunk);
  r.GetU32(&e.chunk_offset);
  if (e.length == 0) return Malformed(kKind, "zero length");
  // A chunk holds at most UINT32_MAX bytes (ChunkLocation::raw_length), so must the slice.
  if (e.length > UINT32_MAX - uint64_t(e.chunk_offset)) {
    return Malformed(kKind, "slice [" + std::to_string(e.chunk_offset) + ", +" +
                                std::to_string(e.length) + ") exceeds any chunk");
  }
  return e;
}

// ---- ChunkRecord: v1 | pack_id u32 | offset u64 | record_length raw_length stored_length u32 |
//                   codec u8 | stored_crc u32 | refcount u64
//               v2: the same, then scope_uid u32 (only chunks of per-uid dedup stores)

std::string EncodeChunkRecord(const ChunkRecord& rec) {
  const ChunkLocation& l = rec.location;
  std::string v;
  v.reserve(kChunkRecordV2Size);
  v.push_back(char(rec.scope_uid ? kChunkRecordV2 : kChunkRecordV1));
  PutFixed32LE(&v, l.pack_id);
  PutFixed64LE(&v, l.offset);
  PutFixed32LE(&v, l.record_length);
  PutFixed32LE(&v, l.raw_length);
  PutFixed32LE(&v, l.stored_length);
  v.push_back(char(l.codec));
  PutFixed32LE(&v, l.stored_crc);
  PutFixed64LE(&v, rec.refcount);
  if (rec.scope_uid) PutFixed32LE(&v, *rec.scope_uid);
  return v;
}

Result<ChunkRecord> DecodeChunkRecord(std::string_view value) {
  constexpr std::string_view kKind = "chunk";
  const bool v2 = !value.empty() && uint8_t(value[0]) == kChunkRecordV2;
  RANKFS_RETURN_IF_ERROR(CheckFixed(value, kKind, v2 ? kChunkRecordV2 : kChunkRecordV1,
                                    v2 ? kChunkRecordV2Size : kChunkRecordSize));
  ByteReader r(value.substr(1));
  ChunkRecord rec;
  ChunkLocation& l = rec.location;
  uint8_t codec = 0;
  r.GetU32(&l.pack_id);
  r.GetU64(&l.offset);
  r.GetU32(&l.record_length);
  r.GetU32(&l.raw_length);
  r.GetU32(&l.stored_length);
  r.GetU8(&codec);
  r.GetU32(&l.stored_crc);
  r.GetU64(&rec.refcount);
  if (v2) {
    uint32_t uid = 0;
    r.GetU32(&uid);
    rec.scope_uid = uid;
  }
  if (codec != uint8_t(Codec::kRaw) && codec != uint8_t(Codec::kZstd)) {
    return Malformed(kKind, "unknown codec " + std::to_string(codec));
  }
  l.codec = Codec(codec);
  if (l.stored_length > l.record_length) {
    return Malformed(kKind, "stored length " + std::to_string(l.stored_length) +
                                " > record length " + std::to_string(l.record_length));
  }
  if (l.codec == Codec::kRaw && l.stored_length != l.raw_length) {
    return Malformed(kKind, "raw chunk with stored length " + std::to_string(l.stored_length) +
                                " != raw length " + std::to_string(l.raw_length));
  }
  return rec;
}

// ---- PackStats: v1 | live_bytes u64 | dead_bytes u64

std::string EncodePackStats(const PackStats& s) {
  std::string v;
  v.reserve(kPackStatsSize);
  v.push_back(char(kPackStatsV1));
  PutFixed64LE(&v, s.live_bytes);
  PutFixed64LE(&v, s.dead_bytes);
  return v;
}

Result<PackStats> DecodePackStats(std::string_view value) {
  RANKFS_RETURN_IF_ERROR(CheckFixed(value, "pack", kPackStatsV1, kPackStatsSize));
  PackStats s;
  s.live_bytes = DecodeFixed64LE(value.data() + 1);
  s.dead_bytes = DecodeFixed64LE(value.data() + 9);
  return s;
}

// ---- Superblock: v1 | magic u64 | format_version u32 | uuid 16 | chunker min avg max u32 |
//                  compression_level i32 | created_ns i64
//             v2: the same, then dedup_scope u8 (written only when it is not global, so that
//                 a global store's superblock stays v1 and older rankfs versions open it)
// The first three fields keep their positions in every encoding version (see the header).

std::string EncodeSuperblock(const Superblock& sb) {
  const bool v2 = sb.dedup_scope != DedupScope::kGlobal;
  std::string v;
  v.reserve(kSuperblockV2Size);
  v.push_back(char(v2 ? kSuperblockV2 : kSuperblockV1));
  PutFixed64LE(&v, kSuperMagic);
  PutFixed32LE(&v, sb.format_version);
  v.append(reinterpret_cast<const char*>(sb.uuid.data()), sb.uuid.size());
  PutFixed32LE(&v, sb.chunker.min_size);
  PutFixed32LE(&v, sb.chunker.avg_size);
  PutFixed32LE(&v, sb.chunker.max_size);
  PutFixed32LE(&v, uint32_t(sb.compression_level));
  PutFixed64LE(&v, uint64_t(sb.created_ns));
  if (v2) v.push_back(char(sb.dedup_scope));
  return v;
}

Result<Superblock> DecodeSuperblock(std::string_view value) {
  constexpr std::string_view kKind = "superblock";
  ByteReader r(value);
  uint8_t version = 0;
  uint64_t magic = 0;
  Superblock sb;
  if (!r.GetU8(&version) || !r.GetU64(&magic) || !r.GetU32(&sb.format_version)) {
    return Malformed(kKind, "truncated (" + std::to_string(value.size()) + " bytes)");
  }
  if (magic != kSuperMagic) return Malformed(kKind, "bad magic number");
  if (sb.format_version > Superblock::kFormatVersion) {
    return Status(ENOTSUP, "store format version " + std::to_string(sb.format_version) +
                               " is newer than this rankfs (reads up to " +
                               std::to_string(Superblock::kFormatVersion) + ")");
  }
  if (sb.format_version == 0) return Malformed(kKind, "format version 0");
  const bool v2 = version == kSuperblockV2;
  RANKFS_RETURN_IF_ERROR(CheckFixed(value, kKind, v2 ? kSuperblockV2 : kSuperblockV1,
                                    v2 ? kSuperblockV2Size : kSuperblockSize));
  std::string_view uuid;
  uint32_t level = 0;
  r.GetBytes(sb.uuid.size(), &uuid);
  std::memcpy(sb.uuid.data(), uuid.data(), uuid.size());
  r.GetU32(&sb.chunker.min_size);
  r.GetU32(&sb.chunker.avg_size);
  r.GetU32(&sb.chunker.max_size);
  r.GetU32(&level);
  sb.compression_level = int32_t(level);
  r.GetI64(&sb.created_ns);
  if (v2) {
    uint8_t scope = 0;
    r.GetU8(&scope);
    if (scope > uint8_t(DedupScope::kPerUid)) {
      return Malformed(kKind, "unknown dedup scope " + std::to_string(scope));
    }
    sb.dedup_scope = DedupScope(scope);
  }
  return sb;
}

}  // namespace rankfs
