// ms-swift 4.6.0 `swift sft`, four ranks on CPU (gloo), on rankfs, for real (issue #25 item 3).
// The model is a tiny Qwen2 with random weights and the tokenizer is trained by the test
// (tests/realstack/swift_tiny_model.py, realstack_data.py); nothing comes from a hub.
//
// Caching off (a plugin calls datasets.disable_caching(), as ms-swift <= 3.4.0 did itself):
// every rank writes its own hf_datasets-* directory under hub/tmp, where rankfs is mounted.
// The yardstick for the store's peak is "one compressed copy of one rank's directory": the
// plugin has rank 0 copy its own directory out of the mount (to ext4) at exit, before it is
// removed, and the test copies that into a fresh store of its own and takes its data bytes
// (StoreDataBytes, after the unmount). Four ranks writing the same bytes concurrently must
// cost at most 1.15x that. The 8 MiB corpus gives each rank a directory of ~12 MB (three
// Arrow files); the per-rank copy is what matters, not the corpus, and a smaller one keeps
// the four jobs of this file within their CI budget.
//
// Caching on (ms-swift's default since 3.4.1): rank 0 preprocesses, the others load its files
// from hub/datasets/..., which stay after the job. rankfs is mounted over the whole hub. Two
// jobs that differ only in --max_length leave two sets of cache files; after an unmount, fsck
// and a fresh mount, the second job's files are byte-identical, and a rerun of the second job
// loads them on every rank ("Loading cached ...") and rewrites none (same inode and mtime).
// The rerun says --load_from_cache_file true: ms-swift's default (false since 3.9; "true"
// recommended for actual runs) makes rank 0 recompute and rewrite its cache files on every
// run (the same bytes, which rankfs stores no second time) while the other ranks load them.
//
// torch/ms-swift sometimes abort one rank in interpreter teardown after the work is done
// ("terminate called without an active exception"). Such a job counts as finished only if
// every rank reached its normal exit (the exit-marker plugin says so per rank) and every rank
// torchrun reports failed died of SIGABRT; the test then says so in its output and in the XML
// property "teardown_aborts" (docs/testing.md). Anything else is a failure.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/real_stack.h"

