// FsCore's closing of files: FLUSH and RELEASE hand a file's buffered bytes on, except that a
// small file closed with all its bytes still in its stream's buffer keeps them for a while
// (FsOptions::lazy_close_ms), and the lazy thread stores those whose time is up.
#include <algorithm>

#include "fs/fs_core.h"
#include "fs/fs_core_impl.h"
#include "store/logging.h"

namespace rankfs {

namespace {

// How late the lazy thread wakes after the first deadline, to store the next ones with it.
constexpr int64_t kLazySlackNs = 20'000'000;

}  // namespace

void FsCore::Impl::EndLazyLocked(Inode* inode) {
  if (inode->lazy_until_ns == 0) return;
  lazy_bytes_ -= inode->lazy_bytes;
  inode->lazy_bytes = 0;
  inode->lazy_until_ns = 0;  // the lazy thread skips its entry
}

Status FsCore::Impl::CloseLocked(Inode* inode) {
  // A small file whose bytes are all still in the stream's buffer: keep them there for a while.
  // A temporary file deleted meanwhile then costs no chunk, batch, extent or deletion work.
  const uint64_t buffered = inode->stream ? inode->stream->buffered() : 0;
  if (options_.lazy_close_ms > 0 && buffered > 0 && buffered <= options_.lazy_close_bytes &&
      inode->cut.empty() && inode->dirty.empty() &&
      lazy_bytes_.load() + buffered <= options_.write_buffer_bytes / 8) {
    bool batches;
    {
      std::lock_guard<std::mutex> bl(inode->batch_mu);
      batches = !inode->batches.empty();
    }
    if (!batches) {
      if (inode->lazy_until_ns == 0) {
        const int64_t until = SteadyNs() + options_.lazy_close_ms * 1'000'000;
        inode->lazy_until_ns = until;
        inode->lazy_bytes = buffered;
        lazy_bytes_ += buffered;
        std::lock_guard<std::mutex> l(lazy_mu_);
        // Deadlines only grow, so the lazy thread, asleep until the first one, needs waking
        // only for the first entry: a wake-up per close costs two context switches.
        const bool wake = lazy_.empty();
        lazy_.emplace_back(until, inode->weak_from_this());
        if (wake) lazy_cv_.notify_one();
      }
      return Status::Ok();
    }
  }
  RANKFS_RETURN_IF_ERROR(FinishStreamLocked(inode));
  bool failed;
  {
    std::lock_guard<std::mutex> bl(inode->batch_mu);
    failed = std::any_of(inode->batches.begin(), inode->batches.end(),
                         [](const auto& b) { return b->failed; });
  }
  if (inode->dirty.empty() && !failed) return Status::Ok();
  return FlushDirtyLocked(inode, /*sync=*/false);
}

void FsCore::Impl::LazyLoop() {
  std::unique_lock<std::mutex> l(lazy_mu_);
  while (!lazy_stop_) {
    if (lazy_.empty()) {
      lazy_cv_.wait(l);
      continue;
    }
    const int64_t now = SteadyNs();
    if (lazy_.front().first > now) {
      // A little late on purpose: the files closed in the next few milliseconds are stored in
      // the same wake-up.
      lazy_cv_.wait_for(l, std::chrono::nanoseconds(lazy_.front().first - now + kLazySlackNs));
      continue;
    }
    std::shared_ptr<Inode> inode = lazy_.front().second.lock();
    lazy_.pop_front();
    l.unlock();
    if (inode) {
      std::unique_lock<std::shared_mutex> il(inode->mu);
      // Still lazy, not written or finished since: store it now.
      if (inode->lazy_until_ns != 0 && inode->lazy_until_ns <= now && !inode->deleted) {
        Status st = FinishStreamLocked(inode.get());
        if (!st.ok()) {
          Log(LogLevel::kError, "fs", "storing a closed file's data: " + st.ToString());
        }
      }
    }
    l.lock();
  }
}

}  // namespace rankfs
