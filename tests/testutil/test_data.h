// Deterministic test inputs for chunking, dedup and compression tests and benchmarks.
//
// MakeRealData imitates what rankfs stores: real bytes from files on this machine (ELF binaries
// and shared libraries, C headers, documentation, Python sources) mixed with token-id arrays
// like those of tokenized training sets. Synthetic patterns make chunkers and compressors look
// better or worse than they are, so tests of ratios should use this.
//
// Thread-safe. The first call walks /usr once (~0.1 s) and caches the file list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace rankfs {

// Returns n bytes built from real files and synthetic token ids. The same (n, seed) gives the
// same bytes on the same machine (the files under /usr are the input); different seeds give
// different file orders. Works on a bare Debian install (/usr/bin, /usr/include and
// /usr/share/doc always exist); unreadable files are skipped.
std::string MakeRealData(size_t n, uint64_t seed);

// Returns n incompressible pseudo-random bytes (splitmix64), deterministic on any machine.
std::string MakeRandomData(size_t n, uint64_t seed);

// Appends exactly n bytes of uint32 little-endian token ids drawn from a Zipf-like distribution
// over a 50k vocabulary (the last id is truncated when n is not a multiple of 4).
void AppendTokenIds(std::string* out, size_t n, uint64_t seed);

}  // namespace rankfs
