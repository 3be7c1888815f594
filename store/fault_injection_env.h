// Fault injection for tests: a FaultController that decides which I/O calls fail, and a
// FaultInjectionEnv that wraps any Env, consults the controller before every operation and can
// "drop unsynced data" to fake a power cut. rocks_fault_env.h applies the same controller to
// RocksDB's files, so one test can fail the pack files and the metadata store together.
//
// Which operations count as which FaultOp (in FaultInjectionEnv):
//   kFaultOpen     Env::OpenFile, Env::LockFile
//   kFaultRead     File::PRead, File::NextData, Env::Stat, Env::ListDir
//   kFaultWrite    File::PWrite
//   kFaultSync     File::Sync, Env::SyncDir
//   kFaultPunch    File::PunchHole
//   kFaultTruncate File::Truncate
//   kFaultDelete   Env::DeleteFile
//   kFaultRename   Env::RenameFile (the path matched is `from`)
//   kFaultDirOp    Env::CreateDir, Env::DeleteDir
// File::Size and Env::GetSpaceInfo are never failed.
//
// A failed File::Sync drops what the file gained since its last successful sync, as Linux may
// when fdatasync(2) fails (sync_ledger.h): a later sync that succeeds does not bring it back.
//
// Thread-safety: FaultController and FaultInjectionEnv are safe to use from any thread, as the
// Env contract requires. DropUnsyncedData must not run concurrently with I/O on the files it
// rolls back (see its comment).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "store/env.h"
#include "store/meta_store.h"
#include "store/status.h"
#include "store/sync_ledger.h"

namespace rankfs {

enum FaultOp : uint32_t {
  kFaultOpen = 1,
  kFaultRead = 2,
  kFaultWrite = 4,
  kFaultSync = 8,
  kFaultPunch = 16,
  kFaultTruncate = 32,
  kFaultDelete = 64,
  kFaultRename = 128,
  kFaultDirOp = 256,
  kFaultMetaWrite = 512,  // MetaStore::Write, through MetaWriteFaults (below)
  kFaultAllOps = 0xffffffff,
};

// What a rule does to a call it fails.
enum class FaultEffect {
  kNothing,  // the call changes nothing and reports the error (a failed sync drops unsynced data)
  kApplied,  // the call is carried out, then reports the error: an outcome the caller cannot
             // know (a write that reached the disk, a sync that made the data durable)
};

// The verdict of FaultController::Check on one call.
struct Fault {
  int err = 0;  // 0: the call proceeds
  FaultEffect effect = FaultEffect::kNothing;
  bool power_off = false;  // failed because the controller is inactive (nothing reaches disk)
  explicit operator bool() const { return err != 0; }
  bool applied() const { return err != 0 && effect == FaultEffect::kApplied; }
  // A failed sync that drops the file's unsynced bytes now (a power cut drops them later).
  bool drops_unsynced() const { return err != 0 && !applied() && !power_off; }
};

// The fault plan shared by FaultInjectionEnv and the RocksDB wrapper (rocks_fault_env.h).
class FaultController {
 public:
  FaultController() = default;
  FaultController(const FaultController&) = delete;
  FaultController& operator=(const FaultController&) = delete;

  // Adds a rule: after `after` more calls that match it pass Check(), the next `count` matching
  // calls fail with `err` (count < 0: every one from then on). A call matches when its op is in
  // the `ops` mask and its path contains `path_substr` ("" matches any path). Several rules may
  // be active; a call fails by the first rule (in the order added) that is due, and a failed call
  // does not advance the other rules' counters. Calls that pass still reach the wrapped Env,
  // which may fail them for real. `effect` says what a failed call does (FaultEffect).
  void FailAfter(uint32_t ops, uint64_t after, int err, std::string path_substr = "",
                 int64_t count = -1, FaultEffect effect = FaultEffect::kNothing);
  // Removes every rule. Leaves the active flag and injected() as they are.
  void ClearFaults();
  // How many calls Check() has failed so far, by a rule or because the controller was inactive.
  uint64_t injected() const;

