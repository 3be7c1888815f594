// Power cuts without FUSE: FsCore over a store whose pack files and RocksDB files go through the
// fault-injecting Envs (store/fault_injection_env.h, store/rocks_fault_env.h) sharing one
// FaultController. Each round runs the concurrent writers of tests/testutil/crash_workload.h
// (fsyncers, never-synced writers, tmp->final renamers that fsync the directory, deleters)
// through FsCore calls, cuts the power at a random moment (the controller goes inactive: every
// further write, sync, rename, delete fails and changes nothing), tears FsCore and the store down
// as a dying process would leave them, drops every byte not synced (packs and RocksDB), runs
// Fsck (leaks and allocated bytes that count lost batches allowed, no damage), "reboots"
// (reopens the store and FsCore on what survived) and checks the ledger's rules. The previous
// round's directory is re-checked exactly, then deleted. All rounds share one store, so later
// rounds recover a store that was itself recovered.
//
// A round may also meet a disk that says no before the cut (RoundFaults): pack fdatasyncs that
// fail (the fault Env drops what they did not sync, as Linux may; writers see EIO and fsync
// again), or a RocksDB WAL sync that fails, either the ordinary way or after it made the write
// durable (RocksDB then refuses every write: that moment counts as the crash).
//
// RANKFS_POWER_CUT_ITERATIONS sets the rounds (default 50; 10 under sanitizers),
// RANKFS_POWER_CUT_SEED the seed (default random, printed).
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "fs/fs_core.h"
#include "store/fault_injection_env.h"
#include "store/fsck.h"
#include "store/logging.h"
#include "store/rocks_fault_env.h"
#include "store/store.h"
#include "tests/testutil/crash_workload.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_env.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

int Rc(const Status& s) { return s.ok() ? 0 : -(s.code() != 0 ? s.code() : 5); }

// CrashTarget over FsCore, calling it the way the libfuse glue does (a lookup per returned
// entry, forgotten when the "kernel" drops it; flush then release on close).
class CoreTarget final : public CrashTarget {
 public:
  explicit CoreTarget(FsCore* fs) : fs_(fs) {}

  int MkDir(const std::string& dir) override {
    auto a = fs_->MkDir(kRootIno, dir, 0755, caller_);
    if (!a.ok()) return Rc(a.status());
    fs_->Forget(a->ino, 1);
    return 0;
  }
  int Create(const std::string& name) override {
    Ino parent;
    if (int rc = Parent(name, &parent); rc != 0) return rc;
    auto a = fs_->Create(parent, Base(name), 0644, O_WRONLY | O_CREAT | O_TRUNC, caller_);
    if (!a.ok()) return Rc(a.status());
    std::lock_guard<std::mutex> l(mu_);
    handles_[next_handle_] = a->ino;
    return next_handle_++;
  }
  int Write(int h, uint64_t offset, std::string_view data) override {
    return Rc(fs_->Write(Handle(h), offset, data));
  }
  int Fsync(int h) override { return Rc(fs_->Fsync(Handle(h), false)); }
  int FsyncDir(const std::string& dir) override {
    auto a = fs_->Lookup(kRootIno, dir);
    if (!a.ok()) return Rc(a.status());
    int rc = Rc(fs_->FsyncDir(a->ino));
    fs_->Forget(a->ino, 1);
    return rc;
  }
  int Close(int h) override {
    const Ino ino = Handle(h);
    int rc = Rc(fs_->Flush(ino));
    int rc2 = Rc(fs_->Release(ino));
    fs_->Forget(ino, 1);
    std::lock_guard<std::mutex> l(mu_);
    handles_.erase(h);
    return rc != 0 ? rc : rc2;
  }
  int Rename(const std::string& from, const std::string& to) override {
    Ino p1, p2;
    if (int rc = Parent(from, &p1); rc != 0) return rc;
    if (int rc = Parent(to, &p2); rc != 0) return rc;
    return Rc(fs_->Rename(p1, Base(from), p2, Base(to), 0));
  }
  int Unlink(const std::string& name) override {
    Ino parent;
    if (int rc = Parent(name, &parent); rc != 0) return rc;
    return Rc(fs_->Unlink(parent, Base(name)));
  }
  int RmDir(const std::string& dir) override { return Rc(fs_->RmDir(kRootIno, dir)); }
  int ReadFile(const std::string& name, std::string* out) override {
    out->clear();
    Ino parent;
    if (int rc = Parent(name, &parent); rc != 0) return rc;
    auto a = fs_->Lookup(parent, Base(name));
    if (!a.ok()) return Rc(a.status());
    const Ino ino = a->ino;
    int rc = Rc(fs_->Open(ino, O_RDONLY));
    if (rc == 0) {
      out->resize(a->size);
      size_t done = 0;
      while (done < out->size()) {
        auto n = fs_->Read(ino, done, std::min<size_t>(1 << 20, out->size() - done),
                           out->data() + done);
        if (!n.ok()) {
          rc = Rc(n.status());
          break;
        }
        if (*n == 0) break;
        done += *n;
      }
      out->resize(done);
      (void)fs_->Release(ino);
    }
    fs_->Forget(ino, 1);
    return rc;
  }
  int ListDir(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    auto a = fs_->Lookup(kRootIno, dir);
    if (!a.ok()) return Rc(a.status());
    auto listing = fs_->OpenDir(a->ino);
    fs_->Forget(a->ino, 1);
    if (!listing.ok()) return Rc(listing.status());
    for (const auto& e : (*listing)->entries) {
      if (e.name != "." && e.name != "..") names->push_back(e.name);
    }
    return 0;
  }