namespace rankfs {
namespace {

constexpr int kRanks = 4;
constexpr int kCorpusMiB = 8;
constexpr auto kJobTimeout = std::chrono::seconds(600);

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// The last `n` characters of a job's log, for failure messages.
std::string Tail(const std::string& log, size_t n = 6000) {
  return log.size() <= n ? log : "...\n" + log.substr(log.size() - n);
}

// A TCP port nobody listens on now, for torchrun's rendezvous (other jobs on the machine may
// hold the default 29500).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 29500;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// What a finished `swift sft` job left in its log.
struct SftOutcome {
  bool finished = false;        // every rank finished its work (see teardown_abort)
  bool teardown_abort = false;  // ... and some rank then died of SIGABRT in teardown
  std::string why;              // why not finished
  double train_loss = NAN;
  std::vector<std::string> rank_dirs[kRanks];  // each rank's hf_datasets-* directories
  bool dirs_removed[kRanks] = {};              // whether that rank's removal ran
};

SftOutcome Examine(const JobResult& r) {
  SftOutcome o;
  const auto kv = KeyValues(r.log);
  int exited = 0;
  for (int i = 0; i < kRanks; ++i) {
    const std::string rank = "rank" + std::to_string(i);
    auto begin = kv.find(rank + "_exit_begin");
    if (begin == kv.end()) continue;
    ++exited;
    std::stringstream dirs(begin->second);
    for (std::string d; std::getline(dirs, d, ',');) {
      if (d != "-") o.rank_dirs[i].push_back(d);
    }
    o.dirs_removed[i] = kv.count(rank + "_exit_end") > 0;
  }
  std::smatch m;
  if (std::regex_search(r.log, m, std::regex("'train_loss': ([^,}]+)"))) {
    o.train_loss = std::strtod(m[1].str().c_str(), nullptr);
  }
  if (r.timed_out) {
    o.why = "timed out";
  } else if (exited != kRanks) {
    o.why = std::to_string(exited) + " of " + std::to_string(kRanks) + " ranks reached exit";
  } else if (r.exit_code == 0) {
    o.finished = true;
  } else {
    // torchrun's failure report: one "exitcode : N (pid: P)" per failed rank, the first
    // failure under "Root Cause". Once one rank fails, torchrun sends SIGTERM to the others
    // and reports them too (-15); those ranks had reached their exit (checked above), so a
    // SIGTERM counts only as the consequence of a root cause that is itself a SIGABRT.
    const std::regex code("exitcode\\s*:\\s*(-?[0-9]+)");
    int aborts = 0, terms = 0, others = 0;
    for (auto it = std::sregex_iterator(r.log.begin(), r.log.end(), code);
         it != std::sregex_iterator(); ++it) {
      const std::string c = (*it)[1];
      (c == "-6" ? aborts : c == "-15" ? terms : others)++;
    }
    std::smatch root;
    const bool root_aborted =
        std::regex_search(r.log, root, std::regex("Root Cause[^\\n]*\\n(?:[^\\n]*\\n){0,4}?"
                                                   "\\s*exitcode\\s*:\\s*(-?[0-9]+)")) &&
        root[1] == "-6";
    o.teardown_abort = o.finished = aborts > 0 && others == 0 && (terms == 0 || root_aborted);
    if (!o.finished) o.why = "exit code " + std::to_string(r.exit_code) + ", not a teardown abort";
  }
  return o;
}

struct FileFacts {
  uint64_t size = 0, ino = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileFacts&) const = default;
};

// Every regular file under `dir` but datasets' lock files (empty, made and removed by every
// job), by path relative to it.
std::map<std::string, FileFacts> ListFiles(const std::string& dir) {
  std::map<std::string, FileFacts> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (it->path().extension() == ".lock") continue;
    out[std::filesystem::relative(it->path(), dir).string()] = {
        uint64_t(st.st_size), uint64_t(st.st_ino),
        int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  }
  return out;
}

// Bytes ext4 allocates for the same files (sizes rounded up to 4 KiB blocks).
uint64_t Ext4Bytes(const std::map<std::string, FileFacts>& files) {
  uint64_t total = 0;
  for (const auto& [path, f] : files) total += (f.size + 4095) / 4096 * 4096;
  return total;
}

// How often `datasets` said it loaded the cache file `path` ("Loading cached processed dataset
// at DIR/cache-FP_*_of_00001.arrow", "Loading cached shuffled indices for dataset at
// DIR/cache-FP.arrow").
int LoadedFromCache(const std::string& log, const std::string& path) {
  const std::string stem = path.substr(0, path.rfind('.'));
  std::stringstream lines(log);
  int n = 0;
  for (std::string line; std::getline(lines, line);) {
    n += Has(line, "Loading cached ") &&
         (Has(line, " at " + stem + "_*") || Has(line, " at " + path));
  }
  return n;
}

std::vector<std::string> HfDatasetsDirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("hf_datasets-", 0) == 0) out.push_back(name);
  }
  return out;
}

