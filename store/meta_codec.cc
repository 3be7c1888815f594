#include "store/meta_codec.h"

#include <cstring>
#include <initializer_list>

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
constexpr uint8_t kExtentFrameV3 = 3;      // a slice of a frame (format 3)
constexpr uint8_t kFrameRecordV1 = 1;
constexpr uint8_t kPieceRecordV1 = 1;
constexpr uint8_t kPieceRecordScopedV2 = 2;  // v1 + scope uid: a piece of a per-uid store
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

// The checks a chunk or frame record's stored form must pass: a known codec (set in *out),
// stored bytes within the record, and raw bytes stored as they are.
Status CheckStoredForm(std::string_view kind, uint8_t codec, uint32_t record_length,
                       uint32_t stored_length, uint32_t raw_length, Codec* out) {
  if (codec != uint8_t(Codec::kRaw) && codec != uint8_t(Codec::kZstd)) {
    return Malformed(kind, "unknown codec " + std::to_string(codec));
  }
  *out = Codec(codec);
  if (stored_length > record_length) {
    return Malformed(kind, "stored length " + std::to_string(stored_length) +
                               " > record length " + std::to_string(record_length));
  }
  if (*out == Codec::kRaw && stored_length != raw_length) {
    return Malformed(kind, "raw " + std::string(kind) + " with stored length " +
                               std::to_string(stored_length) + " != raw length " +
                               std::to_string(raw_length));
  }
  return Status::Ok();
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

// Checks that `value` is not empty and starts with one of `versions`; returns that version.
Result<uint8_t> CheckVersion(std::string_view value, std::string_view kind,
                             std::initializer_list<uint8_t> versions) {
  if (value.empty()) return Malformed(kind, "empty value");
  const uint8_t version = uint8_t(value[0]);
  for (uint8_t v : versions) {
    if (v == version) return version;
  }
  return Malformed(kind, "unknown encoding version " + std::to_string(version));
}

// Reads a varint field into *v. Malformed (naming `kind` and `field`) when the input ends
// inside it, when it is longer than its value needs, or when its value exceeds `max`.
Status GetVarint(ByteReader* r, std::string_view kind, std::string_view field, uint64_t max,
                 uint64_t* v) {
  VarintError err = VarintError::kNone;
  const size_t n = DecodeVarint64(r->rest(), v, &err);
  switch (err) {
    case VarintError::kNone:
      break;
    case VarintError::kTruncated:
      return Malformed(kind, "truncated in " + std::string(field));
    case VarintError::kOverlong:
      return Malformed(kind, "overlong varint in " + std::string(field));
    case VarintError::kOverflow:
      return Malformed(kind, "varint in " + std::string(field) + " exceeds 64 bits");
  }
  std::string_view taken;
  r->GetBytes(n, &taken);
  if (*v > max) {
    return Malformed(kind, std::string(field) + " " + std::to_string(*v) + " out of range (max " +
                               std::to_string(max) + ")");
  }
  return Status::Ok();
}

Status GetVarint32(ByteReader* r, std::string_view kind, std::string_view field, uint32_t* v) {
  uint64_t u = 0;
  RANKFS_RETURN_IF_ERROR(GetVarint(r, kind, field, UINT32_MAX, &u));
  *v = uint32_t(u);
  return Status::Ok();
}

Status GetVarint64(ByteReader* r, std::string_view kind, std::string_view field, uint64_t* v) {
  return GetVarint(r, kind, field, UINT64_MAX, v);
}

Status CheckEnd(const ByteReader& r, std::string_view kind) {
  if (r.remaining() == 0) return Status::Ok();
  return Malformed(kind, std::to_string(r.remaining()) + " trailing bytes");
}

// A frame id in a value: fixed u64, never 0.
Status GetFrameId(ByteReader* r, std::string_view kind, uint64_t* id) {
  if (!r->GetU64(id)) return Malformed(kind, "truncated in frame id");
  if (*id == 0) return Malformed(kind, "frame id 0");
  return Status::Ok();
}

// A slice [offset, offset + length) of a chunk or frame: non-empty, within UINT32_MAX bytes.
Status CheckSlice(std::string_view kind, uint64_t offset, uint64_t length, std::string_view of) {
  if (length == 0) return Malformed(kind, "zero length");
  if (length > UINT32_MAX - offset) {
    return Malformed(kind, "slice [" + std::to_string(offset) + ", +" + std::to_string(length) +
                               ") exceeds any " + std::string(of));
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
std::string FrameKey(uint64_t frame_id) { return PrefixedKey(frame_id, {}); }

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
bool DecodeFrameKey(std::string_view key, uint64_t* frame_id) {
  return DecodeU64Key(key, frame_id);
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
//          v3 (frame): length varint | frame_id u64 | frame_offset varint

std::string EncodeExtent(const Extent& e) {
  std::string v;
  if (e.framed) {
    v.push_back(char(kExtentFrameV3));
    PutVarint64(&v, e.length);
    PutFixed64LE(&v, e.frame_id);
    PutVarint64(&v, e.frame_offset);
    return v;
  }
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
  if (!value.empty() && uint8_t(value[0]) == kExtentFrameV3) {
    ByteReader r(value.substr(1));
    uint64_t length = 0, frame_id = 0;
    uint32_t offset = 0;
    RANKFS_RETURN_IF_ERROR(GetVarint64(&r, kKind, "length", &length));
    RANKFS_RETURN_IF_ERROR(GetFrameId(&r, kKind, &frame_id));
    RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "frame offset", &offset));
    RANKFS_RETURN_IF_ERROR(CheckEnd(r, kKind));
    RANKFS_RETURN_IF_ERROR(CheckSlice(kKind, offset, length, "frame"));
    return Extent::Frame(length, frame_id, offset);
  }
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
  RANKFS_RETURN_IF_ERROR(CheckStoredForm(kKind, codec, l.record_length, l.stored_length,
                                         l.raw_length, &l.codec));
  return rec;
}

// ---- FrameRecord: v1 | pack_id varint | offset varint | record_length raw_length
//                   stored_length varint | codec u8 | dictionary_id varint | stored_crc u32 |
//                   refcount varint

std::string EncodeFrameRecord(const FrameRecord& rec) {
  std::string v;
  v.reserve(32);
  v.push_back(char(kFrameRecordV1));
  PutVarint64(&v, rec.pack_id);
  PutVarint64(&v, rec.offset);
  PutVarint64(&v, rec.record_length);
  PutVarint64(&v, rec.raw_length);
  PutVarint64(&v, rec.stored_length);
  v.push_back(char(rec.codec));
  PutVarint64(&v, rec.dictionary_id);
  PutFixed32LE(&v, rec.stored_crc);
  PutVarint64(&v, rec.refcount);
  return v;
}

Result<FrameRecord> DecodeFrameRecord(std::string_view value) {
  constexpr std::string_view kKind = "frame";
  RANKFS_RETURN_IF_ERROR(CheckVersion(value, kKind, {kFrameRecordV1}).status());
  ByteReader r(value.substr(1));
  FrameRecord rec;
  uint8_t codec = 0;
  RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "pack id", &rec.pack_id));
  RANKFS_RETURN_IF_ERROR(GetVarint64(&r, kKind, "offset", &rec.offset));
  RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "record length", &rec.record_length));
  RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "raw length", &rec.raw_length));
  RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "stored length", &rec.stored_length));
  if (!r.GetU8(&codec)) return Malformed(kKind, "truncated in codec");
  RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "dictionary id", &rec.dictionary_id));
  if (!r.GetU32(&rec.stored_crc)) return Malformed(kKind, "truncated in stored CRC");
  RANKFS_RETURN_IF_ERROR(GetVarint64(&r, kKind, "reference count", &rec.refcount));
  RANKFS_RETURN_IF_ERROR(CheckEnd(r, kKind));
  RANKFS_RETURN_IF_ERROR(CheckStoredForm(kKind, codec, rec.record_length, rec.stored_length,
                                         rec.raw_length, &rec.codec));
  if (rec.codec == Codec::kRaw && rec.dictionary_id != 0) {
    return Malformed(kKind, "raw frame names dictionary " + std::to_string(rec.dictionary_id));
  }
  return rec;
}

