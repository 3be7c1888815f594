// An unmodified job on the mount: 4 python3 processes (tests/integration/python_job.py, the
// standard library only) run at once, each like one rank of a training job caching its
// preprocessed dataset: TemporaryDirectory in the mount, 8 KiB-buffered writes into a tmp
// name, os.replace, os.chmod, mmap read-back checked by SHA-256, rmtree at the end.
// Checks: every rank exits 0; while all 4 files exist the store holds about one copy; the
// mount is empty afterwards; and the packs' space falls back within 5 s of the rmtrees.
//
// Needs root, /dev/fuse and python3 (skips otherwise).
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kRanks = 4;
constexpr int kMegabytes = 16;  // per rank

std::map<std::string, uint64_t> ReadStats(const std::string& mnt) {
  std::map<std::string, uint64_t> out;
  std::ifstream in(mnt + "/.rankfs-stats");
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos || line.find('.', eq) != std::string::npos) continue;  // ratios
    out[line.substr(0, eq)] = std::stoull(line.substr(eq + 1));
  }
  return out;
}

uint64_t PackBytes(const std::string& store) {
  uint64_t total = 0;
  DIR* d = opendir((store + "/packs").c_str());
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    struct stat st;
    const std::string name = e->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".pack") == 0 &&
        stat((store + "/packs/" + name).c_str(), &st) == 0) {
      total += uint64_t(st.st_blocks) * 512;
    }
  }
  closedir(d);
  return total;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return {"<opendir failed>"};
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  return names;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

class PythonJobTest : public MountTest {
 protected:
  PythonJobTest() : MountTest(std::chrono::seconds(400)) {}
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto v = RunCommand({"python3", "--version"});
    if (!v.ok() || v->exit_code != 0) RANKFS_SKIP("needs python3 in PATH");
    barrier_ = tmp_.Join("barrier");
    ASSERT_EQ(mkdir(barrier_.c_str(), 0755), 0);
  }

  std::string barrier_;
};

TEST_F(PythonJobTest, FourRanksCacheVerifyAndCleanUp) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string script = std::string(RANKFS_SOURCE_DIR) + "/tests/integration/python_job.py";
  ASSERT_TRUE(Exists(script)) << script;

  const auto t0 = Clock::now();
  std::vector<Result<CommandResult>> results(kRanks, Status(EINTR, "not run"));
  std::vector<std::thread> ranks;
  for (int r = 0; r < kRanks; ++r) {
    ranks.emplace_back([&, r] {
      results[size_t(r)] = RunCommand(
          {"python3", script, mnt_, std::to_string(r), std::to_string(kMegabytes), barrier_},
          std::chrono::seconds(300));
    });
  }
  // Joins the ranks on every way out of the test body (a failed ASSERT included), after
  // letting them past the barrier.
  struct Joiner {
    std::vector<std::thread>* threads;
    std::string go;
    ~Joiner() {
      if (FILE* f = std::fopen(go.c_str(), "w")) std::fclose(f);
      for (auto& t : *threads) t.join();
    }
  } joiner{&ranks, barrier_ + "/go"};

  // All 4 files written and verified, none removed yet: the store should hold one copy.
  const auto deadline = Clock::now() + std::chrono::seconds(240);
  int ready = 0;
  while (Clock::now() < deadline) {
    ready = 0;
    for (int r = 0; r < kRanks; ++r) ready += Exists(barrier_ + "/ready-" + std::to_string(r));
    if (ready == kRanks) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  uint64_t peak_packs = 0;
  std::map<std::string, uint64_t> peak;
  if (ready == kRanks) {
    WaitUntil([&] { return (peak = ReadStats(mnt_))["dirty_bytes"] == 0; },  // nothing buffered
              std::chrono::seconds(60), std::chrono::milliseconds(50));
    peak_packs = PackBytes(store_);
  }
  const double write_s = std::chrono::duration<double>(Clock::now() - t0).count();
  {
    std::FILE* f = std::fopen((barrier_ + "/go").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  for (auto& t : ranks) t.join();
  ranks.clear();
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();

  for (int r = 0; r < kRanks; ++r) {
    ASSERT_TRUE(results[size_t(r)].ok()) << results[size_t(r)].status().ToString();
    EXPECT_EQ(results[size_t(r)]->exit_code, 0) << "rank " << r << ":\n"
                                                << results[size_t(r)]->output << "\n"
                                                << fs_->DaemonLog();
    std::printf("  %s", results[size_t(r)]->output.c_str());
  }
  ASSERT_EQ(ready, kRanks) << "not every rank reached the barrier";
  std::printf(
      "python_job: %d ranks x %d MiB written and verified in %.1f s (all done in %.1f "
      "s); at the peak: logical %llu, unique %llu, stored %llu, physical %llu, packs "
      "%llu bytes\n",
      kRanks, kMegabytes, write_s, total_s, (unsigned long long)peak["logical_bytes"],
      (unsigned long long)peak["unique_bytes"], (unsigned long long)peak["stored_bytes"],
      (unsigned long long)peak["physical_bytes"], (unsigned long long)peak_packs);
  EXPECT_EQ(peak["dirty_bytes"], 0u);
  EXPECT_GE(peak["logical_bytes"], uint64_t(kRanks) * (kMegabytes << 20));
  EXPECT_GT(peak_packs, 0u);
  // Four copies of the payload (shifted by the rank headers) take about one: well under a
  // third of the logical bytes even before compression.
  EXPECT_LT(peak["unique_bytes"], peak["logical_bytes"] / 3);
  EXPECT_LT(peak_packs, peak["logical_bytes"] / 3);

  // The job cleaned up: nothing left in the mount (the stats file is never listed).
  EXPECT_EQ(ListDir(mnt_), std::vector<std::string>{});
  // And the space comes back (space_test holds its pace to a bar).
  uint64_t packs = 0;
  std::map<std::string, uint64_t> stats;
  const auto reclaim_start = Clock::now();
  WaitUntil(
      [&] {
        packs = PackBytes(store_);
        stats = ReadStats(mnt_);
        return packs <= (256 << 10) && stats["physical_bytes"] <= (256 << 10) &&
               stats["logical_bytes"] == 0;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(50));
  std::printf(
      "python_job: %.2f s after the last rmtree: packs %llu bytes, physical_bytes %llu, "
      "logical_bytes %llu, reclaim_backlog_bytes %llu\n",
      std::chrono::duration<double>(Clock::now() - reclaim_start).count(),
      (unsigned long long)packs, (unsigned long long)stats["physical_bytes"],
      (unsigned long long)stats["logical_bytes"],
      (unsigned long long)stats["reclaim_backlog_bytes"]);
  EXPECT_EQ(stats["logical_bytes"], 0u);
  EXPECT_LE(packs, uint64_t(256) << 10) << "of " << peak_packs << " at the peak";
  EXPECT_LE(stats["physical_bytes"], uint64_t(256) << 10);
}

}  // namespace
}  // namespace rankfs
