// WaitUntil: how a test waits for something another thread or process does (a counter in the
// stats file, a mount, a file). It polls a real condition; the limit is only a guard against
// a hang, set far above what the condition ever needs, so a slow machine makes the test
// slower, never wrong. Never sleep for a fixed time to let something happen.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace rankfs {

// Calls `done` until it returns true (then returns true) or `limit` has passed (then returns
// false; the caller fails the test, saying which condition never came). Polls every `step`.
inline bool WaitUntil(const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(60),
                      std::chrono::microseconds step = std::chrono::microseconds(200)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

}  // namespace rankfs
