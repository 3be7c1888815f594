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
// Thread-safety: FaultController and FaultInjectionEnv are safe to use from any thread, as the
// Env contract requires. DropUnsyncedData must not run concurrently with I/O on the files it
// rolls back (see its comment).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "store/env.h"
#include "store/status.h"

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
  kFaultAllOps = 0xffffffff,
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
  // which may fail them for real.
  void FailAfter(uint32_t ops, uint64_t after, int err, std::string path_substr = "",
                 int64_t count = -1);
  // Removes every rule. Leaves the active flag and injected() as they are.
  void ClearFaults();
  // How many calls Check() has failed so far, by a rule or because the controller was inactive.
  uint64_t injected() const;

  // Models a power cut. While inactive, every call that could change a file or the namespace
  // (every op but kFaultRead and an open that cannot create) fails with EIO and changes
  // nothing; reads still work. Rules are not consulted and not advanced meanwhile.
  void SetActive(bool active);
  bool active() const;

  // Returns 0 to let the call proceed, or the errno to fail it with.
  int Check(FaultOp op, const std::string& path);
  // Check(kFaultOpen, path), and also EIO while inactive when the open may create the file.
  int CheckOpen(const std::string& path, bool may_create);

 private:
  struct Rule {
    uint32_t ops;
    std::string path_substr;
    uint64_t passes_left;  // matching calls still to let through
    int err;
    int64_t fails_left;  // < 0: unlimited
  };

  mutable std::mutex mu_;
  std::vector<Rule> rules_;  // guarded by mu_
  uint64_t injected_ = 0;    // guarded by mu_
  bool active_ = true;       // guarded by mu_
};

// Builds the Status of a fault the controller injected into operation `op` on `path`.
Status InjectedFault(int err, std::string_view op, std::string_view path);

// Wraps `base` (not owned; must outlive this Env). Every call is checked with the controller
// first and, when it passes, forwarded to `base`; a failed call never reaches `base`, so an
// injected ENOSPC on PWrite writes nothing.
//
// It also tracks, per path, what has been synced since the path was opened for writing through
// this Env, for DropUnsyncedData. Paths are compared as strings: use one spelling per file.
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
  //
  // Limitations (state them when relying on this): in-place overwrites and PunchHole inside the
  // synced size are not rolled back, and created/renamed/deleted names are treated as durable
  // at once (SyncDir is not modeled). rankfs pack files are append-only and synced before any
  // metadata points into them, so this models them exactly.
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
  struct FileState;  // what DropUnsyncedData needs to know about one path
  class FaultFile;   // the File wrapper

  // Returns the tracking state of `path`, creating it if needed. `created`: this open created
  // the file, so any older state is stale. `size`: the file's size now, assumed durable.
  std::shared_ptr<FileState> Track(const std::string& path, bool created, uint64_t size);

  Env* const base_;
  const std::shared_ptr<FaultController> controller_;

  std::mutex mu_;
  // Files opened for writing since the last DropUnsyncedData, by path. Guarded by mu_.
  // Lock order: mu_ before FileState::mu.
  std::map<std::string, std::shared_ptr<FileState>> tracked_;
};

}  // namespace rankfs
