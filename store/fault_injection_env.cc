#include "store/fault_injection_env.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace rankfs {

// ---------------------------------------------------------------------------------------------
// FaultController

void FaultController::FailAfter(uint32_t ops, uint64_t after, int err, std::string path_substr,
                                int64_t count, FaultEffect effect) {
  if (count == 0) return;  // a rule that never fires
  std::lock_guard<std::mutex> lock(mu_);
  rules_.push_back(Rule{ops, std::move(path_substr), after, err == 0 ? EIO : err, count, effect});
}

void FaultController::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
}

uint64_t FaultController::injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_;
}

void FaultController::SetActive(bool active) {
  std::lock_guard<std::mutex> lock(mu_);
  active_ = active;
}

bool FaultController::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

void FaultController::SetHook(std::function<void(FaultOp, const std::string&)> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  hook_ = hook ? std::make_shared<const Hook>(std::move(hook)) : nullptr;
}

Fault FaultController::Check(FaultOp op, const std::string& path) {
  std::shared_ptr<const Hook> hook;
  {
    std::lock_guard<std::mutex> lock(mu_);
    hook = hook_;
  }
  if (hook) (*hook)(op, path);
  std::lock_guard<std::mutex> lock(mu_);
  if (!active_) {
    if (op == kFaultRead || op == kFaultOpen) return Fault();
    ++injected_;
    return Fault{EIO, FaultEffect::kNothing, /*power_off=*/true};
  }
  auto matches = [&](const Rule& r) {
    return (r.ops & op) != 0 &&
           (r.path_substr.empty() || path.find(r.path_substr) != std::string::npos);
  };
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (it->passes_left != 0 || !matches(*it)) continue;
    const Fault fault{it->err, it->effect};
    if (it->fails_left > 0 && --it->fails_left == 0) rules_.erase(it);
    ++injected_;
    return fault;
  }
  // The call passes: it counts towards every rule it matches.
  for (Rule& r : rules_) {
    if (r.passes_left != 0 && matches(r)) --r.passes_left;
  }
  return Fault();
}

Fault FaultController::CheckOpen(const std::string& path, bool may_create) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!active_ && may_create) {
      ++injected_;
      return Fault{EIO, FaultEffect::kNothing, /*power_off=*/true};
    }
  }
  return Check(kFaultOpen, path);
}

MetaWriteHook::Action MetaWriteFaults::BeforeWrite(const std::string& families, bool /*sync*/) {
  const Fault f = controller_->Check(kFaultMetaWrite, "meta:" + families);
  if (!f) return Action::kProceed;
  return f.applied() ? Action::kApplyThenFail : Action::kFail;
}

Status InjectedFault(int err, std::string_view op, std::string_view path) {
  std::string msg(op);
  msg += " ";
  msg += path;
  msg += ": ";
  msg += ErrnoString(err);
  msg += " (injected fault)";
  return Status(err, std::move(msg));
}

// ---------------------------------------------------------------------------------------------
// FaultInjectionEnv

// Runs `call` unless `fault` stops it: a kApplied fault runs it and then reports the error.
template <typename Call>
Status Obey(const Fault& fault, std::string_view op, const std::string& path, Call call) {
  if (!fault) return call();
  if (fault.applied()) {
    Status done = call();
    if (!done.ok()) return done;
  }
  return InjectedFault(fault.err, op, path);
}

class FaultInjectionEnv::FaultFile final : public File {
 public:
  // `ledger` is null for a read-only file.
  FaultFile(std::unique_ptr<File> base, std::shared_ptr<SyncLedger::File> ledger,
            std::shared_ptr<FaultController> controller)
      : base_(std::move(base)), ledger_(std::move(ledger)), controller_(std::move(controller)) {}

  Status PRead(uint64_t offset, size_t n, char* buf, size_t* got) override {
    if (Fault f = controller_->Check(kFaultRead, path())) {
      *got = 0;
      return InjectedFault(f.err, "pread", path());
    }
    return base_->PRead(offset, n, buf, got);
  }

  Status PWrite(uint64_t offset, std::string_view data) override {
    return Obey(controller_->Check(kFaultWrite, path()), "pwrite", path(), [&] {
      // Noted before the write: a failed write may still have changed the file.
      if (ledger_ != nullptr) ledger_->Wrote(offset + data.size());
      return base_->PWrite(offset, data);
    });
  }

  Status Sync() override {
    const Fault f = controller_->Check(kFaultSync, path());
    if (f.drops_unsynced()) {
      // Linux may have dropped the dirty pages already: they are gone, whatever comes later.
      if (ledger_ != nullptr) {
        const uint64_t keep = ledger_->SyncFailed();
        Result<uint64_t> size = base_->Size();
        if (size.ok() && *size > keep) base_->Truncate(keep).IgnoreError();
      }
      return InjectedFault(f.err, "fdatasync", path());
    }
    return Obey(f, "fdatasync", path(), [&] {
      if (ledger_ == nullptr) return base_->Sync();
      const uint64_t size = ledger_->SizeBeforeSync();
      RANKFS_RETURN_IF_ERROR(base_->Sync());
      ledger_->Synced(size);
      return Status::Ok();
    });
  }

