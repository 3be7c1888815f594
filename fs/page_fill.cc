#include "fs/page_fill.h"

#include <exception>
#include <memory>
#include <string>

#include "store/logging.h"

namespace rankfs {
namespace {

constexpr uint64_t kPage = 4096;
constexpr size_t kMaxQueued = 64;

void LogNoThrow(const char* what, const char* detail) noexcept {
  try {
    Log(LogLevel::kWarning, "fill", std::string(what) + detail);
  } catch (...) {
  }
}

}  // namespace

PageFiller::PageFiller(FsCore* core, fuse_session* se, std::chrono::microseconds test_delay)
    : core_(core), se_(se), test_delay_(test_delay), thread_([this] { Run(); }) {}

void PageFiller::Shutdown(std::chrono::milliseconds patience,
                          const std::function<void()>& abort_connection) {
  if (!thread_.joinable()) return;
  std::unique_lock<std::mutex> l(mu_);
  stop_ = true;
  cv_.notify_all();
  const bool stopped = cv_.wait_for(l, patience, [&] { return exited_; });
  l.unlock();
  if (!stopped && abort_connection) {
    Log(LogLevel::kWarning, "fill", "a page-cache fill is stuck at shutdown; aborting the mount");
    abort_connection();
  }
  thread_.join();
}

PageFiller::~PageFiller() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool PageFiller::BlockedLocked(Ino ino) const {
  auto it = gates_.find(ino);
  return it != gates_.end() && (it->second.writers > 0 || it->second.holds > 0);
}

void PageFiller::ReleaseHoldLocked(Ino ino) {
  auto it = gates_.find(ino);
  if (it == gates_.end()) return;
  if (it->second.holds > 0) --it->second.holds;
  if (it->second.holds == 0 && it->second.writers == 0) gates_.erase(it);
}

void PageFiller::Offer(Ino ino, uint64_t start, uint64_t end) noexcept {
  // Whole pages only: a partial page is left to the next READ.
  start = (start + kPage - 1) / kPage * kPage;
  end = end / kPage * kPage;
  if (end > start + kMaxFillBytes) end = start + kMaxFillBytes;
  if (end <= start) return;
  try {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_ || BlockedLocked(ino) || queue_.size() >= kMaxQueued) return;
    for (const Range& q : queue_) {
      if (q.ino == ino && q.start == start) return;  // neighbouring faults in one chunk
    }
    queue_.push_back({ino, start, end});
  } catch (...) {
    return;  // no memory for the queue entry: the fill only saved later reads
  }
  cv_.notify_one();
}

void PageFiller::Exclusive(Ino ino, bool writer, std::function<void()> op) {
  {
    std::lock_guard<std::mutex> l(mu_);
    // What can throw comes before the first change, so that a throw leaves no hold behind.
    const bool defer = filling_ == ino;  // the filler runs `op` when the fill is done
    if (defer && deferred_.size() == deferred_.capacity()) {
      deferred_.reserve(2 * deferred_.size() + 4);
    }
    Gate& g = gates_[ino];
    if (writer) ++g.writers;
    ++g.holds;
    if (defer) {
      deferred_.emplace_back(ino, std::move(op));  // cannot throw: room was made above
      return;
    }
  }
  op();
  std::lock_guard<std::mutex> l(mu_);
  ReleaseHoldLocked(ino);
}

void PageFiller::AddWriter(Ino ino) {
  std::lock_guard<std::mutex> l(mu_);
  ++gates_[ino].writers;
}

void PageFiller::DropWriter(Ino ino) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = gates_.find(ino);
  if (it == gates_.end() || it->second.writers == 0) return;
  --it->second.writers;
  if (it->second.holds == 0 && it->second.writers == 0) gates_.erase(it);
}

void PageFiller::Run() {
  for (;;) {
    Range r;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (stop_) {  // queued fills are only an optimization; deferred ops ran already
        exited_ = true;
        cv_.notify_all();
        return;
      }
      r = queue_.front();
      queue_.pop_front();
      if (BlockedLocked(r.ino)) continue;
      filling_ = r.ino;
    }
    core_->CountPageFillStarted();
    uint64_t stored = 0;
    try {
      stored = Fill(r);
    } catch (const std::exception& e) {  // a fill only saves later reads; the ops below must run
      LogNoThrow("a page-cache fill failed: ", e.what());
    } catch (...) {
      LogNoThrow("a page-cache fill failed", "");
    }
    core_->CountPageFillDone(stored);
    std::vector<std::pair<Ino, std::function<void()>>> ops;
    {
      std::lock_guard<std::mutex> l(mu_);
      filling_ = 0;
      ops.swap(deferred_);
    }
    for (auto& [ino, op] : ops) {
      op();  // a FUSE callback body: it catches what it throws (fuse_ops_internal.h Guarded)
      std::lock_guard<std::mutex> l(mu_);
      ReleaseHoldLocked(ino);
    }
  }
}

uint64_t PageFiller::Fill(const Range& r) {
  // The bytes are read now, not when offered: with no writer there is nothing newer than
  // the daemon's view, and Read clips them to its size.
  static thread_local std::unique_ptr<char[]> buf =
      std::make_unique_for_overwrite<char[]>(kMaxFillBytes);
  Result<size_t> n = core_->Read(r.ino, r.start, size_t(r.end - r.start), buf.get());
  if (!n.ok() || *n == 0) return 0;  // removed meanwhile, or a damaged chunk: READ will tell
  if (test_delay_.count() > 0) std::this_thread::sleep_for(test_delay_);
  fuse_bufvec bv = FUSE_BUFVEC_INIT(*n);
  bv.buf[0].mem = buf.get();
  const int rc =
      fuse_lowlevel_notify_store(se_, r.ino, off_t(r.start), &bv, fuse_buf_copy_flags(0));
  // ENOENT: the kernel forgot the inode meanwhile; nothing to fill.
  if (rc == 0) return *n;
  if (rc != -ENOENT) {
    Log(LogLevel::kDebug, "fill",
        "notify_store of inode " + std::to_string(r.ino) + " failed: " + std::to_string(-rc));
  }
  return 0;
}

}  // namespace rankfs
