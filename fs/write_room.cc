#include "fs/write_room.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>

#include "store/logging.h"

namespace rankfs {

namespace {

// How often the keeper looks at the counts when there is no idle trim to time: a sweep that a
// lost race left unrequested is started at the latest then.
constexpr int64_t kTickNs = 1'000'000'000;

}  // namespace

WriteRoom::Listing::~Listing() {
  if (room_ == nullptr) return;
  std::lock_guard<std::mutex> l(room_->mu_);
  if (listed_.load(std::memory_order_relaxed)) room_->Unlist(this);
}

WriteRoom::WriteRoom(uint64_t cap_bytes, int64_t idle_trim_ms, PushFn push)
    : cap_(std::max<uint64_t>(cap_bytes, 1)),
      idle_trim_ns_(std::max<int64_t>(idle_trim_ms, 0) * 1'000'000),
      push_(std::move(push)) {}

WriteRoom::~WriteRoom() {
  Stop();
  std::lock_guard<std::mutex> l(mu_);
  // Inodes that outlive the room (none should) must not reach back into it.
  for (Holder& h : holders_) {
    h.listing->listed_ = false;
    h.listing->room_ = nullptr;
  }
  holders_.clear();
}

void WriteRoom::Start() {
  keeper_ = std::thread([this] { KeeperLoop(); });
}

void WriteRoom::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    keeper_cv_.notify_all();
    room_cv_.notify_all();
  }
  if (keeper_.joinable()) keeper_.join();
}

void WriteRoom::Add(uint64_t n) {
  const uint64_t now = buffered_.fetch_add(n) + n;
  uint64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void WriteRoom::Release(uint64_t n) {
  if (n == 0) return;
  buffered_ -= n;
  releases_.fetch_add(1, std::memory_order_relaxed);
  // seq_cst against WaitForRoom's increment of waiters_ and its check of buffered_: either it
  // sees the new count or this sees the waiter, and then the notify cannot be lost (the waiter
  // holds mu_ from its check until it sleeps).
  if (waiters_.load() > 0) {
    std::lock_guard<std::mutex> l(mu_);
    room_cv_.notify_all();
  }
}

void WriteRoom::Submitted(uint64_t n) { in_flight_ += n; }

void WriteRoom::Finished(uint64_t n, const Status& st) {
  in_flight_ -= n;
  if (st.ok()) {
    Release(n);
    return;
  }
  releases_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> l(mu_);
  RecordFailure(st);
  // The batch's inode is listed: the keeper retries its bytes for the writers waiting now (a
  // flush of them may work where the batch did not), and they get the error if that fails.
  if (waiters_.load() > 0) {
    sweep_requested_ = true;
    keeper_cv_.notify_one();
  }
}

void WriteRoom::RecordFailure(const Status& st) {
  ++fail_seq_;
  fail_ = st;
  room_cv_.notify_all();
}

void WriteRoom::List(Listing* listing, std::weak_ptr<Inode> inode) {
  std::lock_guard<std::mutex> l(mu_);
  if (listing->listed_.load(std::memory_order_relaxed)) return;
  listing->room_ = this;
  listing->pos_ = holders_.insert(holders_.end(), Holder{listing, std::move(inode)});
  listing->listed_.store(true, std::memory_order_relaxed);
}

void WriteRoom::Unlist(Listing* listing) {
  holders_.erase(listing->pos_);
  listing->listed_.store(false, std::memory_order_relaxed);
}

uint64_t WriteRoom::Held() const {
  const uint64_t all = buffered_.load(), flying = in_flight_.load();
  return all > flying ? all - flying : 0;
}

bool WriteRoom::SweepWanted() const {
  return waiters_.load() > 0 && Held() > cap_ / 2 && !holders_.empty();
}

Status WriteRoom::WaitForRoom() {
  std::unique_lock<std::mutex> l(mu_);
  ++waiters_;
  waits_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t seq = fail_seq_;
  sweep_requested_ = true;
  keeper_cv_.notify_one();
  Status st;
  room_cv_.wait(l, [&] {
    if (buffered_.load() < cap_) return true;
    if (stop_) {
      st = Status(EIO, "the write buffer is full and the filesystem is shutting down");
      return true;
    }
    // Failed since this writer came, and nothing under way could still give memory back.
    if (fail_seq_ != seq && in_flight_.load() == 0 && !pushing_ && !sweep_requested_) {
      st = fail_.Annotate("the write buffer is full and storing buffered data fails");
      return true;
    }
    return false;
  });
  --waiters_;
  return st;
}

void WriteRoom::Sweep(std::unique_lock<std::mutex>& l) {
  sweep_requested_ = false;
  pushing_ = true;
  bool progress = false;
  // Each file at most once: one that fails goes back to the end of the list.
  for (size_t n = holders_.size(); n > 0 && !stop_; --n) {
    if (waiters_.load() == 0 || Held() <= cap_ / 2 || holders_.empty()) break;
    Holder h = std::move(holders_.front());
    Unlist(h.listing);
    std::shared_ptr<Inode> inode = h.inode.lock();
    if (inode == nullptr) continue;
    l.unlock();
    Status st = push_(inode);
    inode.reset();  // without mu_: the last reference takes it (~Listing)
    l.lock();
    if (st.ok()) {
      progress = true;
    } else {
      RecordFailure(st);  // no new sweep for it: the writers waiting now get the error
    }
  }
  pushing_ = false;
  if (progress && waiters_.load() > 0 && Held() > cap_ / 2) sweep_requested_ = true;
  room_cv_.notify_all();
}

void WriteRoom::KeeperLoop() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> l(mu_);
  const int64_t tick_ns = idle_trim_ns_ > 0 ? idle_trim_ns_ : kTickNs;
  auto next_tick = Clock::now() + std::chrono::nanoseconds(tick_ns);
  // The counts at the last tick, and whether they moved since the last trim.
  uint64_t seen_buffered = buffered_.load(), seen_releases = releases_.load();
  bool trim_due = false;
  while (!stop_) {
    if (sweep_requested_) {
      if (SweepWanted()) {
        Sweep(l);
        continue;
      }
      sweep_requested_ = false;  // nothing to push: the writers wait for the pipeline
      room_cv_.notify_all();
    }
    keeper_cv_.wait_until(l, next_tick);
    if (stop_ || Clock::now() < next_tick) continue;
    next_tick = Clock::now() + std::chrono::nanoseconds(tick_ns);
    if (waiters_.load() > 0) sweep_requested_ = true;
    if (idle_trim_ns_ == 0) continue;
    const uint64_t b = buffered_.load(), r = releases_.load();
    if (b != seen_buffered || r != seen_releases) {
      seen_buffered = b;
      seen_releases = r;
      trim_due = true;
    } else if (trim_due) {
      trim_due = false;
      l.unlock();
      malloc_trim(0);
      idle_trims_.fetch_add(1, std::memory_order_relaxed);
      l.lock();
    }
  }
}

}  // namespace rankfs
