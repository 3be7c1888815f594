#include "store/pack_format.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "store/coding.h"
#include "store/crc32c.h"

namespace rankfs {
namespace {

constexpr char kPackMagic[8] = {'R', 'A', 'N', 'K', 'P', 'A', 'C', 'K'};
constexpr char kRecordMagic[4] = {'R', 'K', 'C', 'H'};
constexpr uint8_t kRecordVersion = 1;
constexpr char kFrameMagic[4] = {'R', 'K', 'F', 'R'};
constexpr uint8_t kFrameVersion = 1;
constexpr uint32_t kPackVersion = 1;

Status Malformed(std::string_view what) {
  return Status(EUCLEAN, "malformed " + std::string(what));
}

}  // namespace

std::string EncodePackFileHeader(const PackFileHeader& h) {
  std::string out(kPackMagic, sizeof kPackMagic);
  PutFixed32LE(&out, h.version);
  PutFixed32LE(&out, h.pack_id);
  out.append(reinterpret_cast<const char*>(h.store_uuid.data()), h.store_uuid.size());
  return out;
}

std::string PackFileName(uint32_t pack_id) {
  std::string digits = std::to_string(pack_id);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return digits + ".pack";
}

bool ParsePackFileName(std::string_view name, uint32_t* pack_id) {
  constexpr std::string_view kSuffix = ".pack";
  if (name.size() < 6 + kSuffix.size() || !name.ends_with(kSuffix)) return false;
  uint64_t v = 0;
  for (char c : name.substr(0, name.size() - kSuffix.size())) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
    if (v > UINT32_MAX) return false;
  }
  if (v == 0 || PackFileName(uint32_t(v)) != name) return false;  // one spelling per id
  *pack_id = uint32_t(v);
  return true;
}

Result<PackFileHeader> DecodePackFileHeader(std::string_view bytes) {
  if (bytes.size() < kPackHeaderSize) return Malformed("pack header: short");
  if (std::memcmp(bytes.data(), kPackMagic, sizeof kPackMagic) != 0) {
    return Malformed("pack header: bad magic");
  }
  PackFileHeader h;
  h.version = DecodeFixed32LE(bytes.data() + 8);
  h.pack_id = DecodeFixed32LE(bytes.data() + 12);
  std::memcpy(h.store_uuid.data(), bytes.data() + 16, h.store_uuid.size());
  if (h.version != kPackVersion) {
    return Status(EUCLEAN, "pack format version " + std::to_string(h.version) +
                               " is not supported (this rankfs reads version " +
                               std::to_string(kPackVersion) + ")");
  }
  return h;
}

void EncodeRecordHeader(const RecordHeader& h, char* buf) {
  std::memcpy(buf, kRecordMagic, 4);
  buf[4] = char(kRecordVersion);
  buf[5] = char(h.codec);
  EncodeFixed16LE(buf + 6, 0);
  std::memcpy(buf + 8, h.hash.bytes.data(), 32);
  EncodeFixed32LE(buf + 40, h.raw_length);
  EncodeFixed32LE(buf + 44, h.stored_length);
  EncodeFixed32LE(buf + 48, h.stored_crc);
  EncodeFixed32LE(buf + 52, Crc32c(buf, 52));
}

void EncodeRecordHeader(const RecordHeader& h, std::string* dst) {
  char buf[kRecordHeaderSize];
  EncodeRecordHeader(h, buf);
  dst->append(buf, sizeof buf);
}

Result<RecordHeader> DecodeRecordHeader(std::string_view b) {
  if (b.size() < kRecordHeaderSize) return Malformed("chunk record header: short");
  if (std::memcmp(b.data(), kRecordMagic, 4) != 0) return Malformed("chunk record: bad magic");
  if (DecodeFixed32LE(b.data() + 52) != Crc32c(b.data(), 52)) {
    return Malformed("chunk record header: checksum mismatch");
  }
  if (uint8_t(b[4]) != kRecordVersion) return Malformed("chunk record: unknown version");
  RecordHeader h;
  uint8_t codec = uint8_t(b[5]);
  if (codec > uint8_t(Codec::kZstd)) return Malformed("chunk record: unknown codec");
  h.codec = Codec(codec);
  std::memcpy(h.hash.bytes.data(), b.data() + 8, 32);
  h.raw_length = DecodeFixed32LE(b.data() + 40);
  h.stored_length = DecodeFixed32LE(b.data() + 44);
  h.stored_crc = DecodeFixed32LE(b.data() + 48);
  if (h.raw_length > kMaxChunkBytes || h.stored_length > kMaxChunkBytes) {
    return Malformed("chunk record: length out of range");
  }
  if (h.codec == Codec::kRaw && h.raw_length != h.stored_length) {
    return Malformed("chunk record: raw record with differing lengths");
  }
  return h;
}

