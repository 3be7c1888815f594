// Faults with the real job (issue #25 item 5): tests/realstack/datasets_job.py, four ranks, on a
// mount, and something goes wrong mid-map. In every case a file the test wrote and fsync'd
// before the job stays byte-exact (nothing else on the mount is lost) and `rankfs fsck` is
// clean at the end.
//  - A rank killed with SIGKILL mid-map: the job fails as it does on ext4 (torch.distributed.run
//    reports the rank's SIGKILL and exits 1), the mount stays up, the leftover hf_datasets-*
//    directories can be removed.
//  - The store's disk fills up during the map (the store on a small tmpfs): the job fails with
//    ENOSPC ("No space left on device") as an error, not a hang; the leftovers can be
//    removed, and once the disk has room again new files can be written and read without a
//    remount.
//  - The daemon killed (SIGKILL) mid-job: the job ends with an error within a bounded time
//    (60 s after the kill), and a remount serves every file that was fsync'd: the test's own
//    and the one each rank wrote and fsync'd before its map.
// The corpus is 20 MiB (not item 2's 100 MiB): enough for a map that runs for many seconds,
// and CI time stays low.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>

#include <algorithm>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "tests/realstack/datasets_fixture.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kCorpusMib = 20;

// The first line of `log` that names an error (what a job's user would read first).
std::string FirstError(const std::string& log) {
  std::stringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("Error") != std::string::npos || line.find("error") != std::string::npos) {
      return line.substr(0, 300);
    }
  }
  return "(none)";
}

// Whether some file under `dir` has a name starting with "tmp" and holds bytes: a map writer
// (datasets writes each shard into a tmpXXXX name, then renames it) is under way.
bool MapWriting(const std::string& dir) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->path().filename().string().rfind("tmp", 0) == 0 && it->is_regular_file(size_ec) &&
        it->file_size(size_ec) > 0 && !size_ec) {
      return true;
    }
  }
  return false;
}

class DatasetsFaultsTest : public DatasetsMountTest {
 protected:
  // Writes the test's marker file into the mount and fsyncs it.
  void WriteMarker() {
    marker_ = MakeRandomData(2 << 20, 4242);
    ASSERT_EQ(WriteSynced(mnt_ + "/marker.bin", marker_), 0);
  }
  static int WriteSynced(const std::string& path, const std::string& data) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return errno;
    int err = write(fd, data.data(), data.size()) == ssize_t(data.size()) ? 0 : errno;
    if (err == 0 && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && err == 0) err = errno;
    return err;
  }
  void ExpectMarker() { EXPECT_TRUE(FileText(mnt_ + "/marker.bin") == marker_) << "marker lost"; }

  // Starts the job (four ranks, 20 MiB corpus) on a thread; its log grows at LogPath(name).
  std::future<JobOutcome> StartJob(const std::string& name, std::vector<std::string> args) {
    const std::string data = Corpus(kCorpusMib);
    EXPECT_FALSE(data.empty());
    args.insert(args.end(), {"--data", data, "--cache-root", mnt_});
    auto argv = JobArgv(kRanks, args);
    auto env = JobEnv();
    const std::string log = LogPath(name);
    return std::async(std::launch::async, [argv, env, log, this] {
      return Outcome(RunJob(argv, env, home_, seconds(900), log), kRanks);
    });
  }
  std::string LogPath(const std::string& name) { return tmp_.Join(name + ".log"); }
  // Waits until rank `rank` is in its map and a map writer has bytes in the mount.
  void WaitForMap(const std::string& name, int rank) {
    ASSERT_TRUE(WaitUntil(
        [&] {
          return KeyValues(FileText(LogPath(name))).count("phase_rank" + std::to_string(rank)) &&
                 MapWriting(mnt_);
        },
        seconds(600), std::chrono::milliseconds(50)))
        << "the map never started:\n"
        << FileText(LogPath(name));
  }

  // Removes the leftover per-rank directories (rm -rf); the mount must then hold only `keep`.
  // Returns how many hf_datasets-* directories there were.
  int RemoveLeftovers(const std::vector<std::string>& keep) {
    int rank_dirs = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(mnt_, ec)) {
      const std::string name = e.path().filename().string();
      if (std::find(keep.begin(), keep.end(), name) != keep.end()) continue;
      rank_dirs += name.rfind("hf_datasets-", 0) == 0;
      std::filesystem::remove_all(e.path(), ec);
      EXPECT_FALSE(ec) << "rm -rf " << e.path() << ": " << ec.message();
    }
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(std::filesystem::directory_iterator(mnt_, ec)->path().filename(), keep.at(0));
    return rank_dirs;
  }

  std::string marker_;
};

