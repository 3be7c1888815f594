// Tests of store format 3's record encodings (store/meta_codec.h): frame records, piece (dedup
// index) records, frame extents and the varints they use. Round trips at edge values, every
// truncation, trailing bytes, overlong and out-of-range varints, and canonical re-encoding.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "store/coding.h"
#include "store/meta_codec.h"
#include "tests/testutil/codec_samples.h"

namespace rankfs {
namespace {

FrameRecord MaxFrame() {
  return {.pack_id = UINT32_MAX,
          .offset = UINT64_MAX,
          .record_length = UINT32_MAX,
          .raw_length = UINT32_MAX,
          .stored_length = UINT32_MAX,
          .codec = Codec::kZstd,
          .dictionary_id = UINT32_MAX,
          .stored_crc = 0xdeadbeef,
          .refcount = UINT64_MAX};
}

FrameRecord RawFrame() {
  return {.pack_id = 0,
          .offset = 0,
          .record_length = 32768 + 40,
          .raw_length = 32768,
          .stored_length = 32768,
          .codec = Codec::kRaw,
          .dictionary_id = 0,
          .stored_crc = 0,
          .refcount = 1};
}

PieceRecord Piece(uint64_t frame_id, uint32_t offset, uint32_t length,
                  std::optional<uint32_t> scope_uid = std::nullopt) {
  return {.frame_id = frame_id, .offset = offset, .length = length, .scope_uid = scope_uid};
}
PieceRecord GlobalPiece() { return Piece(1, 0, 1); }
PieceRecord ScopedPiece() { return Piece(UINT64_MAX, UINT32_MAX - 1, 1, UINT32_MAX); }

std::vector<CodecSample> Samples() {
  return {
      {"frame", EncodeFrameRecord(MaxFrame()), StatusOf(&DecodeFrameRecord)},
      {"frame", EncodeFrameRecord(RawFrame()), StatusOf(&DecodeFrameRecord)},
      {"piece", EncodePieceRecord(GlobalPiece()), StatusOf(&DecodePieceRecord)},
      {"piece", EncodePieceRecord(ScopedPiece()), StatusOf(&DecodePieceRecord)},
      {"piece", EncodePieceRecord(Piece(9, 300, 70000, 0)), StatusOf(&DecodePieceRecord)},
      {"extent", EncodeExtent(Extent::Frame(UINT32_MAX, UINT64_MAX, 0)), StatusOf(&DecodeExtent)},
      {"extent", EncodeExtent(Extent::Frame(200, 1, 128)), StatusOf(&DecodeExtent)},
  };
}


// ---- Varints --------------------------------------------------------------------------------

TEST(MetaCodecV3Test, VarintsRoundTripAtEveryWidth) {
  for (int bits = 0; bits <= 64; ++bits) {
    const uint64_t v = bits == 64 ? UINT64_MAX : (uint64_t(1) << bits) - 1;  // bits ones
    for (uint64_t x : {v, v + (bits < 64 ? 1 : 0)}) {
      std::string enc;
      PutVarint64(&enc, x);
      EXPECT_EQ(enc.size(), x == 0 ? 1u : size_t((64 - __builtin_clzll(x) + 6) / 7)) << x;
      uint64_t got = 0;
      VarintError err = VarintError::kOverflow;
      EXPECT_EQ(DecodeVarint64(enc, &got, &err), enc.size()) << x;
      EXPECT_EQ(err, VarintError::kNone);
      EXPECT_EQ(got, x);
    }
  }
}

TEST(MetaCodecV3Test, MalformedVarintsAreRejected) {
  struct Case {
    std::string in;
    VarintError want;
  };
  const Case cases[] = {
      {"", VarintError::kTruncated},
      {"\x80", VarintError::kTruncated},
      {"\xff\xff", VarintError::kTruncated},
      {std::string("\x80\x00", 2), VarintError::kOverlong},       // 0 in two bytes
      {std::string("\x81\x80\x00", 3), VarintError::kOverlong},   // 1 in three bytes
      {std::string(9, '\xff') + "\x02", VarintError::kOverflow},  // bit 64 set
      {std::string(9, '\xff') + "\x81", VarintError::kOverflow},  // an 11th byte would follow
      {std::string(9, '\x80') + std::string(1, '\0'), VarintError::kOverlong},
  };
  for (const Case& c : cases) {
    uint64_t v = 0;
    VarintError err = VarintError::kNone;
    EXPECT_EQ(DecodeVarint64(c.in, &v, &err), 0u) << testing::PrintToString(c.in);
    EXPECT_EQ(err, c.want) << testing::PrintToString(c.in);
  }
  // The longest valid one: bit 63 in the 10th byte.
  uint64_t v = 0;
  VarintError err = VarintError::kOverflow;
  EXPECT_EQ(DecodeVarint64(std::string(9, '\x80') + "\x01", &v, &err), 10u);
  EXPECT_EQ(v, uint64_t(1) << 63);
}

// ---- Round trips ----------------------------------------------------------------------------

TEST(MetaCodecV3Test, FrameRecordRoundTrips) {
  FrameRecord empty_raw;  // a raw 0-byte frame: stored == raw == 0, no dictionary
  FrameRecord with_dict = MaxFrame();
  with_dict.dictionary_id = 1;
  with_dict.refcount = 0;
  for (const FrameRecord& f : {MaxFrame(), RawFrame(), empty_raw, with_dict}) {
    Result<FrameRecord> r = DecodeFrameRecord(EncodeFrameRecord(f));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, f);
  }
  // Varints keep a small frame's record small: 1 + 1 + 2 + 3 * 3 + 1 + 1 + 4 + 1.
  FrameRecord small = RawFrame();
  small.offset = 4096;
  EXPECT_EQ(EncodeFrameRecord(small).size(), 20u);
}

TEST(MetaCodecV3Test, PieceRecordRoundTrips) {
  for (const PieceRecord& p :
       {GlobalPiece(), ScopedPiece(), Piece(2, 0, UINT32_MAX), Piece(2, 7, 9, 0)}) {
    Result<PieceRecord> r = DecodePieceRecord(EncodePieceRecord(p));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, p);
  }
  // The scope is marked by the encoding version: 1 global, 2 with a uid.
  EXPECT_EQ(EncodePieceRecord(GlobalPiece())[0], '\x01');
  EXPECT_EQ(EncodePieceRecord(ScopedPiece())[0], '\x02');
}

