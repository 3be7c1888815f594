// Plain value types shared by the store's components: inode numbers, content hashes, and the
// records kept in the metadata store. Their on-disk encodings live in meta_codec.h and are
// described in docs/format.md.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace rankfs {

using Ino = uint64_t;
inline constexpr Ino kRootIno = 1;

// SHA-256 of a chunk's raw (uncompressed) bytes: the chunk's identity.
struct ChunkHash {
  std::array<uint8_t, 32> bytes{};

  static ChunkHash Of(std::string_view data);  // SHA-256 via OpenSSL (hash.cc)
  // The address of a chunk in a per-uid dedup store: SHA-256(uid as u32 little-endian || data),
  // so that equal bytes of different owners never share a chunk (docs/format.md).
  static ChunkHash OfScoped(uint32_t uid, std::string_view data);
  // Of(data) when `scope_uid` is empty, OfScoped(*scope_uid, data) otherwise.
  static ChunkHash ForScope(const std::optional<uint32_t>& scope_uid, std::string_view data) {
    return scope_uid ? OfScoped(*scope_uid, data) : Of(data);
  }
  std::string ToHex() const;
  std::string_view AsBytes() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  bool operator==(const ChunkHash&) const = default;
  auto operator<=>(const ChunkHash&) const = default;
};

struct ChunkHashHasher {
  size_t operator()(const ChunkHash& h) const {
    size_t v;
    std::memcpy(&v, h.bytes.data(), sizeof v);  // SHA-256 bits are already uniform
    return v;
  }
};

// Attributes of one inode (file, directory, symlink, device node, fifo or socket).
struct InodeAttr {
  Ino ino = 0;
  uint32_t mode = 0;  // S_IFMT bits + permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;
  uint64_t generation = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  // A directory's parent directory (the root's is the root); 0 for other kinds, and for a
  // directory whose record predates the field (docs/format.md, inode encoding version 1).
  Ino parent = 0;
  // Bytes of the file that are not holes: the lengths of its extents in the store, data and
  // preallocated alike (docs/format.md). st_blocks is this, plus the bytes FsCore still
  // buffers, rounded up to 4 KiB blocks. kAllocatedUnknown: a record older than the field, or
  // one made without looking at the extents (FsCore computes it from them when it loads the
  // inode; fsck does not check it). A new inode sets 0.
  static constexpr uint64_t kAllocatedUnknown = UINT64_MAX;
  uint64_t allocated_bytes = kAllocatedUnknown;
  std::string symlink_target;  // only for symlinks
  bool operator==(const InodeAttr&) const = default;
};

// A directory entry: the child inode and its type (the S_IFMT bits of its mode, >> 12).
struct DirEntry {
  Ino ino = 0;
  uint8_t type = 0;
  bool operator==(const DirEntry&) const = default;
};

// A file range [file_offset, file_offset + length) backed by bytes
// [chunk_offset, chunk_offset + length) of chunk `chunk`. Ranges without an extent are holes.
// An unwritten extent is a preallocated range (fallocate): it reads as zeros and counts as
// allocated, like a hole that st_blocks does not skip; it names no chunk (chunk and
// chunk_offset stay zero) and holds no reference.
// A frame extent (store format 3, not yet written by the daemon) is backed by bytes
// [frame_offset, frame_offset + length) of frame `frame_id`'s raw bytes; chunk and chunk_offset
// stay zero. Only an extent whose kind() is kChunk names a chunk: code that reads `chunk` must
// check that first. The metadata store refuses frame extents (EUCLEAN) until frames are built.
struct Extent {
  enum class Kind : uint8_t { kChunk, kUnwritten, kFrame };
  uint64_t length = 0;
  ChunkHash chunk;
  uint32_t chunk_offset = 0;
  bool unwritten = false;
  bool framed = false;
  uint64_t frame_id = 0;
  uint32_t frame_offset = 0;
  static Extent Unwritten(uint64_t length) { return Extent{length, ChunkHash{}, 0, true}; }
  static Extent Frame(uint64_t length, uint64_t frame_id, uint32_t frame_offset) {
    return Extent{length, ChunkHash{}, 0, false, true, frame_id, frame_offset};
  }
  Kind kind() const { return framed ? Kind::kFrame : unwritten ? Kind::kUnwritten : Kind::kChunk; }
  bool operator==(const Extent&) const = default;
};