TEST_F(DatasetsFaultsTest, RankKilledMidMapFailsTheJobAndLeavesRemovableLeftovers) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteMarker());
  auto job = StartJob("kill-rank", {});
  ASSERT_NO_FATAL_FAILURE(WaitForMap("kill-rank", 1));
  const pid_t victim = std::stoi(KeyValues(FileText(LogPath("kill-rank")))["pid_rank1"]);
  ASSERT_EQ(kill(victim, SIGKILL), 0) << strerror(errno);
  const JobOutcome o = job.get();
  std::printf("job after SIGKILL of rank 1: exit %d, %.1f s; %s\n", o.result.exit_code,
              o.result.seconds, FirstError(o.result.log).c_str());
  EXPECT_FALSE(o.result.timed_out);
  EXPECT_EQ(o.result.exit_code, 1) << o.result.log;  // torch.distributed.run's ChildFailedError
  EXPECT_NE(o.result.log.find("Signal 9 (SIGKILL)"), std::string::npos) << o.result.log;
  EXPECT_EQ(o.done_ranks, 0);

  ASSERT_TRUE(fs_->IsMounted()) << fs_->DaemonLog();
  ExpectMarker();
  // As on ext4, the killed rank and the ranks SIGTERMed after it leave their directories.
  EXPECT_EQ(RemoveLeftovers({"marker.bin"}), kRanks);
  ExpectMarker();
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const CommandResult fsck = Fsck(store_);
  EXPECT_EQ(fsck.exit_code, 0) << fsck.output;
}

class DatasetsDiskFullTest : public DatasetsFaultsTest {
 protected:
  void SetUp() override {
    DatasetsFaultsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    disk_ = tmp_.Join("disk");
    ASSERT_EQ(mkdir(disk_.c_str(), 0755), 0);
    if (mount("rankfs-test", disk_.c_str(), "tmpfs", 0, kDiskOptions) != 0) {
      RANKFS_SKIP("cannot mount a tmpfs: " << strerror(errno));
    }
    disk_mounted_ = true;
    store_ = disk_ + "/store";
  }
  void TearDown() override {
    if (fs_) fs_->Unmount().IgnoreError();
    fs_.reset();
    if (disk_mounted_ && umount2(disk_.c_str(), 0) != 0) umount2(disk_.c_str(), MNT_DETACH);
  }
  // Sized so that loading the corpus fits and the map's output does not (see the test).
  static constexpr const char* kDiskOptions = "size=16m,mode=0755";
  std::string disk_;
  bool disk_mounted_ = false;
};

TEST_F(DatasetsDiskFullTest, EnospcMidMapIsAnErrorAndTheMountWorksOnceSpaceIsFreed) {
  ASSERT_NO_FATAL_FAILURE(Mount("reserve=4m"));
  ASSERT_NO_FATAL_FAILURE(WriteMarker());
  auto job = StartJob("disk-full", {});
  const JobOutcome o = job.get();
  std::printf("job on a full disk: exit %d, %.1f s; %s\n", o.result.exit_code, o.result.seconds,
              FirstError(o.result.log).c_str());
  EXPECT_FALSE(o.result.timed_out);
  EXPECT_NE(o.result.exit_code, 0);
  EXPECT_NE(o.result.log.find("No space left on device"), std::string::npos) << o.result.log;
  // The map's writer met it (datasets' _map_single, closing its Arrow file), not the loading.
  EXPECT_NE(o.result.log.find("in _map_single"), std::string::npos) << o.result.log;
  EXPECT_EQ(o.kv.count("digest_rank0"), 0u) << "the map fit on the disk:\n" << o.result.log;

  ASSERT_TRUE(fs_->IsMounted()) << fs_->DaemonLog();
  ExpectMarker();
  const uint64_t data_before = StoreDataBytes(store_);
  RemoveLeftovers({"marker.bin"});
  std::printf("store data bytes: %llu with the leftovers, %llu after rm -rf\n",
              (unsigned long long)data_before, (unsigned long long)StoreDataBytes(store_));
  // Little of the disk is chunk data (the ranks' files failed before most of it was stored:
  // 2.1 MB of packs before and after the rm -rf in one run); the rest is the store's metadata
  // (RocksDB's log of the job's extents and of their deletion), which stays until a
  // compaction and may keep the disk below the reserve: in one CI replica of 3 the 4 MiB write
  // below then failed with ENOSPC. The user's "space is freed" is modelled by the disk
  // growing, as deleting unrelated files on it would do.
  ASSERT_EQ(mount("rankfs-test", disk_.c_str(), "tmpfs", MS_REMOUNT, "size=64m,mode=0755"), 0)
      << strerror(errno);
  const std::string fresh = MakeRandomData(4 << 20, 99);
  EXPECT_EQ(WriteSynced(mnt_ + "/after.bin", fresh), 0);
  EXPECT_TRUE(FileText(mnt_ + "/after.bin") == fresh);
  ExpectMarker();
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const CommandResult fsck = Fsck(store_);
  EXPECT_EQ(fsck.exit_code, 0) << fsck.output;
}