TEST(MetaCodecV3Test, FrameExtentRoundTripsAndIsNeverAChunkExtent) {
  for (const Extent& e : {Extent::Frame(1, 1, 0), Extent::Frame(UINT32_MAX, UINT64_MAX, 0),
                          Extent::Frame(1, 1ull << 40, UINT32_MAX - 1)}) {
    Result<Extent> r = DecodeExtent(EncodeExtent(e));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, e);
    EXPECT_EQ(r->kind(), Extent::Kind::kFrame);
    EXPECT_EQ(r->chunk, ChunkHash{});
    EXPECT_EQ(r->chunk_offset, 0u);
    EXPECT_FALSE(r->unwritten);
  }
  EXPECT_EQ(EncodeExtent(Extent::Frame(1, 1, 0))[0], '\x03');
  ChunkHash h;
  h.bytes[0] = 1;
  EXPECT_EQ(Extent({.length = 1, .chunk = h}).kind(), Extent::Kind::kChunk);
  EXPECT_EQ(Extent::Unwritten(1).kind(), Extent::Kind::kUnwritten);
}

TEST(MetaCodecV3Test, FrameKeysRoundTripAndSortNumerically) {
  uint64_t id = 0;
  ASSERT_TRUE(DecodeFrameKey(FrameKey(UINT64_MAX), &id));
  EXPECT_EQ(id, UINT64_MAX);
  ASSERT_TRUE(DecodeFrameKey(FrameKey(0x1ff), &id));
  EXPECT_EQ(id, 0x1ffu);
  EXPECT_FALSE(DecodeFrameKey(std::string(7, 'x'), &id));
  EXPECT_FALSE(DecodeFrameKey(std::string(9, 'x'), &id));
  EXPECT_LT(FrameKey(255), FrameKey(256));
  EXPECT_LT(FrameKey(1), FrameKey(UINT64_MAX));
}

