// Tests of the metadata store's key and value encodings (store/meta_codec.h): round trips at
// edge values, rejection of every malformed input, and key order.
#include "store/meta_codec.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tests/testutil/codec_samples.h"

namespace rankfs {
namespace {

ChunkHash HashOf(uint8_t seed) {
  ChunkHash h;
  for (size_t i = 0; i < h.bytes.size(); ++i) h.bytes[i] = uint8_t(seed + i * 7);
  return h;
}

InodeAttr MaxInode() {
  InodeAttr a;
  a.ino = UINT64_MAX;
  a.mode = UINT32_MAX;
  a.uid = UINT32_MAX;
  a.gid = UINT32_MAX;
  a.nlink = UINT32_MAX;
  a.size = UINT64_MAX;
  a.rdev = UINT64_MAX;
  a.generation = UINT64_MAX;
  a.atime_ns = INT64_MAX;
  a.mtime_ns = INT64_MIN;
  a.ctime_ns = -1;
  a.symlink_target = std::string(4095, 'x');  // PATH_MAX - 1
  return a;
}

InodeAttr SymlinkInode() {
  InodeAttr a;
  a.ino = 7;
  a.mode = 0120777;
  a.nlink = 1;
  a.size = 3;
  a.atime_ns = -1'000'000'000;  // before the epoch
  a.mtime_ns = 1'700'000'000'123'456'789;
  a.symlink_target = std::string("a\0b", 3);  // bytes, not a C string
  return a;
}

InodeAttr MinimalInode() {
  InodeAttr a;
  a.ino = 1;
  return a;
}

ChunkRecord ZstdChunk() {
  ChunkRecord r;
  r.location = {.pack_id = UINT32_MAX,
                .offset = UINT64_MAX,
                .record_length = UINT32_MAX,
                .raw_length = UINT32_MAX,
                .stored_length = UINT32_MAX,
                .codec = Codec::kZstd,
                .stored_crc = 0xdeadbeef};
  r.refcount = UINT64_MAX;
  return r;
}

ChunkRecord RawChunk() {
  ChunkRecord r;
  r.location = {.pack_id = 3,
                .offset = 4096,
                .record_length = 65536 + 64,
                .raw_length = 65536,
                .stored_length = 65536,
                .codec = Codec::kRaw,
                .stored_crc = 1};
  r.refcount = 1;
  return r;
}

Superblock SomeSuper() {
  Superblock sb;
  for (size_t i = 0; i < sb.uuid.size(); ++i) sb.uuid[i] = uint8_t(0xf0 + i);
  sb.chunker = {.min_size = 8192, .avg_size = 32768, .max_size = 131072};
  sb.compression_level = -5;
  sb.created_ns = INT64_MIN;
  return sb;
}

std::vector<CodecSample> Samples() {
  return {
      {"inode", EncodeInodeAttr(MaxInode()), StatusOf(&DecodeInodeAttr)},
      {"inode", EncodeInodeAttr(SymlinkInode()), StatusOf(&DecodeInodeAttr)},
      {"inode", EncodeInodeAttr(MinimalInode()), StatusOf(&DecodeInodeAttr)},
      {"dirent", EncodeDirEntry({.ino = UINT64_MAX, .type = 15}), StatusOf(&DecodeDirEntry)},
      {"extent", EncodeExtent({.length = 5, .chunk = HashOf(1), .chunk_offset = 9}),
       StatusOf(&DecodeExtent)},
      {"chunk", EncodeChunkRecord(ZstdChunk()), StatusOf(&DecodeChunkRecord)},
      {"chunk", EncodeChunkRecord(RawChunk()), StatusOf(&DecodeChunkRecord)},
      {"pack", EncodePackStats({.live_bytes = 1, .dead_bytes = UINT64_MAX}),
       StatusOf(&DecodePackStats)},
      {"superblock", EncodeSuperblock(SomeSuper()), StatusOf(&DecodeSuperblock)},
  };
}

// ---- Round trips ----------------------------------------------------------------------------

TEST(MetaCodecTest, InodeRoundTrips) {
  for (const InodeAttr& a : {MaxInode(), SymlinkInode(), MinimalInode()}) {
    Result<InodeAttr> r = DecodeInodeAttr(EncodeInodeAttr(a));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, a);
  }
}

TEST(MetaCodecTest, DirEntryRoundTrips) {
  for (const DirEntry& e : {DirEntry{1, 0}, DirEntry{UINT64_MAX, 15}, DirEntry{42, 4}}) {
    Result<DirEntry> r = DecodeDirEntry(EncodeDirEntry(e));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, e);
  }
}

