// ChunkHash (SHA-256) and CRC32C: known vectors, incremental use, and agreement between the
// SSE4.2 and table implementations of CRC32C.
#include <gtest/gtest.h>

#include <string>

#include "store/crc32c.h"
#include "store/crc32c_internal.h"
#include "store/types.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

TEST(ChunkHashTest, Sha256KnownVectors) {
  EXPECT_EQ(ChunkHash::Of("").ToHex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ChunkHash::Of("abc").ToHex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ChunkHash::Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").ToHex(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(ChunkHash::Of(std::string(1000000, 'a')).ToHex(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(ChunkHashTest, ToHexIsLowercaseAndOrdered) {
  ChunkHash h;
  for (size_t i = 0; i < h.bytes.size(); ++i) h.bytes[i] = static_cast<uint8_t>(i * 8 + 7);
  EXPECT_EQ(h.ToHex(), "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
  EXPECT_EQ(ChunkHash{}.ToHex(), std::string(64, '0'));
}

TEST(ChunkHashTest, DistinctInputsDistinctHashes) {
  const std::string a = MakeRandomData(4096, 1);
  std::string b = a;
  b[4095] ^= 1;
  EXPECT_NE(ChunkHash::Of(a), ChunkHash::Of(b));
  EXPECT_EQ(ChunkHash::Of(a), ChunkHash::Of(std::string(a)));
  EXPECT_NE(ChunkHashHasher()(ChunkHash::Of(a)), ChunkHashHasher()(ChunkHash::Of(b)));
}

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  // RFC 3720 (iSCSI), appendix B.4.
  std::string buf(32, '\0');
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x8A9136AAu);
  buf.assign(32, '\xff');
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<char>(i);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<char>(31 - i);
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), 0x113FDB5Cu);
}

TEST(Crc32cTest, PortablePathKnownVector) {
  const auto* p = reinterpret_cast<const uint8_t*>("123456789");
  EXPECT_EQ(crc32c_internal::ExtendPortable(0, p, 9), 0xE3069283u);
  if (crc32c_internal::HardwareAvailable()) {
    EXPECT_EQ(crc32c_internal::ExtendHardware(0, p, 9), 0xE3069283u);
  }
}

TEST(Crc32cTest, IncrementalEqualsOneShot) {
  const std::string data = MakeRandomData(10000, 2);
  const uint32_t whole = Crc32c(data.data(), data.size());
  for (size_t split : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{4095},
                       size_t{5000}, data.size()}) {
    const uint32_t first = Crc32c(data.data(), split);
    EXPECT_EQ(Crc32c(data.data() + split, data.size() - split, first), whole) << split;
    // The portable path continues a hardware CRC and vice versa.
    const auto* p = reinterpret_cast<const uint8_t*>(data.data());
    EXPECT_EQ(crc32c_internal::ExtendPortable(first, p + split, data.size() - split), whole);
  }
  EXPECT_EQ(Crc32c(data.data(), 0, whole), whole);
}

TEST(Crc32cTest, HardwareMatchesPortable) {
  if (!crc32c_internal::HardwareAvailable()) GTEST_SKIP() << "CPU without SSE4.2";
  const std::string data = MakeRandomData(70000, 3);
  const auto* base = reinterpret_cast<const uint8_t*>(data.data());
  for (size_t align = 0; align < 8; ++align) {
    for (size_t len = 0; len <= 300; ++len) {
      for (uint32_t seed : {0u, 0xdeadbeefu}) {
        ASSERT_EQ(crc32c_internal::ExtendHardware(seed, base + align, len),
                  crc32c_internal::ExtendPortable(seed, base + align, len))
            << "align=" << align << " len=" << len;
      }
    }
    for (size_t len : {size_t{4095}, size_t{4096}, size_t{65536}, size_t{69990}}) {
      ASSERT_EQ(crc32c_internal::ExtendHardware(7, base + align, len),
                crc32c_internal::ExtendPortable(7, base + align, len))
          << "align=" << align << " len=" << len;
    }
  }
}

}  // namespace
}  // namespace rankfs
