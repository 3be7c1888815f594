#include "gpu/cpu_stream.h"

#include <chrono>
#include <random>

namespace rankfs::gpu {

CpuStream::CpuStream(uint32_t max_delay_us)
    : max_delay_us_(max_delay_us), worker_([this] { Run(); }) {}

CpuStream::~CpuStream() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void CpuStream::Enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
    ++enqueued_;
  }
  cv_.notify_all();
}

void CpuStream::Synchronize() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = enqueued_;
  cv_.wait(lock, [&] { return completed_ >= target; });
}

void CpuStream::Run() {
  std::minstd_rand rng(std::random_device{}());
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_, and nothing left
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    if (max_delay_us_ > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % (max_delay_us_ + 1)));
    }
    task();
    lock.lock();
    ++completed_;
    cv_.notify_all();
  }
}

}  // namespace rankfs::gpu
