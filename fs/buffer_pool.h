// BufferPool: a few large byte strings kept for reuse, so that a buffer freed by one write and
// needed by the next does not come back from the kernel as fresh (zeroed) pages. The daemon
// trims its heap while batches flow (fs/flush_pipeline.h), which gives freed buffers' pages
// back; a pooled buffer is never freed, so its pages stay.
//
// The pool holds at most `max_bytes` of capacity, and only buffers of at least `min_bytes`
// (smaller ones cost few faults and are cheap to allocate). What it holds stays resident:
// that is its price in RSS.
//
// Thread-safety: Take and Give may be called from any thread; mu_ is a leaf.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace rankfs {

class BufferPool {
 public:
  BufferPool(size_t max_bytes, size_t min_bytes) : max_bytes_(max_bytes), min_bytes_(min_bytes) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A string holding a copy of `data`: a pooled buffer when one is large enough.
  std::string Copy(std::string_view data) {
    std::string s;
    if (data.size() >= min_bytes_) {
      std::lock_guard<std::mutex> l(mu_);
      for (size_t i = free_.size(); i-- > 0;) {
        if (free_[i].capacity() < data.size()) continue;
        s = std::move(free_[i]);
        free_[i] = std::move(free_.back());
        free_.pop_back();
        held_ -= s.capacity();
        break;
      }
    }
    s.assign(data);
    return s;
  }

  // Hands a buffer back; it is kept if it is large enough and the pool has room, else freed.
  void Give(std::string&& s) {
    const size_t cap = s.capacity();
    if (cap < min_bytes_) return;
    std::lock_guard<std::mutex> l(mu_);
    if (held_ + cap > max_bytes_) return;
    s.clear();
    held_ += cap;
    free_.push_back(std::move(s));
  }

  // Capacity held for reuse (for tests and stats).
  size_t held_bytes() {
    std::lock_guard<std::mutex> l(mu_);
    return held_;
  }

 private:
  const size_t max_bytes_, min_bytes_;
  std::mutex mu_;
  std::vector<std::string> free_;  // guarded by mu_
  size_t held_ = 0;                // capacity of free_; guarded by mu_
};

}  // namespace rankfs
