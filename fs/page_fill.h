// PageFiller: after a small read, puts the rest of the chunk it decompressed into the kernel's
// page cache (FUSE_NOTIFY_STORE), the way compressed filesystems (btrfs, squashfs) fill a whole
// compressed extent. A 4 KiB page fault (mmap with MADV_RANDOM, or a random pread) otherwise
// decompresses a 32 KiB chunk to answer with one page of it, and the next fault on a
// neighbouring page asks again (docs/design.md, "Reads").
//
// What makes it safe. NOTIFY_STORE copies into the inode's page cache unconditionally: over a
// dirty page (a write the daemon has not seen yet) it would put back old bytes, and past the
// kernel's file size it would extend the file. So a fill happens only while no handle that can
// write to the inode is open (no handle, no dirty page: with the write-back cache the kernel
// writes dirty pages back before RELEASE), the bytes are read at fill time, clipped to the
// daemon's size, and every change that needs no writable handle (SETATTR of the size, i.e.
// truncate(2) by path) is kept apart from fills. Opening for write and those changes wait for a
// fill of their inode in flight; they wait without holding a FUSE worker thread (their reply
// is deferred and sent by the filler), because a fill can itself wait in the kernel for a page
// that a READ in flight holds locked, and that READ needs a free worker.
//
// One thread does all fills, from a small queue; a full queue drops offers (a fill only saves
// later reads). Thread-safety: every method may be called from any thread.
#pragma once

#include <fuse_lowlevel.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs/fs_core.h"

namespace rankfs {

class PageFiller {
 public:
  // Stores through `se` (must outlive the filler). Starts the filling thread. `test_delay`
  // widens the window between reading a fill's bytes and storing them, for the tests that
  // check that nothing slips into it (tests/integration/page_fill_test.cc).
  PageFiller(FsCore* core, fuse_session* se,
             std::chrono::microseconds test_delay = std::chrono::microseconds(0));
  // Call once the session loop has returned, before the session is unmounted: starts no
  // more fills, lets the one in flight and the deferred operations finish, stops the thread.
  // A fill can be stuck in the kernel on a page whose READ no worker will serve any more
  // (the loop ended on a signal, with the mount still live); if the thread has not stopped
  // within `patience`, `abort_connection` is called (it must fail the mount's pending
  // requests, which unlocks the page) and the thread is then waited for.
  void Shutdown(std::chrono::milliseconds patience, const std::function<void()>& abort_connection);
  // Shutdown without an abort, if it was not called.
  ~PageFiller();
  PageFiller(const PageFiller&) = delete;
  PageFiller& operator=(const PageFiller&) = delete;

  // A read of `ino` was answered from stored chunks that cover [start, end) of the file.
  // Queues a fill of that range (page-aligned inward, at most kMaxFillBytes). Never throws:
  // it is called after the read's reply, and an offer that cannot be queued is dropped.
  void Offer(Ino ino, uint64_t start, uint64_t end) noexcept;

  // Runs `op` once no fill of `ino` is in flight: now, on this thread, or later on the
  // filler's thread. No fill of `ino` starts before `op` has returned. With `writer`, the
  // inode counts one more writable handle from then on (until DropWriter), so fills of it stop.
  // `op` must reply to its request itself and must not throw. If Exclusive throws
  // (std::bad_alloc), nothing changed: `op` has not run and never will.
  void Exclusive(Ino ino, bool writer, std::function<void()> op);
  // A writable handle of a new inode (CREATE): it has never been read, so no fill of it can
  // be in flight and nothing needs to wait.
  void AddWriter(Ino ino);
  // A writable handle of `ino` was released (or its open failed).
  void DropWriter(Ino ino);

  static constexpr uint64_t kMaxFillBytes = 256 << 10;

 private:
  struct Range {
    Ino ino;
    uint64_t start, end;
  };
  struct Gate {
    uint32_t writers = 0;  // writable handles open
    uint32_t holds = 0;    // Exclusive ops running or deferred
  };
  void Run();
  // Returns the bytes stored in the page cache.
  uint64_t Fill(const Range& r);
  // REQUIRES: mu_ held.
  bool BlockedLocked(Ino ino) const;
  void ReleaseHoldLocked(Ino ino);

  FsCore* const core_;
  fuse_session* const se_;
  const std::chrono::microseconds test_delay_;
  std::mutex mu_;  // guards everything below; a leaf: nothing is locked or called under it
  std::condition_variable cv_;
  std::deque<Range> queue_;
  std::unordered_map<Ino, Gate> gates_;  // inodes with writers or holds only
  Ino filling_ = 0;                      // the inode of the fill in flight, 0: none
  std::vector<std::pair<Ino, std::function<void()>>> deferred_;  // wait for filling_'s end
  bool stop_ = false;
  bool exited_ = false;  // Run has returned
  std::thread thread_;
};

}  // namespace rankfs
