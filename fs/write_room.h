// WriteRoom: the cap on written bytes that are not yet in the store (FsOptions::
// write_buffer_bytes), shared by all files, and the keeper thread that makes room.
//
// Counting: every such byte is counted once, wherever it is -- a stream's buffer and cut
// chunks, dirty ranges, batches until the pipeline finishes them. Add() when a write buffers
// bytes, Release() when bytes are stored or dropped; moving bytes from one place to another
// changes nothing (so the count never dips while bytes move, which would let writers in).
//
// Admission: a writer calls Admit() before it takes its inode's lock. Under the cap that is one
// atomic load; over it the writer waits until the count is under the cap again. So the count
// exceeds the cap by at most what the writers admitted at one time go on to add: (threads
// writing at once) x (largest write), on a mount 16 FUSE threads x 1 MiB (max_write).
//
// Progress: bytes in batches come back by themselves (the pipeline takes no inode lock). The
// others -- "held" bytes: stream buffers, cut chunks, dirty ranges, failed batches -- only a
// thread holding the inode's lock can hand on, and an idle file has no writer to do it. A file
// that comes to hold such bytes is listed (List); while a writer waits and the held bytes are
// over half the cap, the keeper thread takes the listed files, oldest first, and pushes each
// one (PushFn: takes the inode's lock with nothing else held, submits its stream, flushes its
// dirty ranges). A waiting writer holds no lock, so the keeper never waits for a waiting writer.
//
// Failures: when the store fails, pushes and batches fail and their bytes stay held (buffered
// again, never lost). A waiting writer then gets the error instead of waiting forever: once a
// failure was reported during its wait, no batch is in flight and no push is under way or due,
// nothing is left that could give memory back.
//
// Idle trim: when neither the count nor the number of releases moved for a whole idle period
// after they last did (no write buffered, no batch finished, no file deleted: NoteActivity),
// the keeper calls malloc_trim(0) once. The pipeline trims at most once a second while
// batches flow, so what the end of a job freed would otherwise stay with the daemon until the
// next job. (malloc's own count of free heap does not fall with it: trimmed pages stay free
// chunks; the daemon's VmRSS does.)
//
// Thread-safety: every method may be called from any thread. mu_ is a leaf: no other lock is
// taken while it is held (PushFn and malloc_trim run without it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "store/status.h"

namespace rankfs {

struct Inode;  // fs_core_impl.h

class WriteRoom {
  struct Holder;

 public:
  // An inode's entry in the list of files holding bytes. It lives in the inode and leaves the
  // list when the inode dies.
  class Listing {
   public:
    Listing() = default;
    ~Listing();
    Listing(const Listing&) = delete;
    Listing& operator=(const Listing&) = delete;
    // Whether it is listed, as a hint (a stale true is harmless: see List).
    bool listed() const { return listed_.load(std::memory_order_relaxed); }

   private:
    friend class WriteRoom;
    WriteRoom* room_ = nullptr;        // set when first listed; guarded by its mu_
    std::atomic<bool> listed_{false};  // written under room_->mu_; read without it as a hint
    std::list<Holder>::iterator pos_;  // valid while listed_; guarded by room_->mu_
  };

  // Hands on the held bytes of an inode; called by the keeper with no lock held.
  using PushFn = std::function<Status(const std::shared_ptr<Inode>&)>;
  // `idle_trim_ms`: the quiet period before the idle trim (0: no idle trim).
  WriteRoom(uint64_t cap_bytes, int64_t idle_trim_ms, PushFn push);
  ~WriteRoom();  // Stop()s
  WriteRoom(const WriteRoom&) = delete;
  WriteRoom& operator=(const WriteRoom&) = delete;

  void Start();  // the keeper thread
  // Stops the keeper; writers still waiting get an error. Idempotent.
  void Stop();

  // OK at once under the cap; else waits for room, or returns the store's error (see above).
  // REQUIRES: no inode lock held.
  Status Admit() {
    if (buffered_.load(std::memory_order_relaxed) < cap_) return Status::Ok();
    return WaitForRoom();
  }

  void Add(uint64_t n);
  void Release(uint64_t n);
  // A batch of n bytes went to the pipeline / the pipeline finished it. On success its bytes
  // are released; on failure they stay held (the caller lists the inode first) and waiting
  // writers may get `st`.
  void Submitted(uint64_t n);
  void Finished(uint64_t n, const Status& st);
  // Other work that frees heap (a file's data deleted): the idle trim waits for quiet after it.
  void NoteActivity() { releases_.fetch_add(1, std::memory_order_relaxed); }

  // Puts the inode on the list of files holding bytes, unless it is there. Callers that hold
  // the inode's lock may skip the call when listing->listed(): the keeper unlists a file before
  // it takes the file's lock to push it, so it pushes whatever that lock holder adds.
  void List(Listing* listing, std::weak_ptr<Inode> inode);

  uint64_t buffered() const { return buffered_.load(std::memory_order_relaxed); }
  uint64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }
  uint64_t idle_trims() const { return idle_trims_.load(std::memory_order_relaxed); }

 private:
  struct Holder {
    Listing* listing;
    std::weak_ptr<Inode> inode;
  };

  Status WaitForRoom();
  // REQUIRES: mu_ held.
  void Unlist(Listing* listing);
  // Bytes that only their inode's owner can hand on (a racy estimate).
  uint64_t Held() const;
  // Whether a sweep could help: a writer waits and listed files hold over half the cap.
  // REQUIRES: mu_ held.
  bool SweepWanted() const;
  // Pushes listed files, each at most once, while a writer waits and held bytes are over half
  // the cap. REQUIRES: l holds mu_ (released around each push).
  void Sweep(std::unique_lock<std::mutex>& l);
  // REQUIRES: mu_ held.
  void RecordFailure(const Status& st);
  void KeeperLoop();

  const uint64_t cap_;
  const int64_t idle_trim_ns_;
  const PushFn push_;

  std::atomic<uint64_t> buffered_{0};
  std::atomic<uint64_t> in_flight_{0};  // bytes of batches the pipeline has not finished
  std::atomic<uint64_t> peak_{0};
  std::atomic<uint64_t> releases_{0};  // Release, Finished, NoteActivity: for the idle trim
  std::atomic<int> waiters_{0};        // writers in WaitForRoom
  std::atomic<uint64_t> waits_{0};
  std::atomic<uint64_t> idle_trims_{0};

  std::mutex mu_;  // guards everything below and every Listing's pos_; a leaf lock
  std::condition_variable room_cv_;    // waiting writers: room, a failure, a sweep ended, stop
  std::condition_variable keeper_cv_;  // the keeper: a sweep is wanted, or stop
  std::list<Holder> holders_;          // oldest first
  bool sweep_requested_ = false;
  bool pushing_ = false;  // a sweep is under way
  uint64_t fail_seq_ = 0;
  Status fail_;  // the latest failure
  bool stop_ = false;
  std::thread keeper_;
};

}  // namespace rankfs