TEST(MetaCodecTest, ExtentRoundTrips) {
  const Extent cases[] = {
      {.length = 1, .chunk = HashOf(0), .chunk_offset = 0},
      {.length = UINT32_MAX, .chunk = HashOf(200), .chunk_offset = 0},  // a whole max chunk
      {.length = 1, .chunk = HashOf(7), .chunk_offset = UINT32_MAX - 1},
  };
  for (const Extent& e : cases) {
    Result<Extent> r = DecodeExtent(EncodeExtent(e));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, e);
  }
}

TEST(MetaCodecTest, ChunkRecordRoundTrips) {
  ChunkRecord empty_raw;  // a raw 0-byte chunk is valid (stored == raw == 0)
  for (const ChunkRecord& c : {ZstdChunk(), RawChunk(), empty_raw}) {
    Result<ChunkRecord> r = DecodeChunkRecord(EncodeChunkRecord(c));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, c);
  }
}

TEST(MetaCodecTest, PackStatsAndSuperblockRoundTrip) {
  PackStats s{.live_bytes = UINT64_MAX, .dead_bytes = 0};
  Result<PackStats> ps = DecodePackStats(EncodePackStats(s));
  ASSERT_TRUE(ps.ok()) << ps.status().ToString();
  EXPECT_EQ(*ps, s);

  for (const Superblock& sb : {SomeSuper(), Superblock{}}) {
    Result<Superblock> r = DecodeSuperblock(EncodeSuperblock(sb));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, sb);
  }
}

// ---- Malformed values -----------------------------------------------------------------------

TEST(MetaCodecTest, EveryTruncationIsRejected) { ExpectEveryTruncationRejected(Samples()); }

TEST(MetaCodecTest, TrailingBytesAreRejected) { ExpectTrailingBytesRejected(Samples()); }

TEST(MetaCodecTest, UnknownEncodingVersionIsRejected) { ExpectUnknownVersionsRejected(Samples()); }

TEST(MetaCodecTest, InvalidFieldsAreRejected) {
  auto expect_bad = [](const Status& st, std::string_view what) {
    EXPECT_EQ(st.code(), EUCLEAN) << st.ToString();
    EXPECT_NE(st.message().find(what), std::string::npos) << st.ToString();
  };
  ChunkRecord c = ZstdChunk();
  c.location.record_length = 100;
  c.location.stored_length = 101;
  expect_bad(DecodeChunkRecord(EncodeChunkRecord(c)).status(), "stored length");
  c = RawChunk();
  c.location.stored_length -= 1;
  expect_bad(DecodeChunkRecord(EncodeChunkRecord(c)).status(), "raw");
  c = RawChunk();
  c.location.codec = Codec(2);
  expect_bad(DecodeChunkRecord(EncodeChunkRecord(c)).status(), "codec");

  expect_bad(DecodeExtent(EncodeExtent({.length = 0, .chunk = HashOf(1)})).status(), "zero");
  expect_bad(
      DecodeExtent(EncodeExtent({.length = 2, .chunk = HashOf(1), .chunk_offset = UINT32_MAX - 1}))
          .status(),
      "exceeds");
  expect_bad(
      DecodeExtent(
          EncodeExtent({.length = uint64_t(UINT32_MAX) + 1, .chunk = HashOf(1), .chunk_offset = 0}))
          .status(),
      "exceeds");

  expect_bad(DecodeDirEntry(EncodeDirEntry({.ino = 0, .type = 4})).status(), "inode number 0");
  expect_bad(DecodeDirEntry(EncodeDirEntry({.ino = 2, .type = 16})).status(), "type");
  expect_bad(DecodeInodeAttr(EncodeInodeAttr(InodeAttr{})).status(), "inode number 0");

  // A symlink length field that claims more bytes than there are, or fewer.
  std::string v = EncodeInodeAttr(SymlinkInode());
  expect_bad(DecodeInodeAttr(v.substr(0, v.size() - 1)).status(), "truncated");
  std::string longer = v;
  longer[longer.size() - 3 - 4] = 2;  // target_len 3 -> 2: one byte left over
  expect_bad(DecodeInodeAttr(longer).status(), "trailing");
}

