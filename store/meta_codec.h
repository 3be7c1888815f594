// Key and value encodings of the metadata store's records (docs/format.md describes them).
//
// Keys are big-endian so that RocksDB's bytewise order equals numeric order: all dirents of a
// directory are contiguous and sorted by name, all extents of a file are contiguous and sorted
// by file offset. Values are little-endian and start with a 1-byte encoding version, so a later
// rankfs can change a record's layout and still read the old one.
//
// Decoders take untrusted bytes (a damaged database, a fuzzer): they never read outside their
// input and never crash. A malformed value (truncated, trailing bytes, unknown version, a field
// out of range) yields EUCLEAN with a message naming the record kind; a superblock written by a
// newer rankfs yields ENOTSUP. Key decoders return false on a malformed key.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/status.h"
#include "store/types.h"

namespace rankfs {

// ---- Keys ----------------------------------------------------------------------------------

inline constexpr std::string_view kSuperKey = "super";  // in the default column family

std::string InodeKey(Ino ino);                             // 8 bytes
std::string DirentPrefix(Ino parent);                      // 8 bytes
std::string DirentKey(Ino parent, std::string_view name);  // 8 bytes + name
std::string ExtentPrefix(Ino ino);                         // 8 bytes
std::string ExtentKey(Ino ino, uint64_t file_offset);      // 16 bytes
std::string ChunkKey(const ChunkHash& h);                  // 32 bytes
std::string XattrPrefix(Ino ino);                          // 8 bytes
std::string XattrKey(Ino ino, std::string_view name);      // 8 bytes + name
std::string OrphanKey(Ino ino);                            // 8 bytes
std::string PackKey(uint32_t pack_id);                     // 4 bytes
std::string FrameKey(uint64_t frame_id);                   // 8 bytes (format 3)

// Key decoders: false when `key` does not have the layout of that kind. Names returned as views
// point into `key`. Dirent and xattr keys must carry a non-empty name.
bool DecodeInodeKey(std::string_view key, Ino* ino);
bool DecodeDirentKey(std::string_view key, Ino* parent, std::string_view* name);
bool DecodeExtentKey(std::string_view key, Ino* ino, uint64_t* file_offset);
bool DecodeChunkKey(std::string_view key, ChunkHash* h);
bool DecodeXattrKey(std::string_view key, Ino* ino, std::string_view* name);
bool DecodeOrphanKey(std::string_view key, Ino* ino);
bool DecodePackKey(std::string_view key, uint32_t* pack_id);
bool DecodeFrameKey(std::string_view key, uint64_t* frame_id);

// ---- Values --------------------------------------------------------------------------------
//
// Encoders produce the current encoding version. An encoded value decodes back to an equal
// record provided the record is valid (the conditions each decoder checks, listed below);
// encoding an invalid record is a caller bug that the decoder will later report as corruption.

// REQUIRES: attr.ino != 0. Writes encoding version 2; version 1 (records of rankfs before
// format version 2) decodes with parent 0 and allocated_bytes InodeAttr::kAllocatedUnknown.
std::string EncodeInodeAttr(const InodeAttr& attr);
Result<InodeAttr> DecodeInodeAttr(std::string_view value);

// REQUIRES: e.ino != 0, e.type <= 15 (S_IFMT >> 12 fits 4 bits).
std::string EncodeDirEntry(const DirEntry& e);
Result<DirEntry> DecodeDirEntry(std::string_view value);

// REQUIRES: e.length > 0; for a chunk extent e.chunk_offset + e.length <= UINT32_MAX (a slice
// of one chunk); for an unwritten one, chunk and chunk_offset zero (they are not stored); for a
// frame extent (encoding version 3), frame_id != 0, frame_offset + length <= UINT32_MAX, and
// chunk and chunk_offset zero. The decoded Extent's kind() says which of the three it is.
std::string EncodeExtent(const Extent& e);
Result<Extent> DecodeExtent(std::string_view value);

// REQUIRES: a known codec, stored_length <= record_length, and stored_length == raw_length
// for Codec::kRaw.
std::string EncodeChunkRecord(const ChunkRecord& r);
Result<ChunkRecord> DecodeChunkRecord(std::string_view value);

// Store format 3's records (docs/format.md; nothing writes them yet). Integer fields are
// varints, and a varint that is truncated, longer than needed or out of its field's range is
// malformed.
// REQUIRES: a known codec, stored_length <= record_length, stored_length == raw_length and
// dictionary_id == 0 for Codec::kRaw.
std::string EncodeFrameRecord(const FrameRecord& r);
Result<FrameRecord> DecodeFrameRecord(std::string_view value);

// REQUIRES: frame_id != 0, length > 0, offset + length <= UINT32_MAX.
std::string EncodePieceRecord(const PieceRecord& r);
Result<PieceRecord> DecodePieceRecord(std::string_view value);

std::string EncodePackStats(const PackStats& s);
Result<PackStats> DecodePackStats(std::string_view value);

// The superblock starts with its encoding version, a magic number and the store format version
// at fixed positions in every encoding version, so that any rankfs can tell "newer format"
// (ENOTSUP, "store format version N is newer than this rankfs (reads up to M)") from "not a
// rankfs superblock" or "damaged" (EUCLEAN).
// REQUIRES: 1 <= sb.format_version <= Superblock::kFormatVersion.
std::string EncodeSuperblock(const Superblock& sb);
Result<Superblock> DecodeSuperblock(std::string_view value);

}  // namespace rankfs