class SwiftSftTest : public MountTest {
 protected:
  SwiftSftTest() : MountTest(std::chrono::seconds(1500)) {}

  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    RANKFS_REQUIRE_REAL_STACK(python_);
    if (IsSkipped() || HasFatalFailure()) return;
    home_ = tmp_.Join("home");
    hub_ = home_ + "/.cache/modelscope/hub";
    std::filesystem::create_directories(home_ + "/.cache/modelscope");
    std::filesystem::create_directories(home_ + "/tmp");
    ASSERT_NO_FATAL_FAILURE(MakeInputs());
  }

  // The corpus, tokenizer and model, once per test binary (they do not depend on the mount).
  void MakeInputs() {
    static std::unique_ptr<TempDir> inputs;  // removed at exit, with the binary
    if (inputs == nullptr) {
      auto dir = std::make_unique<TempDir>("rankfs-swift-inputs-");
      const std::string data = dir->Join("data"), model = dir->Join("model");
      const auto env = RealStackEnv(python_, home_);
      JobResult d =
          RunJob({python_, RealStackScripts() + "/realstack_data.py", "--out", data, "--megabytes",
                  std::to_string(kCorpusMiB), "--seed", "25", "--format", "messages"},
                 env, tmp_.path(), std::chrono::seconds(300));
      ASSERT_EQ(d.exit_code, 0) << d.log;
      JobResult m = RunJob({python_, RealStackScripts() + "/swift_tiny_model.py", "--tokenizer",
                            data, "--out", model},
                           env, tmp_.path(), std::chrono::seconds(300));
      ASSERT_EQ(m.exit_code, 0) << m.log;
      inputs = std::move(dir);
    }
    corpus_ = inputs->Join("data/corpus.jsonl");
    model_ = inputs->Join("model");
  }

  // Runs `swift sft` on four ranks with the test's model and corpus, plus `args`; `plugins`
  // besides the exit marker.
  JobResult Sft(const std::string& name, const std::vector<std::string>& args,
                const std::vector<std::string>& plugins = {},
                const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {"swift",
                                     "sft",
                                     "--model",
                                     model_,
                                     "--model_type",
                                     "qwen2",
                                     "--template",
                                     "qwen",
                                     "--check_model",
                                     "false",
                                     "--tuner_type",
                                     "full",
                                     "--torch_dtype",
                                     "float32",
                                     "--ddp_backend",
                                     "gloo",
                                     "--dataset",
                                     corpus_,
                                     "--dataset_num_proc",
                                     "1",
                                     "--dataloader_num_workers",
                                     "0",
                                     "--max_steps",
                                     "2",
                                     "--per_device_train_batch_size",
                                     "2",
                                     "--gradient_accumulation_steps",
                                     "1",
                                     "--logging_steps",
                                     "1",
                                     "--save_strategy",
                                     "no",
                                     "--report_to",
                                     "none",
                                     "--output_dir",
                                     tmp_.Join("out-" + name),
                                     "--external_plugins",
                                     RealStackScripts() + "/swift_exit_marker_plugin.py"};
    for (const std::string& p : plugins) argv.push_back(RealStackScripts() + "/" + p);
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> extra = {"NPROC_PER_NODE=" + std::to_string(kRanks),
                                      "MASTER_PORT=" + std::to_string(FreePort()),
                                      "DATASETS_VERBOSITY=info"};
    extra.insert(extra.end(), env.begin(), env.end());
    JobResult r = RunJob(argv, RealStackEnv(python_, home_, extra), tmp_.path(), kJobTimeout,
                         tmp_.Join(name + ".log"));
    std::printf("[ job      ] %s: %.1f s, exit %d\n", name.c_str(), r.seconds, r.exit_code);
    return r;
  }

  // Asserts that the job finished with a finite loss; notes a teardown abort.
  void ExpectFinished(const JobResult& r, SftOutcome* o) {
    *o = Examine(r);
    ASSERT_TRUE(o->finished) << o->why << "\n" << Tail(r.log);
    EXPECT_TRUE(std::isfinite(o->train_loss)) << "train_loss " << o->train_loss;
    std::printf("[ job      ] train_loss %g\n", o->train_loss);
    if (o->teardown_abort) {
      ++teardown_aborts_;
      RecordProperty("teardown_aborts", teardown_aborts_);
      std::printf("[ note     ] a rank aborted in teardown after finishing (docs/testing.md)\n");
    }
  }

  void ExpectFsckClean() {
    auto r = RunCommand({RANKFS_BINARY, "fsck", store_}, std::chrono::seconds(300));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->exit_code, 0) << r->output;
  }

  std::string python_, home_, hub_, corpus_, model_;
  int teardown_aborts_ = 0;
};

