// The pack file format: encoding, decoding and scanning of chunk records. The byte layout is
// specified in docs/format.md; this file is its only implementation.
//
// A pack is `PackFileHeader` followed by records; each record is a `RecordHeader` followed by
// `stored_length` bytes (a zstd frame or the raw chunk). Records are self-describing, so a pack
// can be scanned without the metadata store (fsck, rebuild). Decoders accept any bytes: they
// validate and return an error, never read out of bounds.
//
// Thread-safety: free functions over caller-owned data; ScanPack reads through a File, which
// may be shared.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "store/env.h"
#include "store/status.h"
#include "store/types.h"

namespace rankfs {

inline constexpr size_t kPackHeaderSize = 32;
inline constexpr size_t kRecordHeaderSize = 56;
// The largest stored_length/raw_length a record may declare (the chunker's 64 MiB limit).
inline constexpr uint32_t kMaxChunkBytes = 64u << 20;

struct PackFileHeader {
  uint32_t version = 1;
  uint32_t pack_id = 0;
  std::array<uint8_t, 16> store_uuid{};
  bool operator==(const PackFileHeader&) const = default;
};

struct RecordHeader {
  Codec codec = Codec::kRaw;
  ChunkHash hash;
  uint32_t raw_length = 0;
  uint32_t stored_length = 0;
  uint32_t stored_crc = 0;  // CRC32C of the stored bytes
  bool operator==(const RecordHeader&) const = default;
};

// Store format 3's frame record header (magic `RKFR`, docs/format.md): a frame is one zstd
// frame (or raw bytes) holding the raw bytes of several pieces. Nothing writes it yet, and
// ScanPack does not recognise it yet.
inline constexpr size_t kFrameHeaderSize = 36;

struct FrameHeader {
  Codec codec = Codec::kRaw;
  uint64_t frame_id = 0;       // never 0
  uint32_t dictionary_id = 0;  // 0: no dictionary; always 0 for Codec::kRaw
  uint32_t raw_length = 0;
  uint32_t stored_length = 0;
  uint32_t stored_crc = 0;  // CRC32C of the stored bytes
  bool operator==(const FrameHeader&) const = default;
};

// Pack file names: the id in decimal, zero-padded to at least 6 digits, then ".pack"
// ("000042.pack"; ids past 999999 simply have more digits). docs/format.md.
std::string PackFileName(uint32_t pack_id);
// The inverse: false for any other name (and for id 0, which is never used).
bool ParsePackFileName(std::string_view name, uint32_t* pack_id);

std::string EncodePackFileHeader(const PackFileHeader& h);
Result<PackFileHeader> DecodePackFileHeader(std::string_view bytes);

// Appends the 56-byte header to *dst.
void EncodeRecordHeader(const RecordHeader& h, std::string* dst);
// Writes the 56-byte header to dst[0, kRecordHeaderSize).
void EncodeRecordHeader(const RecordHeader& h, char* dst);
// Checks magic, version, header CRC, codec and lengths.
Result<RecordHeader> DecodeRecordHeader(std::string_view bytes);

// Appends the 36-byte frame header to *dst.
void EncodeFrameHeader(const FrameHeader& h, std::string* dst);
// Checks magic, header CRC, version, codec, frame id, dictionary and lengths, as
// DecodeRecordHeader does for a chunk record.
Result<FrameHeader> DecodeFrameHeader(std::string_view bytes);

// One record found by ScanPack.
struct ScannedRecord {
  uint64_t offset = 0;  // of the header inside the pack
  RecordHeader header;
  bool payload_ok = false;  // the stored bytes match stored_crc
};

struct ScanSummary {
  uint64_t records = 0;
  uint64_t damaged_records = 0;  // header valid, payload CRC wrong or payload cut short
  uint64_t skipped_bytes = 0;    // bytes that held no valid record (holes, garbage, torn tail)
};

// Walks every record of a pack file in offset order. Holes (punched ranges) are skipped with
// NextData; bytes that do not start a valid header are skipped one at a time until the next
// magic, so a torn or damaged region costs only the records inside it. `fn` returns false to
// stop. Fails only when the pack header is invalid or a read fails.
Status ScanPack(File* file, const std::function<bool(const ScannedRecord&)>& fn,
                ScanSummary* summary);

}  // namespace rankfs