TEST(MetaCodecTest, SuperblockChecksMagicAndFormatVersion) {
  std::string v = EncodeSuperblock(SomeSuper());
  std::string bad_magic = v;
  bad_magic[1] ^= 1;
  Status st = DecodeSuperblock(bad_magic).status();
  EXPECT_EQ(st.code(), EUCLEAN) << st.ToString();
  EXPECT_NE(st.message().find("magic"), std::string::npos) << st.ToString();

  Superblock zero = SomeSuper();
  zero.format_version = 0;
  EXPECT_EQ(DecodeSuperblock(EncodeSuperblock(zero)).status().code(), EUCLEAN);

  Superblock newer = SomeSuper();
  newer.format_version = Superblock::kFormatVersion + 1;
  std::string newer_v = EncodeSuperblock(newer);
  const std::string expected =
      "store format version " + std::to_string(Superblock::kFormatVersion + 1) +
      " is newer than this rankfs (reads up to " + std::to_string(Superblock::kFormatVersion) + ")";
  st = DecodeSuperblock(newer_v).status();
  EXPECT_EQ(st.code(), ENOTSUP) << st.ToString();
  EXPECT_EQ(st.message(), expected);
  // A newer rankfs may also change the encoding version and append fields: the format check
  // must still come first and say the same.
  newer_v[0] = char(9);
  newer_v += "fields of the future";
  st = DecodeSuperblock(newer_v).status();
  EXPECT_EQ(st.code(), ENOTSUP) << st.ToString();
  EXPECT_EQ(st.message(), expected);
}

// Arbitrary bytes never crash a decoder (ASan checks the reads), and a value that decodes is
// canonical: it re-encodes to exactly the same bytes.
TEST(MetaCodecTest, RandomAndMutatedInputsAreSafe) {
  std::mt19937_64 rng(12345);
  std::vector<CodecSample> samples = Samples();
  auto check_canonical = [](std::string_view in) {
    if (auto r = DecodeInodeAttr(in); r.ok()) {
      EXPECT_EQ(EncodeInodeAttr(*r), in);
    }
    if (auto r = DecodeDirEntry(in); r.ok()) {
      EXPECT_EQ(EncodeDirEntry(*r), in);
    }
    if (auto r = DecodeExtent(in); r.ok()) {
      EXPECT_EQ(EncodeExtent(*r), in);
    }
    if (auto r = DecodeChunkRecord(in); r.ok()) {
      EXPECT_EQ(EncodeChunkRecord(*r), in);
    }
    if (auto r = DecodePackStats(in); r.ok()) {
      EXPECT_EQ(EncodePackStats(*r), in);
    }
    if (auto r = DecodeSuperblock(in); r.ok()) {
      EXPECT_EQ(EncodeSuperblock(*r), in);
    }
    Ino ino;
    uint64_t off;
    uint32_t pack;
    std::string_view name;
    ChunkHash h;
    (void)DecodeInodeKey(in, &ino);
    (void)DecodeDirentKey(in, &ino, &name);
    (void)DecodeExtentKey(in, &ino, &off);
    (void)DecodeChunkKey(in, &h);
    (void)DecodeXattrKey(in, &ino, &name);
    (void)DecodeOrphanKey(in, &ino);
    (void)DecodePackKey(in, &pack);
  };
  for (int i = 0; i < 20000; ++i) {
    // Exactly-sized heap copies so that ASan catches a read one past the end.
    std::string in;
    if (i % 2 == 0) {
      in.resize(rng() % 120);
      for (char& c : in) c = char(rng());
    } else {
      in = samples[rng() % samples.size()].encoded;
      for (int flips = 1 + int(rng() % 4); flips > 0; --flips) {
        in[rng() % in.size()] = char(rng());
      }
      if (rng() % 4 == 0) in.resize(rng() % (in.size() + 1));
    }
    std::vector<char> exact(in.begin(), in.end());
    check_canonical(std::string_view(exact.data(), exact.size()));
  }
}

// ---- Keys -----------------------------------------------------------------------------------