 private:
  static std::string Base(const std::string& name) { return name.substr(name.rfind('/') + 1); }
  int Parent(const std::string& name, Ino* parent) {
    auto a = fs_->Lookup(kRootIno, name.substr(0, name.rfind('/')));
    if (!a.ok()) return Rc(a.status());
    fs_->Forget(a->ino, 1);
    *parent = a->ino;
    return 0;
  }
  Ino Handle(int h) {
    std::lock_guard<std::mutex> l(mu_);
    return handles_.at(h);
  }

  FsCore* const fs_;
  const Caller caller_{0, 0, 1};
  std::mutex mu_;  // guards handles_, next_handle_
  std::map<int, Ino> handles_;
  int next_handle_ = 0;
};

class PowerCutTest : public ::testing::Test {
 protected:
  PowerCutTest()
      : controller_(std::make_shared<FaultController>()),
        env_(Env::Default(), controller_),
        rocks_env_(controller_) {}

  // The store logs every injected failure; keep each round's lines for a failure report
  // instead of flooding the output.
  void SetUp() override {
    SetLogSink([this](LogLevel, const std::string& line) {
      std::lock_guard<std::mutex> l(log_mu_);
      log_.push_back(line);
    });
  }
  void TearDown() override { SetLogSink(nullptr); }
  std::string TakeLog() {
    std::lock_guard<std::mutex> l(log_mu_);
    std::string all;
    for (const std::string& line : log_) all += line + "\n";
    log_.clear();
    return all;
  }

