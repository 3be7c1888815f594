// CpuStream: the CPU backend's stream, a FIFO worker thread standing in for a device's copy
// queue. Each task waits a random 0..max_delay_us before it runs, so that a ring slot reused
// before its copy completed shows up as wrong bytes in the tests.
//
// Thread-safety: Enqueue and Synchronize may be called from any thread; tasks run on the
// worker in the order they were enqueued.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace rankfs::gpu {

class CpuStream {
 public:
  explicit CpuStream(uint32_t max_delay_us);
  ~CpuStream();  // runs what is queued, then stops
  CpuStream(const CpuStream&) = delete;
  CpuStream& operator=(const CpuStream&) = delete;

  void Enqueue(std::function<void()> task);
  // Returns once every task enqueued before the call has run.
  void Synchronize();

 private:
  void Run();

  const uint32_t max_delay_us_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  uint64_t enqueued_ = 0, completed_ = 0;
  bool stop_ = false;
  std::thread worker_;  // last: started once the rest exists
};

}  // namespace rankfs::gpu
