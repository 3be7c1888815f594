// Crash consistency with the real daemon: files are written, some fsync'd, some not, and the
// daemon is killed with SIGKILL (MountedFs::Kill9) while the unsynced files may still sit in
// the kernel's page cache or the daemon's write buffers. After remounting the same store:
//   - every fsync'd file exists with exactly its content (rankfs's contract, docs/design.md
//     "Durability rules": fsync of a file is a synced RocksDB write after the chunk flush,
//     which also makes every earlier metadata write durable, the file's name included);
//   - every other file, if present, reads without error, is no longer than what was written,
//     and each byte is either the written byte or zero (never garbage, never EIO);
//   - a file that was open but unlinked at the crash is gone;
//   - no chunk read failed (read_errors=0 in the stats file).
// Three rounds with different seeds accumulate in one store, so later rounds also recover a
// store that was itself recovered from a crash. At the end, files written without fsync
// survive a clean unmount and remount intact. `rankfs fsck` runs after every crash (no lost
// data allowed, leaks allowed) and at the end with --repair (then clean, and deleting
// everything empties the packs).
//
// Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

std::string ReadWhole(const std::string& path, int* err) {
  *err = 0;
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    *err = errno;
    return "";
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      *err = errno;
      break;
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

// Writes `data` with writes of random sizes (8 KiB mostly, as the workload does).
bool WriteInPieces(int fd, const std::string& data, std::mt19937_64& rng) {
  size_t off = 0;
  while (off < data.size()) {
    size_t n = rng() % 4 == 0 ? 1 + rng() % (256 << 10) : 8192;
    n = std::min(n, data.size() - off);
    if (write(fd, data.data() + off, n) != ssize_t(n)) return false;
    off += n;
  }
  return true;
}

struct Written {
  std::string data;
  bool synced = false;
  // Non-empty: the file was fsync'd with `data`, then partly overwritten without fsync so
  // that it would read `overwritten`; after a crash each byte is from one or the other.
  std::string overwritten;
};

class CrashTest : public MountTest {
 protected:
  CrashTest() : MountTest(std::chrono::seconds(300)) {}

  // Checks every file written so far against the rules above; records what unsynced files
  // turned out to hold, so that later checks expect exactly that.
  void CheckAfterCrash(const std::string& context) {
    for (auto& [name, w] : files_) {
      int err = 0;
      const std::string path = mnt_ + "/" + name;
      struct stat st;
      if (stat(path.c_str(), &st) != 0) {
        ASSERT_FALSE(w.synced) << context << ": fsync'd file " << name
                               << " is missing: " << strerror(errno) << "\n"
                               << fs_->DaemonLog();
        continue;
      }
      const std::string got = ReadWhole(path, &err);
      ASSERT_EQ(err, 0) << context << ": reading " << name << ": " << strerror(err);
      ASSERT_EQ(uint64_t(st.st_size), got.size()) << context << ": " << name;
      if (!w.overwritten.empty()) {
        ASSERT_EQ(got.size(), w.data.size()) << context << ": fsync'd file " << name;
        size_t new_bytes = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          if (got[i] != w.data[i]) {
            ASSERT_EQ(got[i], w.overwritten[i])
                << context << ": fsync'd, then overwritten file " << name << " byte " << i
                << " is neither the synced nor the overwriting byte";
            ++new_bytes;
          }
        }
        std::printf("  %s: overwritten %s: %zu bytes differ from the synced version\n",
                    context.c_str(), name.c_str(), new_bytes);
        w.data = got;
        w.overwritten.clear();
        continue;
      }
      if (w.synced) {
        ASSERT_EQ(got.size(), w.data.size()) << context << ": fsync'd file " << name;
        ASSERT_TRUE(got == w.data) << context << ": fsync'd file " << name << " has other content";
        continue;
      }
      ASSERT_LE(got.size(), w.data.size()) << context << ": unsynced file " << name;
      size_t kept = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] == w.data[i]) {
          ++kept;
        } else {
          ASSERT_EQ(got[i], '\0') << context << ": unsynced file " << name << " byte " << i
                                  << " is neither the written byte nor zero";
        }
      }
      std::printf("  %s: unsynced %s: %zu of %zu bytes present, %zu matching\n", context.c_str(),
                  name.c_str(), got.size(), w.data.size(), kept);
      // From now on the file must keep what the crash left.
      w.data = got;
      w.synced = true;
    }
    EXPECT_EQ(StatValue(mnt_, "read_errors"), 0u) << context;
  }

  // Runs `rankfs fsck STORE` (check only; the store must not be mounted). After a crash the
  // store may leak space (reference counts err high, orphans not yet released), but nothing
  // may point at missing or damaged data and no reference count may be too low.
  void ExpectFsckFindsNoLostData(const std::string& context) {
    auto r = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    // The finding lines (not their indented details), for the log.
    std::string findings;
    size_t start = 0;
    for (int shown = 0; start < r->output.size() && shown < 6;) {
      size_t end = r->output.find('\n', start);
      if (end == std::string::npos) end = r->output.size();
      const std::string line = r->output.substr(start, end - start);
      if (!line.empty() && line[0] != ' ' && line.rfind("rankfs fsck", 0) != 0) {
        findings += "\n    " + line;
        ++shown;
      }
      start = end + 1;
    }
    std::printf("  %s: fsck exit %d%s\n", context.c_str(), r->exit_code, findings.c_str());
    EXPECT_TRUE(r->exit_code == 0 || r->exit_code == 4) << context << ":\n" << r->output;
    for (const char* bad : {"damaged chunk", "refcount too low", "missing chunk",
                            "extent out of range", "bad pack header"}) {
      EXPECT_EQ(r->output.find(bad), std::string::npos) << context << ":\n" << r->output;
    }
  }

  std::map<std::string, Written> files_;  // name relative to the mount -> expectation
};