enum class Codec : uint8_t { kRaw = 0, kZstd = 1 };

// Where a chunk's record lives in the chunk store's packs and what it holds.
struct ChunkLocation {
  uint32_t pack_id = 0;
  uint64_t offset = 0;         // of the record header inside the pack
  uint32_t record_length = 0;  // header + stored bytes
  uint32_t raw_length = 0;     // uncompressed bytes
  uint32_t stored_length = 0;  // bytes after the header (compressed or raw)
  Codec codec = Codec::kRaw;
  uint32_t stored_crc = 0;     // CRC32C of the stored bytes
  bool operator==(const ChunkLocation&) const = default;
};

// The chunk index's value: location and the number of extents referring to the chunk.
struct ChunkRecord {
  ChunkLocation location;
  uint64_t refcount = 0;
  // Set for a chunk of a per-uid dedup store: the uid its address was computed with
  // (ChunkHash::OfScoped), so fsck can check the content against the address.
  std::optional<uint32_t> scope_uid;
  bool operator==(const ChunkRecord&) const = default;
};

// Store format 3 (docs/format.md): a frame is a compressed record in a pack holding the raw
// bytes of several pieces. Frame ids start at 1 and are never reused; 0 names no frame.
struct FrameRecord {
  uint32_t pack_id = 0;
  uint64_t offset = 0;         // of the frame record's header inside the pack
  uint32_t record_length = 0;  // header + stored bytes
  uint32_t raw_length = 0;     // uncompressed bytes
  uint32_t stored_length = 0;  // bytes after the header (compressed or raw)
  Codec codec = Codec::kRaw;
  uint32_t dictionary_id = 0;  // 0: compressed without a dictionary
  uint32_t stored_crc = 0;     // CRC32C of the stored bytes
  uint64_t refcount = 0;       // extents naming the frame
  bool operator==(const FrameRecord&) const = default;
};

// Store format 3's dedup index entry (the `pieces` family, keyed by ChunkKey): where a piece's
// bytes lie, bytes [offset, offset + length) of frame `frame_id`'s raw bytes. It holds no
// reference on the frame: an entry naming a released frame is a miss.
struct PieceRecord {
  uint64_t frame_id = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  std::optional<uint32_t> scope_uid;  // as ChunkRecord::scope_uid
  bool operator==(const PieceRecord&) const = default;
};

// Space accounting of one pack file.
struct PackStats {
  uint64_t live_bytes = 0;  // record bytes of chunks still referenced
  uint64_t dead_bytes = 0;  // record bytes released (punched or waiting to be)
  bool operator==(const PackStats&) const = default;
};

struct ChunkerParams {
  // 32 KiB mean, not 64: a 4 KiB mmap fault decompresses half as much. The mmap-random
  // benchmark rose 2.6x; N-ranks disk bytes went 0.097x -> 0.098x ext4 (docs/design.md,
  // "Chunk size").
  uint32_t min_size = 8 * 1024;
  uint32_t avg_size = 32 * 1024;
  uint32_t max_size = 128 * 1024;
  bool operator==(const ChunkerParams&) const = default;
};

// Which writers share chunks. kGlobal: equal bytes are stored once for the whole store.
// kPerUid: only files of the same owner uid share chunks, so a user cannot learn from timing or
// space that another user already stored some content (docs/reliability.md).
enum class DedupScope : uint8_t { kGlobal = 0, kPerUid = 1 };

// The store's superblock: what a reader must know before touching anything else.
struct Superblock {
  static constexpr uint32_t kFormatVersion = 2;  // docs/format.md, "Format versions"
  uint32_t format_version = kFormatVersion;
  std::array<uint8_t, 16> uuid{};
  ChunkerParams chunker;
  int32_t compression_level = 1;
  int64_t created_ns = 0;
  DedupScope dedup_scope = DedupScope::kGlobal;  // fixed when the store is created
  bool operator==(const Superblock&) const = default;
};

}  // namespace rankfs
