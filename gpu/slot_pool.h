// SlotPool: which slots of the staging ring are free. A slot is taken before the daemon is
// asked to fill it and given back only once the copy out of it has completed, so the daemon
// never writes into a slot that a copy still reads.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

namespace rankfs::gpu {

class SlotPool {
 public:
  explicit SlotPool(uint32_t count) : in_use_(count, false) {
    for (uint32_t i = count; i-- > 0;) free_.push_back(i);
  }

  std::optional<uint32_t> TryAcquire() {
    std::lock_guard<std::mutex> lock(mu_);
    return TakeLocked();
  }
  uint32_t Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    return *TakeLocked();
  }
  // Returns false (and changes nothing) for a slot that is out of range or not in use: a
  // double release is a bug the caller must see.
  bool Release(uint32_t slot) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (slot >= in_use_.size() || !in_use_[slot]) return false;
      in_use_[slot] = false;
      free_.push_back(slot);
    }
    cv_.notify_all();
    return true;
  }
  size_t FreeCount() {
    std::lock_guard<std::mutex> lock(mu_);
    return free_.size();
  }
  // Waits until every slot is free.
  void WaitAllFree() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return free_.size() == in_use_.size(); });
  }

 private:
  std::optional<uint32_t> TakeLocked() {
    if (free_.empty()) return std::nullopt;
    const uint32_t s = free_.back();
    free_.pop_back();
    in_use_[s] = true;
    return s;
  }

  std::mutex mu_;  // guards free_ and in_use_
  std::condition_variable cv_;
  std::vector<uint32_t> free_;
  std::vector<bool> in_use_;
};

}  // namespace rankfs::gpu