void EncodeFrameHeader(const FrameHeader& h, std::string* dst) {
  char buf[kFrameHeaderSize];
  std::memcpy(buf, kFrameMagic, 4);
  buf[4] = char(kFrameVersion);
  buf[5] = char(h.codec);
  EncodeFixed16LE(buf + 6, 0);
  EncodeFixed64LE(buf + 8, h.frame_id);
  EncodeFixed32LE(buf + 16, h.dictionary_id);
  EncodeFixed32LE(buf + 20, h.raw_length);
  EncodeFixed32LE(buf + 24, h.stored_length);
  EncodeFixed32LE(buf + 28, h.stored_crc);
  EncodeFixed32LE(buf + 32, Crc32c(buf, 32));
  dst->append(buf, sizeof buf);
}

Result<FrameHeader> DecodeFrameHeader(std::string_view b) {
  if (b.size() < kFrameHeaderSize) return Malformed("frame record header: short");
  if (std::memcmp(b.data(), kFrameMagic, 4) != 0) return Malformed("frame record: bad magic");
  if (DecodeFixed32LE(b.data() + 32) != Crc32c(b.data(), 32)) {
    return Malformed("frame record header: checksum mismatch");
  }
  if (uint8_t(b[4]) != kFrameVersion) return Malformed("frame record: unknown version");
  const uint8_t codec = uint8_t(b[5]);
  if (codec > uint8_t(Codec::kZstd)) return Malformed("frame record: unknown codec");
  if (DecodeFixed16LE(b.data() + 6) != 0) return Malformed("frame record: reserved bytes set");
  FrameHeader h;
  h.codec = Codec(codec);
  h.frame_id = DecodeFixed64LE(b.data() + 8);
  h.dictionary_id = DecodeFixed32LE(b.data() + 16);
  h.raw_length = DecodeFixed32LE(b.data() + 20);
  h.stored_length = DecodeFixed32LE(b.data() + 24);
  h.stored_crc = DecodeFixed32LE(b.data() + 28);
  if (h.frame_id == 0) return Malformed("frame record: frame id 0");
  if (h.raw_length > kMaxChunkBytes || h.stored_length > kMaxChunkBytes) {
    return Malformed("frame record: length out of range");
  }
  if (h.codec == Codec::kRaw && h.raw_length != h.stored_length) {
    return Malformed("frame record: raw record with differing lengths");
  }
  if (h.codec == Codec::kRaw && h.dictionary_id != 0) {
    return Malformed("frame record: raw record names a dictionary");
  }
  return h;
}

Status ScanPack(File* file, const std::function<bool(const ScannedRecord&)>& fn,
                ScanSummary* summary) {
  ScanSummary local;
  ScanSummary& sum = summary ? *summary : local;
  sum = ScanSummary();
  RANKFS_ASSIGN_OR_RETURN(uint64_t size, file->Size());

  std::string buf(kPackHeaderSize, '\0');
  size_t got = 0;
  RANKFS_RETURN_IF_ERROR(file->PRead(0, kPackHeaderSize, buf.data(), &got));
  buf.resize(got);
  auto ph = DecodePackFileHeader(buf);
  if (!ph.ok()) return ph.status().Annotate("scanning " + file->path());

  constexpr size_t kWindow = 1 << 20;
  std::string window;
  std::string payload;
  uint64_t pos = kPackHeaderSize;
  while (pos + kRecordHeaderSize <= size) {
    RANKFS_ASSIGN_OR_RETURN(uint64_t data, file->NextData(pos));
    if (data > pos) {
      sum.skipped_bytes += std::min(data, size) - pos;
      pos = data;
      continue;
    }
    char hb[kRecordHeaderSize];
    RANKFS_RETURN_IF_ERROR(file->PRead(pos, sizeof hb, hb, &got));
    auto rh = got == sizeof hb ? DecodeRecordHeader({hb, sizeof hb})
                               : Result<RecordHeader>(Malformed("short header"));
    if (!rh.ok()) {
      // Not a record start: look for the next magic after pos.
      window.resize(kWindow);
      RANKFS_RETURN_IF_ERROR(file->PRead(pos + 1, kWindow, window.data(), &got));
      window.resize(got);
      size_t at = window.find(std::string_view(kRecordMagic, 4));
      uint64_t next = at == std::string::npos ? pos + 1 + (got > 3 ? got - 3 : got)
                                              : pos + 1 + at;
      if (got == 0) next = size;
      sum.skipped_bytes += next - pos;
      pos = next;
      continue;
    }
    ScannedRecord rec;
    rec.offset = pos;
    rec.header = *rh;
    uint64_t end = pos + kRecordHeaderSize + rh->stored_length;
    if (end > size) {
      rec.payload_ok = false;  // torn tail
    } else {
      payload.resize(rh->stored_length);
      RANKFS_RETURN_IF_ERROR(
          file->PRead(pos + kRecordHeaderSize, payload.size(), payload.data(), &got));
      rec.payload_ok = got == payload.size() && Crc32c(payload.data(), got) == rh->stored_crc;
    }
    ++sum.records;
    if (!rec.payload_ok) ++sum.damaged_records;
    if (!fn(rec)) return Status::Ok();
    // A damaged payload's length is still trusted: the header checksum vouches for it.
    pos = std::min(end, size);
  }
  if (pos < size) sum.skipped_bytes += size - pos;
  return Status::Ok();
}

}  // namespace rankfs
