// Tests of store format 3's frame record header in packs (store/pack_format.h, magic RKFR):
// round trips at edge values, and rejection of every truncation, every flipped bit, and each
// field out of range.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/coding.h"
#include "store/crc32c.h"
#include "store/pack_format.h"

namespace rankfs {
namespace {

FrameHeader ZstdFrame() {
  return {.codec = Codec::kZstd,
          .frame_id = UINT64_MAX,
          .dictionary_id = UINT32_MAX,
          .raw_length = kMaxChunkBytes,
          .stored_length = kMaxChunkBytes,
          .stored_crc = 0xdeadbeef};
}

FrameHeader RawFrame() {
  return {.codec = Codec::kRaw,
          .frame_id = 1,
          .dictionary_id = 0,
          .raw_length = 32768,
          .stored_length = 32768,
          .stored_crc = 7};
}

std::string Encode(const FrameHeader& h) {
  std::string out;
  EncodeFrameHeader(h, &out);
  return out;
}

// Rewrites the header CRC, so that a test reaches the field checks behind it.
std::string Resealed(std::string h) {
  EncodeFixed32LE(h.data() + 32, Crc32c(h.data(), 32));
  return h;
}

void ExpectBad(const Result<FrameHeader>& r, std::string_view what) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EUCLEAN) << r.status().ToString();
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().ToString();
}

TEST(PackFrameTest, HeaderRoundTrips) {
  FrameHeader empty_raw = RawFrame();
  empty_raw.raw_length = empty_raw.stored_length = 0;
  for (const FrameHeader& h : {ZstdFrame(), RawFrame(), empty_raw}) {
    std::string enc = Encode(h);
    ASSERT_EQ(enc.size(), kFrameHeaderSize);
    EXPECT_EQ(enc.substr(0, 4), "RKFR");
    Result<FrameHeader> r = DecodeFrameHeader(enc);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, h);
  }
}

TEST(PackFrameTest, EveryTruncationAndEveryFlippedBitIsRejected) {
  for (const FrameHeader& h : {ZstdFrame(), RawFrame()}) {
    const std::string enc = Encode(h);
    for (size_t len = 0; len < enc.size(); ++len) {
      ExpectBad(DecodeFrameHeader(enc.substr(0, len)), "frame record");
    }
    for (size_t bit = 0; bit < enc.size() * 8; ++bit) {
      std::string bad = enc;
      bad[bit / 8] = char(bad[bit / 8] ^ (1 << (bit % 8)));
      ExpectBad(DecodeFrameHeader(bad), "frame record");
    }
  }
}

TEST(PackFrameTest, ChunkRecordsAreNotFrames) {
  std::string chunk;
  EncodeRecordHeader(
      {.codec = Codec::kRaw, .hash = {}, .raw_length = 1, .stored_length = 1, .stored_crc = 0},
      &chunk);
  ExpectBad(DecodeFrameHeader(chunk), "bad magic");
  EXPECT_FALSE(DecodeRecordHeader(Encode(RawFrame()) + std::string(20, '\0')).ok());
}

TEST(PackFrameTest, InvalidFieldsAreRejected) {
  struct Case {
    std::string name;
    size_t at;          // byte to overwrite (the header CRC is then resealed)
    std::string bytes;  // what to write there
    std::string error;
  };
  const std::vector<Case> cases = {
      {"version", 4, std::string(1, '\x02'), "unknown version"},
      {"codec", 5, std::string(1, '\x02'), "unknown codec"},
      {"reserved", 6, std::string(1, '\x01'), "reserved"},
      {"frame id", 8, std::string(8, '\0'), "frame id 0"},
      {"raw length", 20, std::string("\x01\x00\x00\x04", 4), "length out of range"},
      {"stored length", 24, std::string("\x01\x00\x00\x04", 4), "length out of range"},
      {"raw lengths differ", 24, std::string("\x01\x80\x00\x00", 4), "differing lengths"},
      {"raw with dictionary", 16, std::string("\x01\x00\x00\x00", 4), "names a dictionary"},
  };
  const std::string base = Encode(RawFrame());
  ASSERT_TRUE(DecodeFrameHeader(Resealed(base)).ok());
  for (const Case& c : cases) {
    std::string bad = base;
    bad.replace(c.at, c.bytes.size(), c.bytes);
    SCOPED_TRACE(c.name);
    ExpectBad(DecodeFrameHeader(Resealed(bad)), c.error);
  }
}

}  // namespace
}  // namespace rankfs