  // Models a power cut. While inactive, every call that could change a file or the namespace
  // (every op but kFaultRead and an open that cannot create) fails with EIO and changes
  // nothing; reads still work. Rules are not consulted and not advanced meanwhile.
  void SetActive(bool active);
  bool active() const;

  // Calls `hook` (outside the controller's lock, on the calling thread) at the start of every
  // Check, so that a test can act at an exact point of another component's I/O, e.g. between
  // its lookup and its read. Null removes it. A call already past the hook may still run the
  // previous one: what the hook uses must outlive it by a Check.
  void SetHook(std::function<void(FaultOp op, const std::string& path)> hook);

  // Whether the call proceeds, or fails and how.
  Fault Check(FaultOp op, const std::string& path);
  // Check(kFaultOpen, path), and also EIO while inactive when the open may create the file.
  Fault CheckOpen(const std::string& path, bool may_create);

 private:
  struct Rule {
    uint32_t ops;
    std::string path_substr;
    uint64_t passes_left;  // matching calls still to let through
    int err;
    int64_t fails_left;  // < 0: unlimited
    FaultEffect effect;
  };

  using Hook = std::function<void(FaultOp, const std::string&)>;
  mutable std::mutex mu_;
  std::shared_ptr<const Hook> hook_;  // see SetHook; guarded by mu_
  std::vector<Rule> rules_;  // guarded by mu_
  uint64_t injected_ = 0;    // guarded by mu_
  bool active_ = true;       // guarded by mu_
};

// The controller's rules applied to MetaStore::Write (MetaStoreOptions::write_hook): a
// kFaultMetaWrite fault with FaultEffect::kApplied carries the write out and reports it failed.
// The path a rule matches is "meta:" and the column families the batch changes
// ("meta:inodes,extents"). While the controller is inactive every write fails and changes
// nothing.
class MetaWriteFaults final : public MetaWriteHook {
 public:
  explicit MetaWriteFaults(std::shared_ptr<FaultController> controller)
      : controller_(std::move(controller)) {}
  Action BeforeWrite(const std::string& families, bool sync) override;

 private:
  const std::shared_ptr<FaultController> controller_;
};

// Builds the Status of a fault the controller injected into operation `op` on `path`.
Status InjectedFault(int err, std::string_view op, std::string_view path);

// Wraps `base` (not owned; must outlive this Env). Every call is checked with the controller
// first and, when it passes, forwarded to `base`; a call failed with FaultEffect::kNothing never
// reaches `base`, so an injected ENOSPC on PWrite writes nothing.
//
// It also tracks, per path, what has been synced since the path was opened for writing through
// this Env (SyncLedger), for DropUnsyncedData and failed syncs. Paths are compared as strings:
// use one spelling per file.
class FaultInjectionEnv final : public Env {
 public:
  explicit FaultInjectionEnv(
      Env* base, std::shared_ptr<FaultController> controller = std::make_shared<FaultController>());
  ~FaultInjectionEnv() override;

  FaultController& controller() { return *controller_; }
  std::shared_ptr<FaultController> shared_controller() { return controller_; }

  // Fakes the data loss of a power cut: every file opened for writing through this Env since the
  // last DropUnsyncedData loses what was written after its last successful File::Sync. A file
  // that existed before is truncated back to its size at the last Sync (or at open, when never
  // synced); a file this Env created and never synced is deleted. Then tracking starts afresh.
  // The limits of this model are SyncLedger's (sync_ledger.h).
  //
  // Works whether or not the controller is active and bypasses its rules. REQUIRES: nothing uses
  // the tracked files meanwhile (close them first, or deactivate the controller so that stray
  // writes fail); File objects opened before the call must not be used to write afterwards.
  Status DropUnsyncedData();

  Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) override;
  Status DeleteFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status CreateDir(const std::string& path) override;
  Status DeleteDir(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  Result<FileInfo> Stat(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;
  Result<SpaceInfo> GetSpaceInfo(const std::string& path) override;

 private:
  class FaultFile;  // the File wrapper

  Env* const base_;
  const std::shared_ptr<FaultController> controller_;
  // Files opened for writing since the last DropUnsyncedData.
  SyncLedger ledger_;
};

}  // namespace rankfs
