// Fuzz target bodies for the pack format and the metadata codecs (fuzz_targets.h). The chunk
// read path is in chunk_read_target.cc.
#include "fuzz/fuzz_targets.h"

#include <cerrno>
#include <climits>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "store/crc32c.h"
#include "store/env.h"
#include "store/meta_codec.h"
#include "store/pack_format.h"

namespace rankfs::fuzz {
namespace {

std::string_view View(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Decodes `value` with `decode`; an accepted value must re-encode to exactly its bytes (every
// field is carried, nothing is normalized) and a rejected one must be reported as EUCLEAN.
template <typename Decode, typename Encode>
void CheckValueDecoder(std::string_view value, Decode decode, Encode encode) {
  auto r = decode(value);
  if (r.ok()) {
    FUZZ_CHECK(encode(*r) == value);
  } else {
    FUZZ_CHECK(r.status().code() == EUCLEAN);
  }
}

// A valid value built from fuzzer bytes must survive encode then decode unchanged.
template <typename T, typename Decode, typename Encode>
void CheckRoundTrip(const T& v, Decode decode, Encode encode) {
  std::string enc = encode(v);
  auto r = decode(enc);
  FUZZ_CHECK(r.ok());
  FUZZ_CHECK(*r == v);
}

}  // namespace

int FuzzPackHeader(const uint8_t* data, size_t size) {
  std::string_view in = View(data, size);
  Result<PackFileHeader> h = DecodePackFileHeader(in);
  if (h.ok()) {
    FUZZ_CHECK(in.size() >= kPackHeaderSize);
    FUZZ_CHECK(EncodePackFileHeader(*h) == in.substr(0, kPackHeaderSize));
  } else {
    FUZZ_CHECK(h.status().code() == EUCLEAN);
  }
  // Structured: any header encodes to 32 bytes; only version 1 decodes back.
  Input fi(data, size);
  PackFileHeader v;
  v.version = fi.U8() & 1 ? 1 : fi.U32();
  v.pack_id = fi.U32();
  FillBytes(fi, &v.store_uuid);
  std::string enc = EncodePackFileHeader(v);
  FUZZ_CHECK(enc.size() == kPackHeaderSize);
  Result<PackFileHeader> back = DecodePackFileHeader(enc);
  if (v.version == 1) {
    FUZZ_CHECK(back.ok() && *back == v);
  } else {
    FUZZ_CHECK(!back.ok() && back.status().code() == EUCLEAN);
  }
  return 0;
}

int FuzzRecordHeader(const uint8_t* data, size_t size) {
  Input fi(data, size);
  const uint8_t flags = fi.U8();
  std::string bytes(fi.Rest());
  // Mode bit 0 repairs the header CRC, so mutations reach the checks behind it (the fuzzer
  // cannot forge a CRC32C on its own).
  if ((flags & 1) && bytes.size() >= kRecordHeaderSize) {
    uint32_t crc = Crc32c(bytes.data(), 52);
    for (int i = 0; i < 4; ++i) bytes[52 + i] = char(crc >> (8 * i));
  }
  Result<RecordHeader> h = DecodeRecordHeader(bytes);
  if (h.ok()) {
    FUZZ_CHECK(bytes.size() >= kRecordHeaderSize);
    FUZZ_CHECK(uint8_t(h->codec) <= uint8_t(Codec::kZstd));
    FUZZ_CHECK(h->raw_length <= kMaxChunkBytes && h->stored_length <= kMaxChunkBytes);
    FUZZ_CHECK(h->codec != Codec::kRaw || h->raw_length == h->stored_length);
    std::string enc;
    EncodeRecordHeader(*h, &enc);
    FUZZ_CHECK(enc.size() == kRecordHeaderSize);
    // Bytes 6-7 are reserved (written as zero, not checked on read), so only a header with
    // zero there re-encodes byte for byte; any header re-decodes to the same fields.
    if (bytes[6] == 0 && bytes[7] == 0) FUZZ_CHECK(enc == bytes.substr(0, kRecordHeaderSize));
    Result<RecordHeader> again = DecodeRecordHeader(enc);
    FUZZ_CHECK(again.ok() && *again == *h);
  } else {
    FUZZ_CHECK(h.status().code() == EUCLEAN);
  }
  // Structured: a valid header built from the same bytes round-trips.
  Input si(data, size);
  RecordHeader v;
  v.codec = si.U8() & 1 ? Codec::kZstd : Codec::kRaw;
  FillBytes(si, &v.hash.bytes);
  v.raw_length = si.U32() % (kMaxChunkBytes + 1);
  v.stored_length = v.codec == Codec::kRaw ? v.raw_length : si.U32() % (kMaxChunkBytes + 1);
  v.stored_crc = si.U32();
  std::string enc;
  EncodeRecordHeader(v, &enc);
  Result<RecordHeader> back = DecodeRecordHeader(enc);
  FUZZ_CHECK(back.ok() && *back == v);
  return 0;
}

int FuzzScanPack(const uint8_t* data, size_t size) {
  Input fi(data, size);
  const uint8_t flags = fi.U8();
  uint64_t hole_off = 0, hole_len = 0;
  if (flags & 2) {
    hole_off = fi.U16();
    hole_len = fi.U16();
  }
  std::string_view bytes = fi.Rest();

  std::unique_ptr<Env> env = NewMemEnv();
  auto file = env->OpenFile("/000001.pack", OpenMode::kCreate);
  FUZZ_CHECK(file.ok());
  FUZZ_CHECK((*file)->PWrite(0, bytes).ok());
  if (flags & 2) FUZZ_CHECK((*file)->PunchHole(hole_off, hole_len).ok());
  // What the scan sees: the bytes with the hole zeroed.
  std::string content(bytes.size(), '\0');
  size_t got = 0;
  FUZZ_CHECK((*file)->PRead(0, content.size(), content.data(), &got).ok());
  FUZZ_CHECK(got == content.size());
  const uint64_t fsize = content.size();

  const bool stop_early = flags & 1;
  std::vector<ScannedRecord> seen;
  uint64_t covered = 0;  // bytes inside records, up to the end of the file
  ScanSummary sum;
  Status s = ScanPack(
      file->get(),
      [&](const ScannedRecord& r) {
        // Records come in offset order, after the pack header, without overlap.
        FUZZ_CHECK(r.offset >= kPackHeaderSize);
        FUZZ_CHECK(r.offset + kRecordHeaderSize <= fsize);
        if (!seen.empty()) {
          const ScannedRecord& p = seen.back();
          FUZZ_CHECK(r.offset >= p.offset + kRecordHeaderSize + p.header.stored_length);
        }
        // The header reported is the one at that offset.
        Result<RecordHeader> h =
            DecodeRecordHeader(std::string_view(content).substr(r.offset, kRecordHeaderSize));
        FUZZ_CHECK(h.ok() && *h == r.header);
        // payload_ok is exactly "all stored bytes present and their CRC matches".
        uint64_t end = r.offset + kRecordHeaderSize + r.header.stored_length;
        bool ok = end <= fsize && Crc32c(content.data() + r.offset + kRecordHeaderSize,
                                         r.header.stored_length) == r.header.stored_crc;
        FUZZ_CHECK(r.payload_ok == ok);
        covered += std::min(end, fsize) - r.offset;
        seen.push_back(r);
        return !stop_early;
      },
      &sum);

  if (!DecodePackFileHeader(content).ok()) {
    FUZZ_CHECK(!s.ok() && s.code() == EUCLEAN);
    return 0;
  }
  FUZZ_CHECK(s.ok());
  FUZZ_CHECK(sum.records == seen.size());
  uint64_t damaged = 0;
  for (const ScannedRecord& r : seen) damaged += r.payload_ok ? 0 : 1;
  FUZZ_CHECK(sum.damaged_records == damaged);
  if (stop_early) {
    FUZZ_CHECK(seen.size() <= 1);
  } else {
    // Every byte after the pack header is either inside a record or skipped, exactly once.
    FUZZ_CHECK(covered + sum.skipped_bytes == fsize - kPackHeaderSize);
  }
  return 0;
}

int FuzzMetaValue(const uint8_t* data, size_t size) {
  Input fi(data, size);
  const uint8_t kind = fi.U8() % 7;
  Input si(fi.Rest());  // also feeds the structured value below
  std::string_view value(reinterpret_cast<const char*>(data) + (size ? 1 : 0), size ? size - 1 : 0);
  switch (kind) {
    case 0: {
      // Version 1 records decode too, and are written back as version 2: what must hold is
      // that a decoded record survives that rewrite unchanged.
      if (!value.empty() && uint8_t(value[0]) == 1) {
        Result<InodeAttr> old = DecodeInodeAttr(value);
        if (old.ok()) {
          FUZZ_CHECK(old->allocated_bytes == InodeAttr::kAllocatedUnknown && old->parent == 0);
          CheckRoundTrip(*old, DecodeInodeAttr, EncodeInodeAttr);
        } else {
          FUZZ_CHECK(old.status().code() == EUCLEAN);
        }
      } else {
        CheckValueDecoder(value, DecodeInodeAttr, EncodeInodeAttr);
      }
      InodeAttr a;
      a.ino = si.U64() | 1;
      a.mode = si.U32();
      a.uid = si.U32();
      a.gid = si.U32();
      a.nlink = si.U32();
      a.size = si.U64();
      a.rdev = si.U64();
      a.generation = si.U64();
      a.atime_ns = int64_t(si.U64());
      a.mtime_ns = int64_t(si.U64());
      a.ctime_ns = int64_t(si.U64());
      a.parent = si.U64();
      a.allocated_bytes = si.U64();
      a.symlink_target = si.Bytes(si.U16() % 4096);
      CheckRoundTrip(a, DecodeInodeAttr, EncodeInodeAttr);
      break;
    }
    case 1: {
      CheckValueDecoder(value, DecodeDirEntry, EncodeDirEntry);
      DirEntry e{.ino = si.U64() | 1, .type = uint8_t(si.U8() & 15)};
      CheckRoundTrip(e, DecodeDirEntry, EncodeDirEntry);
      break;
    }
    case 2: {
      CheckValueDecoder(value, DecodeExtent, EncodeExtent);
      Extent e;
      e.chunk_offset = std::min<uint32_t>(si.U32(), UINT32_MAX - 1);
      e.length = 1 + si.U64() % (uint64_t(UINT32_MAX) - e.chunk_offset);
      FillBytes(si, &e.chunk.bytes);
      CheckRoundTrip(e, DecodeExtent, EncodeExtent);
      CheckRoundTrip(Extent::Unwritten(1 + si.U64() % UINT64_MAX), DecodeExtent, EncodeExtent);
      const uint32_t frame_offset = std::min<uint32_t>(si.U32(), UINT32_MAX - 1);
      CheckRoundTrip(Extent::Frame(1 + si.U64() % (uint64_t(UINT32_MAX) - frame_offset),
                                   si.U64() | 1, frame_offset),
                     DecodeExtent, EncodeExtent);
      break;
    }
    case 3: {
      CheckValueDecoder(value, DecodeChunkRecord, EncodeChunkRecord);
      ChunkRecord r;
      ChunkLocation& l = r.location;
      l.codec = si.U8() & 1 ? Codec::kZstd : Codec::kRaw;
      l.pack_id = si.U32();
      l.offset = si.U64();
      l.raw_length = si.U32();
      l.stored_length = l.codec == Codec::kRaw ? l.raw_length : si.U32();
      l.record_length = uint32_t(l.stored_length + si.U64() % (uint64_t(UINT32_MAX) -
                                                                l.stored_length + 1));
      l.stored_crc = si.U32();
      r.refcount = si.U64();
      if (si.U8() & 1) r.scope_uid = si.U32();  // a chunk of a per-uid dedup store (v2)
      CheckRoundTrip(r, DecodeChunkRecord, EncodeChunkRecord);
      break;
    }
    case 5: {  // store format 3
      CheckValueDecoder(value, DecodeFrameRecord, EncodeFrameRecord);
      FrameRecord f;
      f.codec = si.U8() & 1 ? Codec::kZstd : Codec::kRaw;
      f.pack_id = si.U32();
      f.offset = si.U64();
      f.raw_length = si.U32();
      f.stored_length = f.codec == Codec::kRaw ? f.raw_length : si.U32();
      f.record_length = uint32_t(f.stored_length + si.U64() % (uint64_t(UINT32_MAX) -
                                                                f.stored_length + 1));
      f.dictionary_id = f.codec == Codec::kRaw ? 0 : si.U32();
      f.stored_crc = si.U32();
      f.refcount = si.U64();
      CheckRoundTrip(f, DecodeFrameRecord, EncodeFrameRecord);
      break;
    }
    case 6: {  // store format 3
      CheckValueDecoder(value, DecodePieceRecord, EncodePieceRecord);
      PieceRecord p;
      p.frame_id = si.U64() | 1;
      p.offset = std::min<uint32_t>(si.U32(), UINT32_MAX - 1);
      p.length = uint32_t(1 + si.U64() % (uint64_t(UINT32_MAX) - p.offset));
      if (si.U8() & 1) p.scope_uid = si.U32();
      CheckRoundTrip(p, DecodePieceRecord, EncodePieceRecord);
      break;
    }
    default: {
      CheckValueDecoder(value, DecodePackStats, EncodePackStats);
      PackStats p{.live_bytes = si.U64(), .dead_bytes = si.U64()};
      CheckRoundTrip(p, DecodePackStats, EncodePackStats);
      break;
    }
  }
  return 0;
}

int FuzzMetaKey(const uint8_t* data, size_t size) {
  std::string_view key = View(data, size);
  Ino ino = 0;
  uint64_t off = 0;
  uint32_t pack = 0;
  std::string_view name;
  ChunkHash h;
  // Every decoder on the same bytes: accepted keys re-encode to exactly themselves.
  if (DecodeInodeKey(key, &ino)) FUZZ_CHECK(InodeKey(ino) == key);
  if (DecodeOrphanKey(key, &ino)) FUZZ_CHECK(OrphanKey(ino) == key);
  if (DecodeExtentKey(key, &ino, &off)) FUZZ_CHECK(ExtentKey(ino, off) == key);
  if (DecodeChunkKey(key, &h)) FUZZ_CHECK(ChunkKey(h) == key);
  if (DecodePackKey(key, &pack)) FUZZ_CHECK(PackKey(pack) == key);
  if (DecodeFrameKey(key, &off)) FUZZ_CHECK(FrameKey(off) == key);
  if (DecodeDirentKey(key, &ino, &name)) {
    FUZZ_CHECK(!name.empty() && DirentKey(ino, name) == key);
    FUZZ_CHECK(DirentKey(ino, name).starts_with(DirentPrefix(ino)));
  } else {
    FUZZ_CHECK(key.size() <= 8);
  }
  if (DecodeXattrKey(key, &ino, &name)) {
    FUZZ_CHECK(!name.empty() && XattrKey(ino, name) == key);
    FUZZ_CHECK(XattrKey(ino, name).starts_with(XattrPrefix(ino)));
  }
  // Structured: keys built from fuzzer values decode back, and extent keys sort like
  // (ino, offset) pairs, which the range scans rely on.
  Input fi(data, size);
  Ino a = fi.U64(), b = fi.U64();
  uint64_t oa = fi.U64(), ob = fi.U64();
  std::string n = fi.Bytes(1 + fi.U8());
  if (n.empty()) n.push_back('x');  // (not n = "x": gcc 12 -Wrestrict false positive)
  FUZZ_CHECK(DecodeInodeKey(InodeKey(a), &ino) && ino == a);
  FUZZ_CHECK(DecodeOrphanKey(OrphanKey(a), &ino) && ino == a);
  FUZZ_CHECK(DecodeExtentKey(ExtentKey(a, oa), &ino, &off) && ino == a && off == oa);
  FUZZ_CHECK(DecodePackKey(PackKey(uint32_t(oa)), &pack) && pack == uint32_t(oa));
  std::string dk = DirentKey(a, n);
  FUZZ_CHECK(DecodeDirentKey(dk, &ino, &name) && ino == a && name == n);
  std::string xk = XattrKey(b, n);
  FUZZ_CHECK(DecodeXattrKey(xk, &ino, &name) && ino == b && name == n);
  auto pair_less = a < b || (a == b && oa < ob);
  FUZZ_CHECK((ExtentKey(a, oa) < ExtentKey(b, ob)) == pair_less);
  FUZZ_CHECK((PackKey(uint32_t(oa)) < PackKey(uint32_t(ob))) == (uint32_t(oa) < uint32_t(ob)));
  FUZZ_CHECK(DecodeFrameKey(FrameKey(a), &off) && off == a);
  FUZZ_CHECK((FrameKey(a) < FrameKey(b)) == (a < b));
  return 0;
}

int FuzzSuperblock(const uint8_t* data, size_t size) {
  std::string_view value = View(data, size);
  Result<Superblock> sb = DecodeSuperblock(value);
  if (sb.ok()) {
    FUZZ_CHECK(sb->format_version >= 1 && sb->format_version <= Superblock::kFormatVersion);
    // The encoder writes v2 only for a per-uid store; a v2 value naming the global scope is
    // accepted but re-encodes as the (equivalent) v1 value.
    const bool non_canonical = value[0] == 2 && sb->dedup_scope == DedupScope::kGlobal;
    std::string enc = EncodeSuperblock(*sb);
    if (!non_canonical) FUZZ_CHECK(enc == value);
    Result<Superblock> again = DecodeSuperblock(enc);
    FUZZ_CHECK(again.ok() && *again == *sb);
  } else {
    // ENOTSUP means "a newer rankfs wrote this": only for a valid magic and a larger version.
    const int code = sb.status().code();
    FUZZ_CHECK(code == EUCLEAN || code == ENOTSUP);
    if (code == ENOTSUP) {
      FUZZ_CHECK(value.size() >= 13 && value.substr(1, 8) == "RANKFSSB");
      uint32_t v = uint32_t(uint8_t(value[9])) | uint32_t(uint8_t(value[10])) << 8 |
                   uint32_t(uint8_t(value[11])) << 16 | uint32_t(uint8_t(value[12])) << 24;
      FUZZ_CHECK(v > Superblock::kFormatVersion);
    }
  }
  Input fi(data, size);
  Superblock v;
  v.format_version = 1 + fi.U32() % Superblock::kFormatVersion;
  FillBytes(fi, &v.uuid);
  v.chunker.min_size = fi.U32();
  v.chunker.avg_size = fi.U32();
  v.chunker.max_size = fi.U32();
  v.compression_level = int32_t(fi.U32());
  v.created_ns = int64_t(fi.U64());
  v.dedup_scope = fi.U8() & 1 ? DedupScope::kPerUid : DedupScope::kGlobal;
  CheckRoundTrip(v, DecodeSuperblock, EncodeSuperblock);
  return 0;
}

const std::vector<Target>& AllTargets() {
  static const std::vector<Target> kTargets = {
      {"pack_header", FuzzPackHeader},
      {"record_header", FuzzRecordHeader},
      {"scan_pack", FuzzScanPack},
      {"meta_value", FuzzMetaValue},
      {"meta_key", FuzzMetaKey},
      {"superblock", FuzzSuperblock},
      {"chunk_read", FuzzChunkRead},
      {"gpu_request", FuzzGpuRequest},
      {"arrow_ipc", FuzzArrowIpc},
  };
  return kTargets;
}

}  // namespace rankfs::fuzz