TEST_F(SwiftSftTest, CachingOffStoresOneCopyOfTheRanksCaches) {
  ASSERT_EQ(mkdir(hub_.c_str(), 0755), 0);
  mnt_ = AddMountpoint("home/.cache/modelscope/hub/tmp");
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string kept = tmp_.Join("kept");
  ASSERT_EQ(mkdir(kept.c_str(), 0755), 0);

  PeakSampler peak([this] { return StoreDataBytes(store_); });
  JobResult r = Sft("off", {"--max_length", "512"}, {"swift_no_cache_plugin.py"},
                    {"RANKFS_KEEP_HF_DATASETS=" + kept});
  peak.Stop();
  SftOutcome o;
  ASSERT_NO_FATAL_FAILURE(ExpectFinished(r, &o));

  // Each rank had a directory of its own on the mount, and none is left.
  std::set<std::string> dirs;
  for (int i = 0; i < kRanks; ++i) {
    EXPECT_EQ(o.rank_dirs[i].size(), 1u) << "rank " << i << "\n" << Tail(r.log);
    dirs.insert(o.rank_dirs[i].begin(), o.rank_dirs[i].end());
  }
  EXPECT_EQ(dirs.size(), size_t(kRanks));
  EXPECT_TRUE(Has(r.log, "create tmp_dir: " + mnt_ + "/hf_datasets-")) << Tail(r.log);
  for (const std::string& left : HfDatasetsDirs(mnt_)) {
    bool aborted_before_removal = false;
    for (int i = 0; i < kRanks; ++i) {
      for (const std::string& d : o.rank_dirs[i]) {
        aborted_before_removal |= d == left && !o.dirs_removed[i] && o.teardown_abort;
      }
    }
    EXPECT_TRUE(aborted_before_removal) << left << " is left on the mount";
  }
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(ExpectFsckClean());

  // One compressed copy of rank 0's directory, in a fresh store of its own.
  const auto kept_dirs = HfDatasetsDirs(kept);
  ASSERT_EQ(kept_dirs.size(), 1u) << Tail(r.log);
  const auto one_rank = ListFiles(kept + "/" + kept_dirs[0]);
  ASSERT_GE(one_rank.size(), 1u);
  store_ = tmp_.Join("one-copy-store");
  mnt_ = AddMountpoint("one-copy");
  ASSERT_NO_FATAL_FAILURE(Mount());
  auto cp = RunCommand({"cp", "-a", kept + "/" + kept_dirs[0], mnt_ + "/"});
  ASSERT_TRUE(cp.ok() && cp->exit_code == 0) << (cp.ok() ? cp->output : cp.status().ToString());
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const uint64_t one_copy = StoreDataBytes(store_);

  std::printf(
      "[ bytes    ] one rank's hf_datasets: %zu files, %.1f MB (ext4 %.1f MB, four ranks "
      "%.1f MB); one compressed copy %.3f MB; peak store during the job %.3f MB "
      "(%.3fx one copy, %.3fx four ranks on ext4)\n",
      one_rank.size(), Ext4Bytes(one_rank) / 1e6, Ext4Bytes(one_rank) / 1e6,
      kRanks * Ext4Bytes(one_rank) / 1e6, one_copy / 1e6, peak.peak() / 1e6,
      double(peak.peak()) / one_copy, double(peak.peak()) / (kRanks * Ext4Bytes(one_rank)));
  RecordProperty("one_copy_bytes", std::to_string(one_copy));
  RecordProperty("peak_store_bytes", std::to_string(peak.peak()));
  ASSERT_GT(one_copy, 0u);
  EXPECT_LE(double(peak.peak()), 1.15 * one_copy);
}

TEST_F(SwiftSftTest, CachingOnCacheSurvivesRemountAndIsReused) {
  mnt_ = AddMountpoint("home/.cache/modelscope/hub");
  ASSERT_NO_FATAL_FAILURE(Mount());
  SftOutcome o;

  JobResult a = Sft("on-512", {"--max_length", "512"});
  ASSERT_NO_FATAL_FAILURE(ExpectFinished(a, &o));
  const auto after_a = ListFiles(mnt_);
  const uint64_t store_a = StoreDataBytes(store_);

  JobResult b = Sft("on-1024", {"--max_length", "1024"});
  ASSERT_NO_FATAL_FAILURE(ExpectFinished(b, &o));
  const auto after_b = ListFiles(mnt_);
  const uint64_t store_b = StoreDataBytes(store_);

  // The second job's cache files: those it wrote (new, or rewritten: a new inode or mtime).
  std::map<std::string, std::string> b_bytes;
  int b_new = 0;
  for (const auto& [path, f] : after_b) {
    auto old = after_a.find(path);
    if (path.find("cache-") == std::string::npos || (old != after_a.end() && old->second == f)) {
      continue;
    }
    b_new += old == after_a.end();
    b_bytes[path] = ReadAll(mnt_ + "/" + path);
  }
  ASSERT_GT(b_new, 0) << "the second job wrote no cache file of its own";
  std::printf(
      "[ bytes    ] caching on: after --max_length 512: %zu files, ext4 %.1f MB, "
      "store %.1f MB; after --max_length 1024: %zu files, ext4 %.1f MB, store %.1f MB\n",
      after_a.size(), Ext4Bytes(after_a) / 1e6, store_a / 1e6, after_b.size(),
      Ext4Bytes(after_b) / 1e6, store_b / 1e6);
  RecordProperty("store_bytes_after_a", std::to_string(store_a));
  RecordProperty("store_bytes_after_b", std::to_string(store_b));
  RecordProperty("ext4_bytes_after_a", std::to_string(Ext4Bytes(after_a)));
  RecordProperty("ext4_bytes_after_b", std::to_string(Ext4Bytes(after_b)));

  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(ExpectFsckClean());
  ASSERT_NO_FATAL_FAILURE(Mount());
  for (const auto& [path, bytes] : b_bytes) {
    EXPECT_TRUE(ReadAll(mnt_ + "/" + path) == bytes) << path << " changed across the remount";
  }

  JobResult again =
      Sft("on-1024-again", {"--max_length", "1024", "--load_from_cache_file", "true"});
  ASSERT_NO_FATAL_FAILURE(ExpectFinished(again, &o));
  // Reused: loaded, not rewritten (a rewrite renames a new file over the old: new inode).
  EXPECT_EQ(ListFiles(mnt_), after_b) << "the rerun changed the cache";
  for (const auto& [path, bytes] : b_bytes) {
    EXPECT_EQ(LoadedFromCache(again.log, mnt_ + "/" + path), kRanks)
        << path << " was not loaded from the cache\n"
        << Tail(again.log);
  }
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(ExpectFsckClean());
}

