// Fixed-width integer encoding. Keys use big-endian so that RocksDB's bytewise order equals
// numeric order; values use little-endian. Decoders never read past the input they are given.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rankfs {

inline void PutFixed32BE(std::string* dst, uint32_t v) {
  char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  dst->append(b, 4);
}
inline void PutFixed64BE(std::string* dst, uint64_t v) {
  PutFixed32BE(dst, uint32_t(v >> 32));
  PutFixed32BE(dst, uint32_t(v));
}
inline uint32_t DecodeFixed32BE(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t(u[0]) << 24) | (uint32_t(u[1]) << 16) | (uint32_t(u[2]) << 8) | uint32_t(u[3]);
}
inline uint64_t DecodeFixed64BE(const char* p) {
  return (uint64_t(DecodeFixed32BE(p)) << 32) | DecodeFixed32BE(p + 4);
}

inline void EncodeFixed16LE(char* p, uint16_t v) { p[0] = char(v); p[1] = char(v >> 8); }
inline void EncodeFixed32LE(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = char(v >> (8 * i));
}
inline void EncodeFixed64LE(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = char(v >> (8 * i));
}
inline uint16_t DecodeFixed16LE(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint16_t(u[0] | (u[1] << 8));
}
inline uint32_t DecodeFixed32LE(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t(u[0]) | (uint32_t(u[1]) << 8) | (uint32_t(u[2]) << 16) | (uint32_t(u[3]) << 24);
}
inline uint64_t DecodeFixed64LE(const char* p) {
  return uint64_t(DecodeFixed32LE(p)) | (uint64_t(DecodeFixed32LE(p + 4)) << 32);
}

inline void PutFixed16LE(std::string* dst, uint16_t v) {
  char b[2];
  EncodeFixed16LE(b, v);
  dst->append(b, 2);
}
inline void PutFixed32LE(std::string* dst, uint32_t v) {
  char b[4];
  EncodeFixed32LE(b, v);
  dst->append(b, 4);
}
inline void PutFixed64LE(std::string* dst, uint64_t v) {
  char b[8];
  EncodeFixed64LE(b, v);
  dst->append(b, 8);
}

// LEB128 varints (7 bits a byte, low group first, high bit = more follows): at most 10 bytes
// for a u64. PutVarint64 writes the shortest encoding.
inline void PutVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  dst->push_back(char(v));
}

enum class VarintError : uint8_t { kNone, kTruncated, kOverlong, kOverflow };

// Decodes one varint from the front of `in` into *v and returns the bytes it took, or 0 and the
// reason in *err: the input ends inside it (kTruncated), it is not the shortest encoding of its
// value (kOverlong: a last byte of zero after the first), or its value exceeds 64 bits
// (kOverflow). Reads only bytes of `in`.
inline size_t DecodeVarint64(std::string_view in, uint64_t* v, VarintError* err) {
  uint64_t result = 0;
  for (size_t i = 0; i < 10; ++i) {
    if (i >= in.size()) {
      *err = VarintError::kTruncated;
      return 0;
    }
    const uint8_t b = uint8_t(in[i]);
    if (i == 9 && b > 1) {  // the 10th byte holds bit 63 only
      *err = VarintError::kOverflow;
      return 0;
    }
    result |= uint64_t(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      if (b == 0 && i > 0) {
        *err = VarintError::kOverlong;
        return 0;
      }
      *v = result;
      *err = VarintError::kNone;
      return i + 1;
    }
  }
  *err = VarintError::kOverflow;  // an 11th byte would follow
  return 0;
}

// Sequential little-endian reader over a byte string; every Get fails (returns false) instead
// of reading past the end, which makes decoders of untrusted bytes safe.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool GetU8(uint8_t* v) {
    if (in_.size() < 1) return false;
    *v = uint8_t(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool GetU16(uint16_t* v) { return Get(v, 2, &DecodeFixed16LE); }
  bool GetU32(uint32_t* v) { return Get(v, 4, &DecodeFixed32LE); }
  bool GetU64(uint64_t* v) { return Get(v, 8, &DecodeFixed64LE); }
  bool GetI64(int64_t* v) {
    uint64_t u;
    if (!GetU64(&u)) return false;
    *v = int64_t(u);
    return true;
  }
  bool GetBytes(size_t n, std::string_view* v) {
    if (in_.size() < n) return false;
    *v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  size_t remaining() const { return in_.size(); }
  std::string_view rest() const { return in_; }

 private:
  template <typename T, typename F>
  bool Get(T* v, size_t n, F decode) {
    if (in_.size() < n) return false;
    *v = T(decode(in_.data()));
    in_.remove_prefix(n);
    return true;
  }
  std::string_view in_;
};

}  // namespace rankfs