// ---- Malformed values -----------------------------------------------------------------------

TEST(MetaCodecV3Test, EveryTruncationIsRejected) { ExpectEveryTruncationRejected(Samples()); }

TEST(MetaCodecV3Test, TrailingBytesAreRejected) { ExpectTrailingBytesRejected(Samples()); }

TEST(MetaCodecV3Test, UnknownEncodingVersionIsRejected) {
  ExpectUnknownVersionsRejected(Samples());
  for (const CodecSample& s : Samples()) {
    std::string bad = s.encoded;
    bad[0] = char(4);
    ExpectMalformed(s.decode(bad), s.kind, "unknown encoding version");
  }
  std::string frame = EncodeFrameRecord(RawFrame());
  frame[0] = 2;
  ExpectMalformed(DecodeFrameRecord(frame).status(), "frame", "unknown encoding version 2");
}

// Each varint field of each record, re-encoded one byte longer than needed, is rejected, and so
// is a value above the field's range.
TEST(MetaCodecV3Test, OverlongAndOutOfRangeVarintsAreRejected) {
  // Builds a record from its fields; varints are written overlong at index `overlong` and as
  // `big` at index `wide` (-1: neither).
  struct Field {
    bool varint;
    uint64_t value;
    size_t fixed_bytes;  // for a fixed little-endian field
    std::string name;
  };
  auto build = [](uint8_t version, const std::vector<Field>& fields, int overlong, int wide,
                  uint64_t big) {
    std::string v(1, char(version));
    for (int i = 0; i < int(fields.size()); ++i) {
      const Field& f = fields[size_t(i)];
      if (!f.varint) {
        for (size_t b = 0; b < f.fixed_bytes; ++b) v.push_back(char(f.value >> (8 * b)));
      } else if (i == overlong) {
        std::string enc;
        PutVarint64(&enc, f.value);
        enc.back() = char(uint8_t(enc.back()) | 0x80);
        enc.push_back('\0');
        v += enc;
      } else {
        PutVarint64(&v, i == wide ? big : f.value);
      }
    }
    return v;
  };
  struct Record {
    std::string kind;
    uint8_t version;
    std::vector<Field> fields;
    std::function<Status(std::string_view)> decode;
  };
  const std::vector<Record> records = {
      {"frame",
       1,
       {{true, 3, 0, "pack id"},
        {true, 4096, 0, "offset"},
        {true, 140, 0, "record length"},
        {true, 300, 0, "raw length"},
        {true, 100, 0, "stored length"},
        {false, 1, 1, "codec"},
        {true, 5, 0, "dictionary id"},
        {false, 0xabcd, 4, "stored CRC"},
        {true, 2, 0, "reference count"}},
       StatusOf(&DecodeFrameRecord)},
      {"piece",
       2,
       {{false, 7, 8, "frame id"},
        {true, 10, 0, "offset"},
        {true, 20, 0, "length"},
        {true, 1000, 0, "scope uid"}},
       StatusOf(&DecodePieceRecord)},
      {"extent",
       3,
       {{true, 20, 0, "length"}, {false, 7, 8, "frame id"}, {true, 10, 0, "frame offset"}},
       StatusOf(&DecodeExtent)},
  };
  for (const Record& rec : records) {
    ASSERT_TRUE(rec.decode(build(rec.version, rec.fields, -1, -1, 0)).ok()) << rec.kind;
    for (int i = 0; i < int(rec.fields.size()); ++i) {
      const Field& f = rec.fields[size_t(i)];
      if (!f.varint) continue;
      ExpectMalformed(rec.decode(build(rec.version, rec.fields, i, -1, 0)), rec.kind,
                "overlong varint in " + f.name);
      // 32-bit fields refuse 2^32; 64-bit ones (and the extent's length, bounded by its
      // slice) are checked by the 11-byte case below and the slice rules.
      const bool is64 = f.name == "offset" && rec.kind == "frame";
      const bool unbounded =
          is64 || f.name == "reference count" || (rec.kind == "extent" && f.name == "length");
      if (!unbounded) {
        ExpectMalformed(rec.decode(build(rec.version, rec.fields, -1, i, uint64_t(UINT32_MAX) + 1)),
                  rec.kind, f.name + " 4294967296 out of range");
      }
    }
  }
  // A varint longer than 64 bits in the first field of each record.
  const std::string too_wide = std::string(10, '\xff') + "\x01";
  ExpectMalformed(DecodeFrameRecord("\x01" + too_wide).status(), "frame", "exceeds 64 bits");
  ExpectMalformed(DecodeExtent("\x03" + too_wide).status(), "extent", "exceeds 64 bits");
}