// ---- PieceRecord: v1 | frame_id u64 | offset varint | length varint
//                  v2: the same, then scope_uid varint (only pieces of per-uid dedup stores)

std::string EncodePieceRecord(const PieceRecord& rec) {
  std::string v;
  v.reserve(1 + 8 + 5 * 3);
  v.push_back(char(rec.scope_uid ? kPieceRecordScopedV2 : kPieceRecordV1));
  PutFixed64LE(&v, rec.frame_id);
  PutVarint64(&v, rec.offset);
  PutVarint64(&v, rec.length);
  if (rec.scope_uid) PutVarint64(&v, *rec.scope_uid);
  return v;
}

Result<PieceRecord> DecodePieceRecord(std::string_view value) {
  constexpr std::string_view kKind = "piece";
  Result<uint8_t> version = CheckVersion(value, kKind, {kPieceRecordV1, kPieceRecordScopedV2});
  RANKFS_RETURN_IF_ERROR(version.status());
  ByteReader r(value.substr(1));
  PieceRecord rec;
  RANKFS_RETURN_IF_ERROR(GetFrameId(&r, kKind, &rec.frame_id));
  RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "offset", &rec.offset));
  RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "length", &rec.length));
  if (*version == kPieceRecordScopedV2) {
    uint32_t uid = 0;
    RANKFS_RETURN_IF_ERROR(GetVarint32(&r, kKind, "scope uid", &uid));
    rec.scope_uid = uid;
  }
  RANKFS_RETURN_IF_ERROR(CheckEnd(r, kKind));
  RANKFS_RETURN_IF_ERROR(CheckSlice(kKind, rec.offset, rec.length, "frame"));
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
