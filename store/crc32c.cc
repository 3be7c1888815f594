// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as in iSCSI, ext4 and LevelDB.
//
// The hardware path uses the SSE4.2 `crc32` instruction; the portable path is slicing-by-8 over
// tables built at compile time. Both keep the register inverted between calls the same way, so
// Crc32c(b, Crc32c(a)) == Crc32c(a + b) on either path and the two paths can be mixed.
//
// This file is built with -msse4.2, but only ExtendHardware() may use SSE4.2 instructions: it
// carries the target attribute itself and is only called after a run-time CPU check, while the
// portable code is plain integer code (its tables are constexpr, so no SSE code runs at
// static-init time either).
#include "store/crc32c.h"

#include <nmmintrin.h>

#include <array>
#include <cstring>

#include "store/crc32c_internal.h"

namespace rankfs {
namespace crc32c_internal {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

using Tables = std::array<std::array<uint32_t, 256>, 8>;

// tables[0] is the classic byte-at-a-time table; tables[k][b] is the CRC of byte b followed by
// k zero bytes, which lets the loop fold 8 input bytes with 8 independent lookups.
constexpr Tables MakeTables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; ++b) {
    for (int k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
  return t;
}

constexpr Tables kTables = MakeTables();

inline uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);  // x86-64 is little-endian, which is what the CRC wants
  return v;
}

}  // namespace

uint32_t ExtendPortable(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  for (; n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0; --n, ++p) {
    c = (c >> 8) ^ kTables[0][(c ^ *p) & 0xff];
  }
  for (; n >= 8; n -= 8, p += 8) {
    const uint64_t v = LoadLe64(p) ^ c;
    c = kTables[7][v & 0xff] ^ kTables[6][(v >> 8) & 0xff] ^ kTables[5][(v >> 16) & 0xff] ^
        kTables[4][(v >> 24) & 0xff] ^ kTables[3][(v >> 32) & 0xff] ^ kTables[2][(v >> 40) & 0xff] ^
        kTables[1][(v >> 48) & 0xff] ^ kTables[0][v >> 56];
  }
  for (; n > 0; --n, ++p) c = (c >> 8) ^ kTables[0][(c ^ *p) & 0xff];
  return ~c;
}

__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc, const uint8_t* p,
                                                          size_t n) {
  uint64_t c = ~crc;
  for (; n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0; --n, ++p) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p);
  }
  // One dependency chain: the instruction's 3-cycle latency bounds this at ~8 bytes per 3
  // cycles (~8 GB/s), far above what SHA-256 and zstd need from it on the chunk path.
  for (; n >= 32; n -= 32, p += 32) {
    c = _mm_crc32_u64(c, LoadLe64(p));
    c = _mm_crc32_u64(c, LoadLe64(p + 8));
    c = _mm_crc32_u64(c, LoadLe64(p + 16));
    c = _mm_crc32_u64(c, LoadLe64(p + 24));
  }
  for (; n >= 8; n -= 8, p += 8) c = _mm_crc32_u64(c, LoadLe64(p));
  for (; n > 0; --n, ++p) c = _mm_crc32_u8(static_cast<uint32_t>(c), *p);
  return ~static_cast<uint32_t>(c);
}

bool HardwareAvailable() {
  static const bool available = [] {
    __builtin_cpu_init();  // needed if we run before the libgcc constructor (static init)
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return available;
}

}  // namespace crc32c_internal

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  return crc32c_internal::HardwareAvailable() ? crc32c_internal::ExtendHardware(crc, p, n)
                                              : crc32c_internal::ExtendPortable(crc, p, n);
}

}  // namespace rankfs