TEST(MetaCodecV3Test, InvalidFieldsAreRejected) {
  FrameRecord f = MaxFrame();
  f.record_length = 100;
  f.stored_length = 101;
  ExpectMalformed(DecodeFrameRecord(EncodeFrameRecord(f)).status(), "frame", "stored length");
  f = RawFrame();
  f.stored_length -= 1;
  ExpectMalformed(DecodeFrameRecord(EncodeFrameRecord(f)).status(), "frame", "raw frame");
  f = RawFrame();
  f.dictionary_id = 3;
  ExpectMalformed(DecodeFrameRecord(EncodeFrameRecord(f)).status(), "frame", "dictionary 3");
  f = RawFrame();
  f.codec = Codec(2);
  ExpectMalformed(DecodeFrameRecord(EncodeFrameRecord(f)).status(), "frame", "unknown codec 2");

  ExpectMalformed(DecodePieceRecord(EncodePieceRecord(Piece(0, 0, 1))).status(), "piece", "frame id 0");
  ExpectMalformed(DecodePieceRecord(EncodePieceRecord(Piece(1, 0, 0))).status(), "piece", "zero length");
  ExpectMalformed(DecodePieceRecord(EncodePieceRecord(Piece(1, UINT32_MAX, 1))).status(), "piece",
            "exceeds");

  ExpectMalformed(DecodeExtent(EncodeExtent(Extent::Frame(1, 0, 0))).status(), "extent", "frame id 0");
  ExpectMalformed(DecodeExtent(EncodeExtent(Extent::Frame(0, 1, 0))).status(), "extent", "zero length");
  ExpectMalformed(DecodeExtent(EncodeExtent(Extent::Frame(2, 1, UINT32_MAX - 1))).status(), "extent",
            "exceeds");
  ExpectMalformed(DecodeExtent(EncodeExtent(Extent::Frame(uint64_t(UINT32_MAX) + 1, 1, 0))).status(),
            "extent", "exceeds");
}

// Arbitrary and mutated bytes never crash a decoder (ASan checks the reads), and a value that
// decodes is canonical: it re-encodes to exactly the same bytes.
TEST(MetaCodecV3Test, RandomAndMutatedInputsAreSafeAndCanonical) {
  std::mt19937_64 rng(26);
  const std::vector<CodecSample> samples = Samples();
  int decoded = 0;
  for (int i = 0; i < 50000; ++i) {
    std::string in;
    if (i % 2 == 0) {
      in.resize(rng() % 40);
      for (char& c : in) c = char(rng());
      if (!in.empty()) in[0] = char(1 + rng() % 3);  // a known version, mostly
    } else {
      in = samples[rng() % samples.size()].encoded;
      for (int flips = 1 + int(rng() % 3); flips > 0; --flips) in[rng() % in.size()] = char(rng());
      if (rng() % 4 == 0) in.resize(rng() % (in.size() + 1));
    }
    std::vector<char> exact(in.begin(), in.end());  // ASan sees a read one past the end
    const std::string_view v(exact.data(), exact.size());
    if (auto r = DecodeFrameRecord(v); r.ok()) {
      ++decoded;
      EXPECT_EQ(EncodeFrameRecord(*r), v);
    }
    if (auto r = DecodePieceRecord(v); r.ok()) {
      ++decoded;
      EXPECT_EQ(EncodePieceRecord(*r), v);
    }
    if (auto r = DecodeExtent(v); r.ok()) {
      ++decoded;
      EXPECT_EQ(EncodeExtent(*r), v);
    }
  }
  EXPECT_GT(decoded, 100);  // the inputs reach past the version and length checks
}

}  // namespace
}  // namespace rankfs
