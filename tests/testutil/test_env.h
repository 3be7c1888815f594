// Knobs shared by the long-running tests: whether this is a sanitizer build (which runs them at
// a smaller scale) and numbers taken from the environment (RANKFS_*_ITERATIONS and friends).
#pragma once

#include <cstdint>
#include <cstdlib>

namespace rankfs {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// The decimal value of environment variable `name`, or `fallback` when it is unset or empty.
inline uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

}  // namespace rankfs
