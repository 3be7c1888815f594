// The page filler (fs/page_fill.h) through a real mount: a page fault fills the rest of its
// chunk into the page cache (and only with page_fill on), and a fill never undoes what a
// writer or a truncate did to the file meanwhile.
//
// Residency is read with mincore(2) on a MAP_SHARED, MADV_RANDOM mapping: without a fill a
// fault brings in exactly its own page. Each test mounts a store written by an earlier mount,
// so that the kernel starts with no cached page of the file.
//
// Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

constexpr size_t kPage = 4096;

// Resident pages of [off, off + len) of a mapping.
size_t Resident(const char* map, size_t off, size_t len) {
  std::vector<unsigned char> vec(len / kPage);
  if (mincore(const_cast<char*>(map) + off, len, vec.data()) != 0) return 0;
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

class PageFillTest : public MountTest {
 protected:
  PageFillTest() : MountTest(std::chrono::seconds(300)) {}

  // Writes `data` to `name` in a mount of its own, so that the next mount starts cold.
  void Store(const std::string& name, const std::string& data) {
    ASSERT_NO_FATAL_FAILURE(Mount());
    const std::string path = mnt_ + "/" + name;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(write(fd, data.data(), data.size()), ssize_t(data.size())) << strerror(errno);
    ASSERT_EQ(close(fd), 0);
    ASSERT_NO_FATAL_FAILURE(Unmount());
  }

  // Mounts with the daemon's test knob holding each fill `micros` between reading its bytes
  // and storing them (RANKFS_TEST_FILL_DELAY_US, fs/daemon.cc).
  void MountWithFillDelay(const char* micros) {
    setenv("RANKFS_TEST_FILL_DELAY_US", micros, 1);
    Mount();
    unsetenv("RANKFS_TEST_FILL_DELAY_US");
  }

  // A counter of the stats file; 0 (and a failure) when the file or the key is missing.
  uint64_t Stat(const char* key) {
    const uint64_t v = StatValue(mnt_, key);
    EXPECT_NE(v, ~uint64_t(0)) << key << " is not in " << mnt_ << "/.rankfs-stats";
    return v == ~uint64_t(0) ? 0 : v;
  }
  // Waits until a fill has begun since page_fills_started read `before`.
  void WaitForAFillToStart(uint64_t before) {
    ASSERT_TRUE(WaitUntil([&] { return Stat("page_fills_started") > before || HasFailure(); }))
        << "no fill started; page_fills_started stays " << before;
  }
  // Faults the page at `page` of `path` (a 4 KiB READ, the page dropped from the page cache
  // first) until a fill has begun since page_fills_started read `before`. One fault is enough
  // unless its offer was dropped: an offer made while the inode is held (by the last round's
  // truncate, until the filler thread lets go of it) is.
  void FaultUntilAFillStarts(const std::string& path, size_t page, uint64_t before) {
    int fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), 0);  // no readahead
    char buf[kPage];
    auto started = [&] { return Stat("page_fills_started") > before || HasFailure(); };
    const bool ok = WaitUntil([&] {
      posix_fadvise(fd, off_t(page), off_t(kPage), POSIX_FADV_DONTNEED);
      EXPECT_EQ(pread(fd, buf, kPage, off_t(page)), ssize_t(kPage)) << strerror(errno);
      return WaitUntil(started, std::chrono::milliseconds(200));  // the offer is asynchronous
    });
    close(fd);
    ASSERT_TRUE(ok) << "no fill started; page_fills_started stays " << before;
  }
  // Waits until every fill begun so far has ended (stored or not).
  void WaitForFillsToEnd() {
    uint64_t started = 0, done = 0;
    const bool ended = WaitUntil([&] {
      started = Stat("page_fills_started");  // first: a fill begun later may still run
      done = Stat("page_fills_done");
      return done >= started || HasFailure();
    });
    ASSERT_TRUE(ended) << started << " fills started, " << done << " done";
  }

  std::string PRead(const std::string& path, size_t off, size_t len) {
    std::string out(len, '\0');
    int fd = open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0) << strerror(errno);
    if (fd < 0) return {};
    EXPECT_EQ(pread(fd, out.data(), len, off_t(off)), ssize_t(len)) << strerror(errno);
    close(fd);
    return out;
  }
};