  Status PunchHole(uint64_t offset, uint64_t len) override {
    return Obey(controller_->Check(kFaultPunch, path()), "fallocate(PUNCH_HOLE)", path(),
                [&] { return base_->PunchHole(offset, len); });
  }

  Status Truncate(uint64_t size) override {
    return Obey(controller_->Check(kFaultTruncate, path()), "ftruncate", path(), [&] {
      if (ledger_ != nullptr) ledger_->Truncated(size);
      return base_->Truncate(size);
    });
  }

  Result<uint64_t> Size() override { return base_->Size(); }

  Result<uint64_t> NextData(uint64_t from) override {
    if (Fault f = controller_->Check(kFaultRead, path())) {
      return InjectedFault(f.err, "lseek(SEEK_DATA)", path());
    }
    return base_->NextData(from);
  }

  const std::string& path() const override { return base_->path(); }

 private:
  const std::unique_ptr<File> base_;
  const std::shared_ptr<SyncLedger::File> ledger_;
  const std::shared_ptr<FaultController> controller_;
};

FaultInjectionEnv::FaultInjectionEnv(Env* base, std::shared_ptr<FaultController> controller)
    : base_(base), controller_(std::move(controller)) {}

FaultInjectionEnv::~FaultInjectionEnv() = default;

Result<std::unique_ptr<File>> FaultInjectionEnv::OpenFile(const std::string& path, OpenMode mode) {
  const bool may_create = mode == OpenMode::kCreate || mode == OpenMode::kCreateExclusive;
  if (Fault f = controller_->CheckOpen(path, may_create)) {
    return InjectedFault(f.err, "open", path);
  }
  bool created = mode == OpenMode::kCreateExclusive;
  if (mode == OpenMode::kCreate) {
    Result<FileInfo> info = base_->Stat(path);
    created = !info.ok() && info.status().code() == ENOENT;
  }
  RANKFS_ASSIGN_OR_RETURN(std::unique_ptr<File> file, base_->OpenFile(path, mode));
  std::shared_ptr<SyncLedger::File> ledger;
  if (mode != OpenMode::kReadOnly) {
    uint64_t size = 0;
    if (!created) {
      RANKFS_ASSIGN_OR_RETURN(size, file->Size());
    }
    ledger = ledger_.Track(path, created, size);
  }
  return std::unique_ptr<File>(
      std::make_unique<FaultFile>(std::move(file), std::move(ledger), controller_));
}

Status FaultInjectionEnv::DeleteFile(const std::string& path) {
  return Obey(controller_->Check(kFaultDelete, path), "unlink", path, [&] {
    RANKFS_RETURN_IF_ERROR(base_->DeleteFile(path));
    ledger_.Deleted(path);
    return Status::Ok();
  });
}

Status FaultInjectionEnv::RenameFile(const std::string& from, const std::string& to) {
  return Obey(controller_->Check(kFaultRename, from), "rename", from + " -> " + to, [&] {
    RANKFS_RETURN_IF_ERROR(base_->RenameFile(from, to));
    ledger_.Renamed(from, to);
    return Status::Ok();
  });
}

Status FaultInjectionEnv::CreateDir(const std::string& path) {
  return Obey(controller_->Check(kFaultDirOp, path), "mkdir", path,
              [&] { return base_->CreateDir(path); });
}

Status FaultInjectionEnv::DeleteDir(const std::string& path) {
  return Obey(controller_->Check(kFaultDirOp, path), "rmdir", path,
              [&] { return base_->DeleteDir(path); });
}

Result<std::vector<std::string>> FaultInjectionEnv::ListDir(const std::string& path) {
  if (Fault f = controller_->Check(kFaultRead, path)) return InjectedFault(f.err, "opendir", path);
  return base_->ListDir(path);
}

Result<FileInfo> FaultInjectionEnv::Stat(const std::string& path) {
  if (Fault f = controller_->Check(kFaultRead, path)) return InjectedFault(f.err, "stat", path);
  return base_->Stat(path);
}

Status FaultInjectionEnv::SyncDir(const std::string& path) {
  return Obey(controller_->Check(kFaultSync, path), "fsync directory", path,
              [&] { return base_->SyncDir(path); });
}

Result<std::unique_ptr<FileLock>> FaultInjectionEnv::LockFile(const std::string& path) {
  if (Fault f = controller_->CheckOpen(path, /*may_create=*/true)) {
    return InjectedFault(f.err, "open lock file", path);
  }
  return base_->LockFile(path);
}

Result<SpaceInfo> FaultInjectionEnv::GetSpaceInfo(const std::string& path) {
  return base_->GetSpaceInfo(path);
}

Status FaultInjectionEnv::DropUnsyncedData() {
  SyncLedger::FileOps ops;
  ops.remove = [this](const std::string& p) { return base_->DeleteFile(p); };
  ops.size = [this](const std::string& p) -> Result<uint64_t> {
    RANKFS_ASSIGN_OR_RETURN(FileInfo info, base_->Stat(p));
    return info.size;
  };
  ops.truncate = [this](const std::string& p, uint64_t size) {
    RANKFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f, base_->OpenFile(p, OpenMode::kReadWrite));
    return f->Truncate(size);
  };
  return ledger_.DropUnsynced(ops);
}

}  // namespace rankfs