  void Boot() {
    StoreOptions so;
    so.env = &env_;
    so.rocks_env = rocks_env_.env();
    auto s = Store::Open(dir_.Join("store"), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    FsOptions fo;
    fo.write_buffer_bytes = 64 << 20;
    fo.inode_flush_bytes = 4 << 20;
    auto fs = FsCore::Create(store_.get(), fo);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(fs).value();
  }

  // The process dies with the power off: nothing it does on the way reaches the disk. Then
  // everything that was not synced vanishes.
  void CutPowerAndDropUnsynced() {
    fs_.reset();     // its Shutdown fails: every write and sync fails now
    store_.reset();  // likewise
    Status d = env_.DropUnsyncedData();
    ASSERT_TRUE(d.ok()) << d.ToString();
    d = rocks_env_.DropUnsyncedData();
    ASSERT_TRUE(d.ok()) << d.ToString();
    controller_->SetActive(true);
  }

  void ExpectFsckFindsOnlyLeaks(const std::string& context) {
    auto report = Fsck(dir_.Join("store"), FsckOptions());
    ASSERT_TRUE(report.ok()) << context << ": " << report.status().ToString();
    // A file's allocated bytes count batches submitted but lost with the power, as its size
    // counts their bytes (docs/reliability.md): off in st_blocks only, like a leak.
    static const std::set<FsckIssue> kLeaks = {
        FsckIssue::kRefcountTooHigh, FsckIssue::kUnreferencedChunk, FsckIssue::kOrphanInode,
        FsckIssue::kOrphanPack, FsckIssue::kAllocatedMismatch};
    for (const FsckFinding& f : report->findings) {
      EXPECT_TRUE(kLeaks.count(f.issue))
          << context << ": fsck: " << FsckIssueName(f.issue) << ": " << f.message;
    }
    leaks_ += report->findings.size();
  }

  TempDir dir_;
  std::shared_ptr<FaultController> controller_;
  FaultInjectionEnv env_;
  RocksFaultEnv rocks_env_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FsCore> fs_;
  size_t leaks_ = 0;
  std::mutex log_mu_;  // guards log_
  std::vector<std::string> log_;
};

// What goes wrong in a round before the power cut.
enum class RoundFaults { kNone, kPackSyncs, kWalSync };

const char* RoundFaultsName(RoundFaults f) {
  switch (f) {
    case RoundFaults::kNone:
      return "power cut";
    case RoundFaults::kPackSyncs:
      return "failing pack syncs, then a power cut";
    case RoundFaults::kWalSync:
      return "a failing WAL sync, then a power cut";
  }
  return "?";
}

TEST_F(PowerCutTest, CutsAtRandomMomentsNeverLoseFsyncedDataOrShowGarbage) {
  const uint64_t iterations = EnvNumber("RANKFS_POWER_CUT_ITERATIONS", kSanitized ? 10 : 50);
  const uint64_t seed = EnvNumber("RANKFS_POWER_CUT_SEED", std::random_device()());
  std::printf("power cut: %llu rounds, seed %llu (RANKFS_POWER_CUT_SEED reproduces the cut "
              "delays and writes)\n",
              (unsigned long long)iterations, (unsigned long long)seed);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  const size_t max_file = 512 << 10;
  const std::string pool = MakeRealData(4 * max_file + (4 << 20), seed);

  ASSERT_NO_FATAL_FAILURE(Boot());
  std::string prev_dir;
  DirSnapshot prev_snapshot;
  size_t total_fsyncs = 0, total_exact = 0, total_injected_errors = 0, total_injected = 0;
  std::map<RoundFaults, int> rounds_of;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t it = 0; it < iterations; ++it) {
    const std::string dir = "round" + std::to_string(it);
    CoreTarget target(fs_.get());
    ASSERT_EQ(target.MkDir(dir), 0);
    const RoundFaults faults = RoundFaults(rng() % 3);
    ++rounds_of[faults];
    CrashWorkloadOptions o;
    o.dir = dir;
    o.seed = rng();
    o.max_file_bytes = max_file;
    o.pool = &pool;
    o.faults = faults == RoundFaults::kPackSyncs;
    CrashWorkload work(&target, o);
    if (faults == RoundFaults::kPackSyncs) {
      // A few pack syncs fail, at random points of the round.
      for (int i = 0; i < 3; ++i) controller_->FailAfter(kFaultSync, rng() % 12, EIO, ".pack", 1);
    } else if (faults == RoundFaults::kWalSync) {
      // The n-th WAL sync fails; RocksDB refuses every write from then on, so that is the
      // crash: the writers stop expecting success at the very call that fails.
      const uint64_t n = 1 + rng() % 6;
      const FaultEffect effect = rng() % 2 ? FaultEffect::kApplied : FaultEffect::kNothing;
      auto wal_syncs = std::make_shared<std::atomic<uint64_t>>(0);
      controller_->SetHook([wal_syncs, n, &work](FaultOp op, const std::string& path) {
        if (op == kFaultSync && path.find(".log") != std::string::npos &&
            wal_syncs->fetch_add(1) + 1 == n) {
          work.MarkCrash();
        }
      });
      controller_->FailAfter(kFaultSync, n - 1, EIO, ".log", 1, effect);
    }
    const auto delay = std::chrono::microseconds(rng() % 300000);
    const uint64_t injected_before = controller_->injected();
    work.Start();
    std::this_thread::sleep_for(delay);
    work.MarkCrash();
    const uint64_t injected = controller_->injected() - injected_before;
    controller_->SetActive(false);
    work.Join();
    controller_->SetHook(nullptr);
    controller_->ClearFaults();
    const std::string context = "round " + std::to_string(it) + " (seed " +
                                std::to_string(seed) + ", " + RoundFaultsName(faults) +
                                " after " + std::to_string(delay.count()) + " us; " +
                                std::to_string(injected) + " faults injected)";
    total_injected += injected;
    for (const std::string& e : work.Errors()) ADD_FAILURE() << context << ": " << e;
    total_injected_errors += work.injected_errors();
    ASSERT_NO_FATAL_FAILURE(CutPowerAndDropUnsynced());
    ASSERT_NO_FATAL_FAILURE(ExpectFsckFindsOnlyLeaks(context));
    ASSERT_NO_FATAL_FAILURE(Boot());

    CoreTarget after(fs_.get());
    CrashVerifyStats stats;
    DirSnapshot snapshot;
    for (const std::string& bad : work.Verify(&after, &stats, &snapshot)) {
      ADD_FAILURE() << context << ": " << bad;
    }
    if (!prev_dir.empty()) {
      for (const std::string& bad : VerifySnapshot(&after, prev_dir, prev_snapshot)) {
        ADD_FAILURE() << context << ": previous round: " << bad;
      }
      for (const auto& [name, digest] : prev_snapshot) EXPECT_EQ(after.Unlink(name), 0) << name;
      EXPECT_EQ(after.RmDir(prev_dir), 0) << prev_dir;
    }
    EXPECT_EQ(fs_->Stats().chunks.read_errors, 0u) << context;
    if (HasFailure()) {
      std::printf("store log of the round:\n%s", TakeLog().c_str());
      break;
    }
    TakeLog();
    std::printf("%s: %zu created, %zu fsyncs, %zu injected errors seen; %zu present (%zu "
                "fsync'd exact), %zu unsynced bytes (%zu zero), %zu optional absent\n",
                context.c_str(), work.files_created(), work.fsyncs_returned(),
                work.injected_errors(), stats.files, stats.synced_exact, stats.unsynced_bytes,
                stats.unsynced_zero, stats.absent_optional);
    // Without a returned fsync even the round's directory may be gone.
    std::vector<std::string> listed;
    prev_dir = after.ListDir(dir, &listed) == 0 ? dir : "";
    prev_snapshot = std::move(snapshot);
    total_fsyncs += work.fsyncs_returned();
    total_exact += stats.synced_exact;
  }
  ASSERT_FALSE(HasFailure());
  std::printf("%llu rounds in %.1f s (%d plain, %d with failing pack syncs, %d with a failing "
              "WAL sync), %zu fsyncs, %zu fsync'd files verified, %zu faults injected before "
              "the cuts, %zu errors seen by the writers, %zu leak findings\n",
              (unsigned long long)iterations,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              rounds_of[RoundFaults::kNone], rounds_of[RoundFaults::kPackSyncs],
              rounds_of[RoundFaults::kWalSync], total_fsyncs, total_exact, total_injected,
              total_injected_errors, leaks_);
  EXPECT_GT(total_fsyncs, 0u);
  EXPECT_GT(total_exact, 0u);
  if (rounds_of[RoundFaults::kPackSyncs] + rounds_of[RoundFaults::kWalSync] >= 3) {
    EXPECT_GT(total_injected, 0u) << "the fault rounds never met their faults";
  }

  // A clean shutdown; fsck --repair then leaves a clean store holding the last round intact.
  ASSERT_TRUE(fs_->Shutdown().ok());
  fs_.reset();
  ASSERT_TRUE(store_->Close().ok());
  store_.reset();
  FsckOptions repair;
  repair.repair = true;
  ASSERT_TRUE(Fsck(dir_.Join("store"), repair).ok());
  auto check = Fsck(dir_.Join("store"), FsckOptions());
  ASSERT_TRUE(check.ok());
  for (const FsckFinding& f : check->findings) {
    ADD_FAILURE() << "after repair: " << FsckIssueName(f.issue) << ": " << f.message;
  }
  ASSERT_NO_FATAL_FAILURE(Boot());
  CoreTarget target(fs_.get());
  for (const std::string& bad :
       prev_dir.empty() ? std::vector<std::string>() : VerifySnapshot(&target, prev_dir, prev_snapshot)) {
    ADD_FAILURE() << "after repair: " << bad;
  }
}

}  // namespace
}  // namespace rankfs