// One 4 KiB fault, then the pages around it: filled (page_fill on) or not (off).
void FaultOnceAndCountNeighbours(const std::string& path, const std::string& data, size_t at,
                                 size_t* neighbours, bool wait_for_fill) {
  int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  char* map = static_cast<char*>(mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0));
  ASSERT_NE(map, MAP_FAILED) << strerror(errno);
  ASSERT_EQ(madvise(map, data.size(), MADV_RANDOM), 0);
  const size_t window_start = (at - (64 << 10)) / kPage * kPage, window = 128 << 10;
  ASSERT_EQ(Resident(map, window_start, window), 0u) << "the mount is not cold";
  EXPECT_EQ(map[at], data[at]);
  // The fill is asynchronous: wait for its pages. Without fills nothing changes, so the off
  // case waits a fixed 300 ms for pages that must not come.
  size_t n = Resident(map, window_start, window);
  if (wait_for_fill) {
    WaitUntil([&] { return (n = Resident(map, window_start, window)) > 1; });
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    n = Resident(map, window_start, window);
  }
  *neighbours = n;
  // Filled pages hold the file's bytes.
  EXPECT_EQ(std::memcmp(map + window_start, data.data() + window_start, window), 0);
  munmap(map, data.size());
  close(fd);
}

TEST_F(PageFillTest, AFaultFillsTheRestOfItsChunk) {
  const std::string data = MakeRealData(8 << 20, 41);
  ASSERT_NO_FATAL_FAILURE(Store("f", data));
  ASSERT_NO_FATAL_FAILURE(Mount());
  size_t resident = 0;
  const size_t at = (3 << 20) + 12345;
  ASSERT_NO_FATAL_FAILURE(FaultOnceAndCountNeighbours(mnt_ + "/f", data, at, &resident, true));
  // A chunk is at least 8 KiB and 32 KiB on average: its whole pages beyond the faulted one.
  EXPECT_GE(resident, 2u);
  // The pages are in the page cache as soon as notify_store has put them there; the filler
  // counts their bytes only after it returns, so wait for the count too.
  uint64_t filled = 0;
  EXPECT_TRUE(WaitUntil([&] { return (filled = StatValue(mnt_, "page_fill_bytes")) > 0; }))
      << "pages were filled but page_fill_bytes stays 0";
  EXPECT_NE(filled, ~uint64_t(0));
}

TEST_F(PageFillTest, OffMeansOnlyTheFaultedPage) {
  const std::string data = MakeRealData(8 << 20, 42);
  ASSERT_NO_FATAL_FAILURE(Store("f", data));
  ASSERT_NO_FATAL_FAILURE(Mount("page_fill=off"));
  size_t resident = 0;
  const size_t at = (3 << 20) + 12345;
  ASSERT_NO_FATAL_FAILURE(FaultOnceAndCountNeighbours(mnt_ + "/f", data, at, &resident, false));
  EXPECT_EQ(resident, 1u);
  EXPECT_EQ(StatValue(mnt_, "page_fill_bytes"), 0u);
}

// Until `stop`, faults random pages of [*lo, *lo + len) of `path`, dropping the window's clean
// pages from its mapping and the page cache each time so that every fault goes to the daemon
// and offers a fill. Counts each fault in *faults once it is done; a fault counted two after a
// change of *lo read the new value. The file must stay at least *lo + len long (a fault past the
// end is SIGBUS).
void FaultRandomly(const std::string& path, size_t size, const std::atomic<size_t>* lo, size_t len,
                   const std::atomic<bool>* stop, std::atomic<uint64_t>* faults) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  char* map = static_cast<char*>(mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0));
  if (map == MAP_FAILED) {
    close(fd);
    return;
  }
  madvise(map, size, MADV_RANDOM);
  std::mt19937_64 rng(7);
  volatile char sink = 0;
  while (!stop->load()) {
    const size_t from = lo->load();
    // Out of this mapping first (the page cache keeps pages a process maps), then out of the
    // page cache: clean pages only, dirty ones stay, which is what the writer test needs.
    madvise(map + from, len, MADV_DONTNEED);
    posix_fadvise(fd, off_t(from), off_t(len), POSIX_FADV_DONTNEED);
    const size_t page = from / kPage + rng() % (len / kPage);
    sink = sink + map[page * kPage + rng() % kPage];
    ++*faults;
  }
  munmap(map, size);
  close(fd);
}

