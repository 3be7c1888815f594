// The two CRC32C implementations behind Crc32c(), exposed so tests can check that they agree
// and benchmarks can time each. Everything else should call Crc32c() (store/crc32c.h), which
// picks the fastest one the CPU supports.
//
// Both have Crc32c()'s contract: `crc` is the CRC32C of earlier bytes (0 for none) and the
// result is the CRC32C of those bytes followed by data[0, n). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rankfs {
namespace crc32c_internal {

// Slicing-by-8 table implementation; runs on any CPU.
uint32_t ExtendPortable(uint32_t crc, const uint8_t* data, size_t n);

// SSE4.2 `crc32` instruction implementation.
// REQUIRES: HardwareAvailable() (otherwise the process dies with SIGILL).
uint32_t ExtendHardware(uint32_t crc, const uint8_t* data, size_t n);

// True when the CPU has SSE4.2. Computed once.
bool HardwareAvailable();

}  // namespace crc32c_internal
}  // namespace rankfs