TEST(MetaCodecTest, KeysSortNumerically) {
  const Ino ino = 0x00000000000001ffull;  // offsets and inos cross byte boundaries
  EXPECT_LT(ExtentKey(ino, 2), ExtentKey(ino, 256));
  EXPECT_LT(ExtentKey(ino, 256), ExtentKey(ino, UINT64_MAX));
  EXPECT_LT(ExtentKey(ino, UINT64_MAX), ExtentKey(ino + 1, 0));
  EXPECT_LT(InodeKey(255), InodeKey(256));
  EXPECT_LT(InodeKey(1), InodeKey(UINT64_MAX));
  EXPECT_LT(PackKey(255), PackKey(256));
  EXPECT_LT(OrphanKey(0xff), OrphanKey(0x100));
  EXPECT_EQ(ExtentKey(3, 0).substr(0, 8), ExtentPrefix(3));
}

TEST(MetaCodecTest, DirentsOfOneParentAreContiguousAndSortedByName) {
  const std::string longest(255, '\xff');
  for (Ino parent : {Ino{1}, Ino{255}, Ino{0xffff}}) {
    const std::string lo = DirentPrefix(parent), hi = DirentPrefix(parent + 1);
    for (std::string_view name :
         {std::string_view("a"), std::string_view("zz"), std::string_view(longest)}) {
      const std::string k = DirentKey(parent, name);
      EXPECT_GT(k, lo);
      EXPECT_LT(k, hi);
      EXPECT_LT(DirentKey(parent - 1, longest), k);
    }
    EXPECT_LT(DirentKey(parent, "a"), DirentKey(parent, "ab"));
    EXPECT_LT(DirentKey(parent, "ab"), DirentKey(parent, "b"));
    EXPECT_LT(XattrKey(parent, longest), XattrPrefix(parent + 1));
  }
}

TEST(MetaCodecTest, KeyDecodersRoundTripAndRejectBadLengths) {
  Ino ino = 0;
  uint64_t off = 0;
  uint32_t pack = 0;
  std::string_view name;
  ChunkHash h;

  ASSERT_TRUE(DecodeInodeKey(InodeKey(UINT64_MAX), &ino));
  EXPECT_EQ(ino, UINT64_MAX);
  const std::string long_name(255, 'n');
  const std::string dk = DirentKey(9, long_name);
  ASSERT_TRUE(DecodeDirentKey(dk, &ino, &name));
  EXPECT_EQ(ino, 9u);
  EXPECT_EQ(name, long_name);
  ASSERT_TRUE(DecodeExtentKey(ExtentKey(5, 1ull << 40), &ino, &off));
  EXPECT_EQ(ino, 5u);
  EXPECT_EQ(off, 1ull << 40);
  ASSERT_TRUE(DecodeChunkKey(ChunkKey(HashOf(3)), &h));
  EXPECT_EQ(h, HashOf(3));
  const std::string xk = XattrKey(4, "user.k");
  ASSERT_TRUE(DecodeXattrKey(xk, &ino, &name));
  EXPECT_EQ(ino, 4u);
  EXPECT_EQ(name, "user.k");
  ASSERT_TRUE(DecodeOrphanKey(OrphanKey(6), &ino));
  EXPECT_EQ(ino, 6u);
  ASSERT_TRUE(DecodePackKey(PackKey(UINT32_MAX), &pack));
  EXPECT_EQ(pack, UINT32_MAX);

  EXPECT_FALSE(DecodeInodeKey(std::string(7, 'x'), &ino));
  EXPECT_FALSE(DecodeInodeKey(std::string(9, 'x'), &ino));
  EXPECT_FALSE(DecodeDirentKey(DirentPrefix(1), &ino, &name));  // empty name
  EXPECT_FALSE(DecodeDirentKey("", &ino, &name));
  EXPECT_FALSE(DecodeExtentKey(std::string(15, 'x'), &ino, &off));
  EXPECT_FALSE(DecodeExtentKey(std::string(17, 'x'), &ino, &off));
  EXPECT_FALSE(DecodeChunkKey(std::string(31, 'x'), &h));
  EXPECT_FALSE(DecodeChunkKey(std::string(33, 'x'), &h));
  EXPECT_FALSE(DecodeXattrKey(XattrPrefix(1), &ino, &name));
  EXPECT_FALSE(DecodeOrphanKey("", &ino));
  EXPECT_FALSE(DecodePackKey(std::string(5, 'x'), &pack));
}

}  // namespace
}  // namespace rankfs