TEST_F(CrashTest, FsyncedFilesSurviveKill9AndOthersAreNeverGarbage) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const uint64_t seeds[] = {11, 2024, 777777};
  for (int round = 0; round < 3; ++round) {
    const uint64_t seed = seeds[round];
    std::mt19937_64 rng(seed);
    const std::string dir = "round" + std::to_string(round);
    ASSERT_EQ(mkdir((mnt_ + "/" + dir).c_str(), 0755), 0) << strerror(errno);
    const std::string pool = MakeRealData(24 << 20, seed);

    // Ten files; the even ones are fsync'd (then left alone), the odd ones are not. Sizes from
    // a few bytes to 6 MiB; some of the data is shared between files.
    std::vector<int> open_fds;
    for (int i = 0; i < 10; ++i) {
      const std::string name = dir + "/file" + std::to_string(i);
      const size_t size = i % 5 == 4 ? rng() % 100 : 1 + rng() % (6 << 20);
      const size_t from = rng() % (pool.size() - size);
      Written w;
      w.data = pool.substr(from, size);
      w.synced = i % 2 == 0;
      int fd = open((mnt_ + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ASSERT_GE(fd, 0) << name << ": " << strerror(errno);
      ASSERT_TRUE(WriteInPieces(fd, w.data, rng)) << name << ": " << strerror(errno);
      if (w.synced) {
        ASSERT_EQ(fsync(fd), 0) << name << ": " << strerror(errno);
      }
      // Some files are closed, some stay open across the crash.
      if (rng() % 2 == 0) {
        ASSERT_EQ(close(fd), 0) << name << ": " << strerror(errno);
      } else {
        open_fds.push_back(fd);
      }
      files_[name] = std::move(w);
    }
    // An fsync'd file, then overwritten in its middle (and in place) without fsync.
    {
      const std::string name = dir + "/rewritten";
      Written w;
      w.data = pool.substr(rng() % (pool.size() - (3 << 20)), 3 << 20);
      w.synced = true;
      int fd = open((mnt_ + "/" + name).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
      ASSERT_GE(fd, 0);
      ASSERT_TRUE(WriteInPieces(fd, w.data, rng));
      ASSERT_EQ(fsync(fd), 0) << strerror(errno);
      w.overwritten = w.data;
      const size_t off = 100000 + rng() % 100000, len = (1 << 20) + rng() % 65536;
      const std::string patch = MakeRandomData(len, seed);
      w.overwritten.replace(off, len, patch);
      ASSERT_EQ(pwrite(fd, patch.data(), len, off_t(off)), ssize_t(len));
      if (rng() % 2 == 0) {
        ASSERT_EQ(close(fd), 0);
      } else {
        open_fds.push_back(fd);
      }
      files_[name] = std::move(w);
    }
    // An unsynced append-only stream written last, still open at the crash.
    {
      const std::string name = dir + "/stream";
      Written w;
      w.data = pool.substr(rng() % (pool.size() - (4 << 20)), 4 << 20);
      int fd = open((mnt_ + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ASSERT_GE(fd, 0);
      ASSERT_TRUE(WriteInPieces(fd, w.data, rng));
      open_fds.push_back(fd);
      files_[name] = std::move(w);
    }
    // An open file whose name is gone: after the crash it must stay gone (orphan list).
    {
      const std::string path = mnt_ + "/" + dir + "/orphan";
      int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(write(fd, pool.data(), 1 << 20), 1 << 20);
      ASSERT_EQ(fsync(fd), 0);
      ASSERT_EQ(unlink(path.c_str()), 0);
      int dfd = open((mnt_ + "/" + dir).c_str(), O_RDONLY | O_DIRECTORY);
      ASSERT_GE(dfd, 0);
      EXPECT_EQ(fsync(dfd), 0) << strerror(errno);  // makes the unlink durable (POSIX)
      close(dfd);
      open_fds.push_back(fd);
    }

    // A writer still appending when the daemon dies (it stops at the first failed write). The
    // kill waits until it has written a quarter of its 64 MiB, so that it is mid-stream then.
    std::thread live;
    std::atomic<size_t> live_written{0};
    {
      const std::string name = dir + "/live";
      Written w;
      for (int i = 0; i < 16; ++i) w.data += pool.substr(size_t(i) << 20, 4 << 20);  // 64 MiB
      int fd = open((mnt_ + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ASSERT_GE(fd, 0);
      files_[name] = w;
      open_fds.push_back(fd);
      live = std::thread([fd, data = std::move(w.data), &live_written] {
        for (size_t off = 0; off < data.size(); off += 8192) {
          if (write(fd, data.data() + off, std::min<size_t>(8192, data.size() - off)) <= 0) break;
          live_written = off + 8192;
        }
      });
      if (!WaitUntil([&] { return live_written.load() >= (16u << 20); })) {
        ADD_FAILURE() << "the live writer wrote only " << live_written.load() << " bytes";
      }
    }

    Status s = fs_->Kill9();
    live.join();
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (int fd : open_fds) close(fd);  // the connection is gone; errors are expected
    fs_.reset();

    ASSERT_NO_FATAL_FAILURE(ExpectFsckFindsNoLostData("fsck after crash " + std::to_string(round)));
    ASSERT_NO_FATAL_FAILURE(Mount());
    const std::string context =
        "after crash " + std::to_string(round) + " (seed " + std::to_string(seed) + ")";
    ASSERT_NO_FATAL_FAILURE(CheckAfterCrash(context));
    struct stat st;
    EXPECT_NE(stat((mnt_ + "/" + dir + "/orphan").c_str(), &st), 0)
        << context << ": the unlinked file came back";
  }

  // Clean unmount: files written without fsync are all intact afterwards, and so is
  // everything recovered above.
  {
    std::mt19937_64 rng(99);
    const std::string pool = MakeRealData(16 << 20, 99);
    ASSERT_EQ(mkdir((mnt_ + "/clean").c_str(), 0755), 0);
    for (int i = 0; i < 6; ++i) {
      const std::string name = "clean/file" + std::to_string(i);
      const size_t size = 1 + rng() % (5 << 20);
      Written w;
      w.data = pool.substr(rng() % (pool.size() - size), size);
      w.synced = true;  // expected exactly
      int fd = open((mnt_ + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ASSERT_GE(fd, 0);
      ASSERT_TRUE(WriteInPieces(fd, w.data, rng));
      ASSERT_EQ(close(fd), 0);
      files_[name] = std::move(w);
    }
    Status s = fs_->Unmount();
    ASSERT_TRUE(s.ok()) << s.ToString();
    fs_.reset();
    ASSERT_NO_FATAL_FAILURE(Mount());
    ASSERT_NO_FATAL_FAILURE(CheckAfterCrash("after clean remount"));
  }

  // What the crashes leaked, fsck --repair gives back: then the store checks clean, every file
  // is still intact, and deleting everything empties the packs.
  {
    Status s = fs_->Unmount();
    ASSERT_TRUE(s.ok()) << s.ToString();
    fs_.reset();
    auto repair =
        RunCommand({RANKFS_BINARY, "fsck", "--repair", store_}, std::chrono::seconds(120));
    ASSERT_TRUE(repair.ok());
    EXPECT_TRUE(repair->exit_code == 0 || repair->exit_code == 1) << repair->output;
    auto check = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(120));
    ASSERT_TRUE(check.ok());
    EXPECT_EQ(check->exit_code, 0) << "after --repair:\n"
                                   << check->output << "\nthe repair said:\n"
                                   << repair->output;
    ASSERT_NO_FATAL_FAILURE(Mount());
    ASSERT_NO_FATAL_FAILURE(CheckAfterCrash("after fsck --repair"));
    auto rm = RunCommand({"sh", "-c", "rm -rf " + mnt_ + "/*"}, std::chrono::seconds(120));
    ASSERT_TRUE(rm.ok());
    ASSERT_EQ(rm->exit_code, 0) << rm->output;
    uint64_t physical = 0;
    WaitUntil([&] { return (physical = StatValue(mnt_, "physical_bytes")) <= (256 << 10); });
    EXPECT_LE(physical, uint64_t(256) << 10) << "bytes still allocated 60 s after rm -rf";
    EXPECT_EQ(StatValue(mnt_, "logical_bytes"), 0u);
  }
}

}  // namespace
}  // namespace rankfs
