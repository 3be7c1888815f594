// CRC32C (Castagnoli), the checksum of stored chunk bytes and of record headers.
// Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise; both give the same
// values. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rankfs {

// Extends `crc` (the CRC32C of earlier bytes, 0 for none) over data[0, n).
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace rankfs
