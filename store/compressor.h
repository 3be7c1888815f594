// zstd compression of single chunks. Each thread keeps its own compression and decompression
// context (created on first use, freed at thread exit), so calls never contend.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "store/status.h"

namespace rankfs {

// Compresses `in` at zstd `level` into *out (replacing its contents). Returns false in *shrunk
// when the frame is not smaller than the input: the caller then stores the raw bytes.
Status CompressChunk(std::string_view in, int level, std::string* out, bool* shrunk);

// The most bytes a frame of `raw_length` input can take (zstd's bound).
size_t CompressBound(size_t raw_length);

// Compresses `in` at zstd `level` into out[0, capacity) and returns the frame's length; the
// caller owns the buffer (a reused one spares a fresh allocation and its page faults per chunk).
// REQUIRES: capacity >= CompressBound(in.size()).
Result<size_t> CompressChunkInto(std::string_view in, int level, char* out, size_t capacity);

// Decompresses one zstd frame whose content is exactly `raw_length` bytes into out[0, raw_length).
// EIO when the frame is invalid or its size differs.
Status DecompressChunk(std::string_view frame, size_t raw_length, char* out);

}  // namespace rankfs