// Stops and joins a reader thread when the test body returns, a failed ASSERT included (a
// joinable std::thread would terminate the process).
struct StopAndJoin {
  std::atomic<bool>* stop;
  std::thread* thread;
  ~StopAndJoin() {
    *stop = true;
    if (thread->joinable()) thread->join();
  }
};

// Writers open, write pages (dirty in the kernel's write-back cache) and close while a reader
// faults pages of the same chunks all the time. A fill that put the daemon's older bytes over
// the dirty pages would show here as a page that reads back old.
TEST_F(PageFillTest, FillsNeverUndoAWritersPages) {
  const size_t size = 4 << 20;
  std::string model = MakeRealData(size, 43);
  ASSERT_NO_FATAL_FAILURE(Store("f", model));
  // Fills held 200 us between reading and storing: opens for write then often arrive during
  // one, and take the deferred path (fs/page_fill.h).
  ASSERT_NO_FATAL_FAILURE(MountWithFillDelay("200"));
  const std::string path = mnt_ + "/f";
  // Each round writes into one 128 KiB window, the one the reader faults in.
  constexpr size_t kWindow = 128 << 10;
  std::atomic<size_t> window{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> faults{0};
  std::thread reader(FaultRandomly, path, size, &window, kWindow, &stop, &faults);
  StopAndJoin guard{&stop, &reader};
  std::mt19937_64 rng(11);
  const std::string fresh = MakeRealData(size, 44);
  // Waits until the reader has faulted the window since `faults` read `before` (the second
  // fault after that began after it), which offers fills of the window's chunks.
  auto wait_for_faults = [&](uint64_t before) {
    ASSERT_TRUE(WaitUntil([&] { return faults.load() >= before + 2; })) << "the reader stopped";
  };
  for (int round = 0; round < 200 && !HasFailure(); ++round) {
    window = (rng() % (size / kWindow)) * kWindow;
    // No handle is open: the reader's faults start fills of the window, which the open below
    // then races.
    const uint64_t fills = Stat("page_fills_started");
    ASSERT_NO_FATAL_FAILURE(wait_for_faults(faults.load()));
    ASSERT_NO_FATAL_FAILURE(WaitForAFillToStart(fills));
    int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << strerror(errno);
    for (int w = 0; w < 4; ++w) {
      const size_t pages = 1 + rng() % 6;
      const size_t off = window + (rng() % (kWindow / kPage - pages)) * kPage;
      const size_t from = (rng() % (size / kPage - pages)) * kPage;
      ASSERT_EQ(pwrite(fd, fresh.data() + from, pages * kPage, off_t(off)), ssize_t(pages * kPage));
      model.replace(off, pages * kPage, fresh, from, pages * kPage);
      // The reader faults the window again, over the dirty pages: a fill those faults started
      // (there must be none while the file is open for writing) would put old bytes back.
      ASSERT_NO_FATAL_FAILURE(wait_for_faults(faults.load()));
      ASSERT_TRUE(PRead(path, off, pages * kPage) == model.substr(off, pages * kPage))
          << "round " << round << ": the bytes just written read back different";
    }
    ASSERT_EQ(close(fd), 0);
  }
  stop = true;
  reader.join();
  EXPECT_GT(faults.load(), 100u);
  EXPECT_GT(StatValue(mnt_, "page_fill_bytes"), 0u);
  EXPECT_TRUE(PRead(path, 0, size) == model) << "the file differs from what was written";
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(PRead(path, 0, size) == model) << "the file differs after a remount";
}

// truncate(2) by path needs no writable handle: a fill racing it must neither bring old
// bytes back past the cut nor make the file longer again.
TEST_F(PageFillTest, FillsNeverUndoATruncateByPath) {
  const size_t size = 4 << 20;
  const std::string data = MakeRealData(size, 45);
  ASSERT_NO_FATAL_FAILURE(Store("f", data));
  // The race is a few microseconds wide; the daemon's test knob holds each fill 1 ms between
  // reading its bytes and storing them.
  ASSERT_NO_FATAL_FAILURE(MountWithFillDelay("1000"));
  const std::string path = mnt_ + "/f";
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> faults{0};
  // The faults stay below every cut, close enough that their chunks reach past it.
  const size_t lowest_cut = size / 2 - 1000;
  const std::atomic<size_t> below{size / 2 - (64 << 10)};
  std::thread reader(FaultRandomly, path, size, &below, (64 << 10) - kPage, &stop, &faults);
  StopAndJoin guard{&stop, &reader};
  std::mt19937_64 rng(13);
  std::string model = data;
  for (int round = 0; round < 400 && !HasFailure(); ++round) {
    const size_t cut = lowest_cut + (rng() % 8) * kPage;
    ASSERT_EQ(truncate(path.c_str(), off_t(cut)), 0) << strerror(errno);
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    ASSERT_EQ(size_t(st.st_size), cut) << "round " << round;
    ASSERT_EQ(truncate(path.c_str(), off_t(size)), 0) << strerror(errno);
    model.replace(cut, size - cut, size - cut, '\0');
    // A stale fill lands within a chunk or two of the cut.
    ASSERT_TRUE(PRead(path, cut - 4096, 256 << 10) == model.substr(cut - 4096, 256 << 10))
        << "round " << round << ": bytes past the cut came back";
  }
  stop = true;
  reader.join();
  EXPECT_GT(faults.load(), 100u);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_TRUE(PRead(path, 0, size) == model) << "the file differs after a remount";
}

// The same race made certain: each round faults one page, so that a fill of its chunk starts
// and is held 300 ms (test knob) between reading its bytes and storing them, and truncates the
// file by path just past that page while the fill waits (the stats file says when it has
// begun). The truncate must come after the fill (its reply waits for it), so the file ends at
// the cut. A fill stored after the truncate would put old bytes back past the cut and make
// the file longer again; the checks run once the stats file says the fill has ended.
TEST_F(PageFillTest, ATruncateDuringAFillIsNotUndone) {
  const size_t size = 4 << 20;
  const std::string data = MakeRealData(size, 47);
  ASSERT_NO_FATAL_FAILURE(Store("f", data));
  ASSERT_NO_FATAL_FAILURE(MountWithFillDelay("300000"));
  const std::string path = mnt_ + "/f";
  size_t file_size = size;
  for (int round = 0; round < 6; ++round) {
    // A page no earlier round has read, so that the fault reaches the daemon. The fills the
    // last round's reads offered are over first, so that the next fill to begin is this one.
    const size_t page = file_size / 2 / kPage * kPage;
    ASSERT_NO_FATAL_FAILURE(WaitForFillsToEnd());
    const uint64_t fills = Stat("page_fills_started");
    ASSERT_NO_FATAL_FAILURE(FaultUntilAFillStarts(path, page, fills));  // it is held now
    const size_t cut = page + kPage + 100;
    ASSERT_EQ(truncate(path.c_str(), off_t(cut)), 0) << strerror(errno);
    ASSERT_NO_FATAL_FAILURE(WaitForFillsToEnd());  // a fill stored late has landed
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    ASSERT_EQ(size_t(st.st_size), cut) << "round " << round << ": the file grew back";
    int fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    char c;
    EXPECT_EQ(pread(fd, &c, 1, off_t(cut)), 0) << "round " << round << ": bytes past the end";
    close(fd);
    ASSERT_TRUE(PRead(path, page, cut - page) == data.substr(page, cut - page));
    file_size = cut;
  }
  EXPECT_GT(StatValue(mnt_, "page_fill_bytes"), 0u);
}

// SIGTERM ends the session loop with the mount still live. A fill in flight then (here one
// held 10 s by the test knob) must not keep the daemon from unmounting: the filler gets 2 s,
// then the daemon aborts the connection, and the mount goes away. The log says whether the
// daemon aborted (a daemon that waited out the fill would not); no clock is read, so a slow
// machine cannot fail it as long as SIGTERM's handling starts within 8 s of the fill.
TEST_F(PageFillTest, SigtermDuringAFillStillUnmounts) {
  const std::string data = MakeRealData(1 << 20, 46);
  ASSERT_NO_FATAL_FAILURE(Store("f", data));
  ASSERT_NO_FATAL_FAILURE(MountWithFillDelay("10000000"));
  ASSERT_NO_FATAL_FAILURE(FaultUntilAFillStarts(mnt_ + "/f", 300 << 10, 0));  // in flight now
  ASSERT_EQ(kill(fs_->pid(), SIGTERM), 0);
  EXPECT_TRUE(WaitUntil([&] { return !IsMountPoint(mnt_); })) << fs_->DaemonLog();
  EXPECT_NE(fs_->DaemonLog().find("aborting the mount"), std::string::npos) << fs_->DaemonLog();
}

}  // namespace
}  // namespace rankfs