TEST_F(DatasetsFaultsTest, DaemonKilledMidJobIsAnErrorAndARemountServesWhatWasFsynced) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_NO_FATAL_FAILURE(WriteMarker());
  auto job = StartJob("kill-daemon", {"--fsync-marker"});
  ASSERT_NO_FATAL_FAILURE(WaitForMap("kill-daemon", 0));
  ASSERT_TRUE(WaitUntil([&] {
    auto kv = KeyValues(FileText(LogPath("kill-daemon")));
    for (int r = 0; r < kRanks; ++r) {
      if (!kv.count("fsynced_rank" + std::to_string(r))) return false;
    }
    return true;
  }));
  const std::string before = FileText(LogPath("kill-daemon"));
  ASSERT_TRUE(fs_->Kill9().ok());
  const auto killed = Clock::now();
  ASSERT_EQ(job.wait_for(seconds(120)), std::future_status::ready) << "the job hangs";
  const JobOutcome o = job.get();
  const double after_s = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf(
      "job after the daemon's SIGKILL: exit %d signal %d, ended %.1f s after the kill; %s\n",
      o.result.exit_code, o.result.term_signal, after_s, FirstError(o.result.log).c_str());
  EXPECT_LE(after_s, 60.0);
  EXPECT_FALSE(o.result.timed_out);
  EXPECT_NE(o.result.exit_code, 0) << o.result.log;
  EXPECT_EQ(o.done_ranks, 0) << o.result.log;

  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectMarker();
  for (int r = 0; r < kRanks; ++r) {
    const std::string path = mnt_ + "/fsynced-" + std::to_string(r) + ".bin";
    auto sum = RunCommand({"sha256sum", path});
    ASSERT_TRUE(sum.ok());
    EXPECT_EQ(sum->output.substr(0, 64),
              KeyValues(before)["fsynced_sha256_rank" + std::to_string(r)])
        << path;
  }
  RemoveLeftovers({"marker.bin"});
  ASSERT_NO_FATAL_FAILURE(Unmount());
  // A crash may leak references (counts err high, docs/reliability.md): fsck may report that
  // (exit 4) but nothing lost or damaged; --repair gives it back and fsck is then clean.
  const CommandResult check = Fsck(store_);
  std::printf("fsck after the crash: exit %d\n%s\n", check.exit_code, check.output.c_str());
  EXPECT_TRUE(check.exit_code == 0 || check.exit_code == 4) << check.output;
  for (const char* bad : {"damaged chunk", "refcount too low", "missing chunk"}) {
    EXPECT_EQ(check.output.find(bad), std::string::npos) << check.output;
  }
  if (check.exit_code != 0) {
    const CommandResult repair = Fsck(store_, /*repair=*/true);
    EXPECT_TRUE(repair.exit_code == 0 || repair.exit_code == 1) << repair.output;
    const CommandResult again = Fsck(store_);
    EXPECT_EQ(again.exit_code, 0) << again.output;
  }
}

}  // namespace
}  // namespace rankfs