// The teardown-abort rule on logs shaped like the real ones: a job whose ranks all reached
// their exit and whose only failures are SIGABRTs (torchrun's "exitcode : -6") finished;
// a missing exit marker, any other exit code or a timeout does not.
JobResult FakeJob(int exit_code, int ranks_exited, const std::string& torchrun_report) {
  JobResult r;
  r.exit_code = exit_code;
  r.log = "{'train_loss': 36.5, 'epoch': 1.0}\n";
  for (int i = 0; i < ranks_exited; ++i) {
    r.log += "rank" + std::to_string(i) + "_exit_begin=/h/tmp/hf_datasets-" + std::to_string(i);
    r.log += "\nrank" + std::to_string(i) + "_exit_end=1\n";
  }
  r.log += torchrun_report;
  return r;
}

TEST(SwiftSftOutcome, TeardownAbortRule) {
  const std::string abort1 = "[1]:\n  exitcode  : -6 (pid: 4242)\n";
  const std::string segv1 = "[1]:\n  exitcode  : -11 (pid: 4242)\n";
  const std::string exit1 = "[2]:\n  exitcode  : 1 (pid: 4243)\n";

  SftOutcome clean = Examine(FakeJob(0, kRanks, ""));
  EXPECT_TRUE(clean.finished);
  EXPECT_FALSE(clean.teardown_abort);
  EXPECT_DOUBLE_EQ(clean.train_loss, 36.5);
  EXPECT_EQ(clean.rank_dirs[2], std::vector<std::string>{"/h/tmp/hf_datasets-2"});

  SftOutcome aborted = Examine(FakeJob(1, kRanks, abort1));
  EXPECT_TRUE(aborted.finished);
  EXPECT_TRUE(aborted.teardown_abort);

  EXPECT_FALSE(Examine(FakeJob(1, kRanks - 1, abort1)).finished) << "a rank never reached exit";
  EXPECT_FALSE(Examine(FakeJob(1, kRanks, segv1)).finished) << "SIGSEGV is not the known race";
  EXPECT_FALSE(Examine(FakeJob(1, kRanks, abort1 + exit1)).finished) << "another rank failed";

  // torchrun's report when rank 3 aborts in teardown and the agent then stops the others
  // (as CI saw it): the SIGTERMs follow from the abort, the job finished.
  const std::string term = "  exitcode  : -15 (pid: 4240)  (SIGTERM)\n";
  const std::string root_abort =
      "Root Cause (first observed failure):\n[0]:\n  time      : 2026-12-07_22:46:58\n"
      "  host      : localhost\n  rank      : 3 (local_rank: 3)\n"
      "  exitcode  : -6 (pid: 4243)  (SIGABRT)\n";
  SftOutcome stopped = Examine(FakeJob(1, kRanks, "Failures:\n[1]:\n" + term + root_abort));
  EXPECT_TRUE(stopped.finished);
  EXPECT_TRUE(stopped.teardown_abort);
  const std::string root_term =
      "Root Cause (first observed failure):\n[0]:\n  rank      : 3 (local_rank: 3)\n" + term;
  EXPECT_FALSE(Examine(FakeJob(1, kRanks, "Failures:\n[1]:\n" + abort1 + root_term)).finished)
      << "the first failure was a SIGTERM, not the known race";
  EXPECT_FALSE(Examine(FakeJob(1, kRanks - 1, "Failures:\n[1]:\n" + term + root_abort)).finished)
      << "a SIGTERMed rank had not reached its exit";
  EXPECT_FALSE(Examine(FakeJob(1, kRanks, "")).finished) << "failed without a report";
  JobResult hung = FakeJob(-1, kRanks, "");
  hung.timed_out = true;
  EXPECT_FALSE(Examine(hung).finished);
}

}  // namespace
}  // namespace rankfs
