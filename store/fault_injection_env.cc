#include "store/fault_injection_env.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace rankfs {

// ---------------------------------------------------------------------------------------------
// FaultController

void FaultController::FailAfter(uint32_t ops, uint64_t after, int err, std::string path_substr,
                                int64_t count) {
  if (count == 0) return;  // a rule that never fires
  std::lock_guard<std::mutex> lock(mu_);
  rules_.push_back(Rule{ops, std::move(path_substr), after, err == 0 ? EIO : err, count});
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

int FaultController::Check(FaultOp op, const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!active_) {
    if (op == kFaultRead || op == kFaultOpen) return 0;
    ++injected_;
    return EIO;
  }
  auto matches = [&](const Rule& r) {
    return (r.ops & op) != 0 &&
           (r.path_substr.empty() || path.find(r.path_substr) != std::string::npos);
  };
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (it->passes_left != 0 || !matches(*it)) continue;
    const int err = it->err;
    if (it->fails_left > 0 && --it->fails_left == 0) rules_.erase(it);
    ++injected_;
    return err;
  }
  // The call passes: it counts towards every rule it matches.
  for (Rule& r : rules_) {
    if (r.passes_left != 0 && matches(r)) --r.passes_left;
  }
  return 0;
}

int FaultController::CheckOpen(const std::string& path, bool may_create) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!active_ && may_create) {
      ++injected_;
      return EIO;
    }
  }
  return Check(kFaultOpen, path);
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

struct FaultInjectionEnv::FileState {
  std::mutex mu;
  uint64_t synced_size = 0;  // guarded by mu; the size DropUnsyncedData truncates back to
  bool created = false;      // guarded by mu; created through this Env (deleted if never synced)
  bool ever_synced = false;  // guarded by mu
  bool dirty = false;        // guarded by mu; written or truncated since tracking began
};

class FaultInjectionEnv::FaultFile final : public File {
 public:
  // `state` is null for a read-only file.
  FaultFile(std::unique_ptr<File> base, std::shared_ptr<FileState> state,
            std::shared_ptr<FaultController> controller)
      : base_(std::move(base)), state_(std::move(state)), controller_(std::move(controller)) {}

  Status PRead(uint64_t offset, size_t n, char* buf, size_t* got) override {
    if (int err = controller_->Check(kFaultRead, path())) {
      *got = 0;
      return InjectedFault(err, "pread", path());
    }
    return base_->PRead(offset, n, buf, got);
  }

  Status PWrite(uint64_t offset, std::string_view data) override {
    if (int err = controller_->Check(kFaultWrite, path())) {
      return InjectedFault(err, "pwrite", path());
    }
    MarkDirty();  // before the write: a failed write may still have changed the file
    return base_->PWrite(offset, data);
  }

  Status Sync() override {
    if (int err = controller_->Check(kFaultSync, path())) {
      return InjectedFault(err, "fdatasync", path());
    }
    // The size is taken before the sync: only data written before the call is known durable.
    RANKFS_ASSIGN_OR_RETURN(uint64_t size, base_->Size());
    RANKFS_RETURN_IF_ERROR(base_->Sync());
    if (state_ != nullptr) {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->synced_size = size;
      state_->ever_synced = true;
    }
    return Status::Ok();
  }

  Status PunchHole(uint64_t offset, uint64_t len) override {
    if (int err = controller_->Check(kFaultPunch, path())) {
      return InjectedFault(err, "fallocate(PUNCH_HOLE)", path());
    }
    return base_->PunchHole(offset, len);
  }

  Status Truncate(uint64_t size) override {
    if (int err = controller_->Check(kFaultTruncate, path())) {
      return InjectedFault(err, "ftruncate", path());
    }
    if (state_ != nullptr) {
      // A shrink is not durable before the next Sync, but rolling it back would need the old
      // bytes; keep the smaller size so that DropUnsyncedData never extends the file.
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->dirty = true;
      state_->synced_size = std::min(state_->synced_size, size);
    }
    return base_->Truncate(size);
  }

  Result<uint64_t> Size() override { return base_->Size(); }

  Result<uint64_t> NextData(uint64_t from) override {
    if (int err = controller_->Check(kFaultRead, path())) {
      return InjectedFault(err, "lseek(SEEK_DATA)", path());
    }
    return base_->NextData(from);
  }

  const std::string& path() const override { return base_->path(); }

 private:
  void MarkDirty() {
    if (state_ == nullptr) return;
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->dirty = true;
  }

  const std::unique_ptr<File> base_;
  const std::shared_ptr<FileState> state_;
  const std::shared_ptr<FaultController> controller_;
};

FaultInjectionEnv::FaultInjectionEnv(Env* base, std::shared_ptr<FaultController> controller)
    : base_(base), controller_(std::move(controller)) {}

FaultInjectionEnv::~FaultInjectionEnv() = default;

