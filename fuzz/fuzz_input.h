// Helpers for the fuzz target bodies: a checked-invariant macro and a reader that turns fuzzer
// bytes into field values for the structure-aware round trips. Internal to fuzz/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// Aborts with a message when a promise of the code under test is broken. libFuzzer reports the
// abort as a crash and saves the input; the replay test dies, which fails it.
#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                            \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace rankfs::fuzz {

// Consumes fuzzer bytes front to back; once they run out every read yields zeros, so a target
// always gets a complete value.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : in_(reinterpret_cast<const char*>(data), size) {}
  explicit Input(std::string_view in) : in_(in) {}

  uint8_t U8() { return uint8_t(Take(1)); }
  uint16_t U16() { return uint16_t(Take(2)); }
  uint32_t U32() { return uint32_t(Take(4)); }
  uint64_t U64() { return Take(8); }
  // Up to n bytes (fewer when the input runs out).
  std::string Bytes(size_t n) {
    n = n < in_.size() ? n : in_.size();
    std::string out(in_.substr(0, n));
    in_.remove_prefix(n);
    return out;
  }
  std::string_view Rest() {
    std::string_view r = in_;
    in_ = {};
    return r;
  }
  size_t remaining() const { return in_.size(); }

 private:
  uint64_t Take(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n && !in_.empty(); ++i) {
      v |= uint64_t(uint8_t(in_[0])) << (8 * i);
      in_.remove_prefix(1);
    }
    return v;
  }
  std::string_view in_;
};

template <size_t N>
void FillBytes(Input& in, std::array<uint8_t, N>* out) {
  std::string b = in.Bytes(N);
  for (size_t i = 0; i < N; ++i) (*out)[i] = i < b.size() ? uint8_t(b[i]) : 0;
}

}  // namespace rankfs::fuzz