std::shared_ptr<FaultInjectionEnv::FileState> FaultInjectionEnv::Track(const std::string& path,
                                                                       bool created,
                                                                       uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<FileState>& state = tracked_[path];
  if (state == nullptr || created) {
    state = std::make_shared<FileState>();
    state->created = created;
    state->synced_size = created ? 0 : size;
  }
  return state;
}

Result<std::unique_ptr<File>> FaultInjectionEnv::OpenFile(const std::string& path, OpenMode mode) {
  const bool may_create = mode == OpenMode::kCreate || mode == OpenMode::kCreateExclusive;
  if (int err = controller_->CheckOpen(path, may_create)) return InjectedFault(err, "open", path);
  bool created = mode == OpenMode::kCreateExclusive;
  if (mode == OpenMode::kCreate) {
    Result<FileInfo> info = base_->Stat(path);
    created = !info.ok() && info.status().code() == ENOENT;
  }
  RANKFS_ASSIGN_OR_RETURN(std::unique_ptr<File> file, base_->OpenFile(path, mode));
  std::shared_ptr<FileState> state;
  if (mode != OpenMode::kReadOnly) {
    uint64_t size = 0;
    if (!created) {
      RANKFS_ASSIGN_OR_RETURN(size, file->Size());
    }
    state = Track(path, created, size);
  }
  return std::unique_ptr<File>(
      std::make_unique<FaultFile>(std::move(file), std::move(state), controller_));
}

Status FaultInjectionEnv::DeleteFile(const std::string& path) {
  if (int err = controller_->Check(kFaultDelete, path)) return InjectedFault(err, "unlink", path);
  RANKFS_RETURN_IF_ERROR(base_->DeleteFile(path));
  std::lock_guard<std::mutex> lock(mu_);
  tracked_.erase(path);
  return Status::Ok();
}

Status FaultInjectionEnv::RenameFile(const std::string& from, const std::string& to) {
  if (int err = controller_->Check(kFaultRename, from)) {
    return InjectedFault(err, "rename", from + " -> " + to);
  }
  RANKFS_RETURN_IF_ERROR(base_->RenameFile(from, to));
  std::lock_guard<std::mutex> lock(mu_);
  // The file at `to` is replaced: its tracking goes, and the renamed file's follows it (open
  // File objects keep pointing at the same state, so their later writes are still tracked).
  auto node = tracked_.extract(from);
  tracked_.erase(to);
  if (!node.empty()) {
    node.key() = to;
    tracked_.insert(std::move(node));
  }
  return Status::Ok();
}

Status FaultInjectionEnv::CreateDir(const std::string& path) {
  if (int err = controller_->Check(kFaultDirOp, path)) return InjectedFault(err, "mkdir", path);
  return base_->CreateDir(path);
}

Status FaultInjectionEnv::DeleteDir(const std::string& path) {
  if (int err = controller_->Check(kFaultDirOp, path)) return InjectedFault(err, "rmdir", path);
  return base_->DeleteDir(path);
}

Result<std::vector<std::string>> FaultInjectionEnv::ListDir(const std::string& path) {
  if (int err = controller_->Check(kFaultRead, path)) return InjectedFault(err, "opendir", path);
  return base_->ListDir(path);
}

Result<FileInfo> FaultInjectionEnv::Stat(const std::string& path) {
  if (int err = controller_->Check(kFaultRead, path)) return InjectedFault(err, "stat", path);
  return base_->Stat(path);
}

Status FaultInjectionEnv::SyncDir(const std::string& path) {
  if (int err = controller_->Check(kFaultSync, path)) {
    return InjectedFault(err, "fsync directory", path);
  }
  return base_->SyncDir(path);
}

Result<std::unique_ptr<FileLock>> FaultInjectionEnv::LockFile(const std::string& path) {
  if (int err = controller_->CheckOpen(path, /*may_create=*/true)) {
    return InjectedFault(err, "open lock file", path);
  }
  return base_->LockFile(path);
}

Result<SpaceInfo> FaultInjectionEnv::GetSpaceInfo(const std::string& path) {
  return base_->GetSpaceInfo(path);
}

Status FaultInjectionEnv::DropUnsyncedData() {
  std::map<std::string, std::shared_ptr<FileState>> tracked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tracked.swap(tracked_);
  }
  Status first_error;
  auto note = [&first_error](const Status& s) {
    if (!s.ok() && first_error.ok()) first_error = s;
  };
  for (const auto& [path, state] : tracked) {
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->created && !state->ever_synced) {
      Status s = base_->DeleteFile(path);
      if (s.code() != ENOENT) note(s);  // already gone is fine
      continue;
    }
    if (!state->dirty) continue;
    Result<std::unique_ptr<File>> file = base_->OpenFile(path, OpenMode::kReadWrite);
    if (!file.ok()) {
      if (file.status().code() != ENOENT) note(file.status());
      continue;
    }
    Result<uint64_t> size = (*file)->Size();
    if (!size.ok()) {
      note(size.status());
    } else if (*size > state->synced_size) {
      note((*file)->Truncate(state->synced_size));
    }
  }
  return first_error.Annotate("dropping unsynced data");
}

}  // namespace rankfs
