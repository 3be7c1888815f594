// MemEnv: an Env whose files and directories live in memory, for unit tests.
//
// It models what the store relies on from a real filesystem: a directory tree (a parent must
// exist before a child is created; a non-empty directory cannot be deleted), open files that stay
// usable after unlink, sparse files whose space is counted in whole 4 KiB blocks and given back by
// PunchHole, and exclusive file locks (within this Env only). Sync is a no-op: nothing here
// survives the process anyway; FaultInjectionEnv models crashes on top of any Env.
//
// Lock order: MemEnv::mu_ before MemFileData::mu.

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "store/env.h"

namespace rankfs {
namespace {

constexpr uint64_t kBlockSize = 4096;
constexpr uint64_t kMemCapacity = uint64_t{1} << 40;  // 1 TiB of pretend disk

// Contents of one file. Shared by the namespace entry and every File opened on it.
struct MemFileData {
  std::mutex mu;
  std::string data;             // guarded by mu; size() is the file size
  std::vector<bool> allocated;  // guarded by mu; one flag per 4 KiB block that holds data

  // REQUIRES: mu held.
  uint64_t AllocatedBytesLocked() const {
    return uint64_t(std::count(allocated.begin(), allocated.end(), true)) * kBlockSize;
  }
  // Resizes the block map to cover the file size. New blocks start unallocated (sparse).
  // REQUIRES: mu held.
  void FitBlocksLocked() { allocated.resize((data.size() + kBlockSize - 1) / kBlockSize, false); }
};

// Collapses repeated slashes and drops a trailing one, so "/a//b/" and "/a/b" name one entry.
std::string Normalize(const std::string& path) {
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// The parent of a normalized path: "/a/b" -> "/a", "/a" -> "/", "a" -> "".
std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

class MemFile final : public File {
 public:
  MemFile(std::string path, std::shared_ptr<MemFileData> file, bool writable)
      : path_(std::move(path)), file_(std::move(file)), writable_(writable) {}

  Status PRead(uint64_t offset, size_t n, char* buf, size_t* got) override {
    std::lock_guard<std::mutex> lock(file_->mu);
    const std::string& data = file_->data;
    if (offset >= data.size()) {
      *got = 0;
      return Status::Ok();
    }
    *got = std::min<uint64_t>(n, data.size() - offset);
    data.copy(buf, *got, offset);
    return Status::Ok();
  }

  Status PWrite(uint64_t offset, std::string_view data) override {
    if (!writable_) return Status::FromErrno(EBADF, "pwrite", path_);
    if (data.empty()) return Status::Ok();
    std::lock_guard<std::mutex> lock(file_->mu);
    std::string& contents = file_->data;
    if (contents.size() < offset + data.size()) contents.resize(offset + data.size(), '\0');
    contents.replace(offset, data.size(), data);
    file_->FitBlocksLocked();
    for (uint64_t b = offset / kBlockSize; b <= (offset + data.size() - 1) / kBlockSize; ++b) {
      file_->allocated[b] = true;
    }
    return Status::Ok();
  }

  // Nothing to make durable; FaultInjectionEnv models what a crash would lose.
  Status Sync() override { return Status::Ok(); }

  Status PunchHole(uint64_t offset, uint64_t len) override {
    if (!writable_) return Status::FromErrno(EBADF, "fallocate(PUNCH_HOLE)", path_);
    std::lock_guard<std::mutex> lock(file_->mu);
    std::string& contents = file_->data;
    if (len == 0 || offset >= contents.size()) return Status::Ok();
    const bool to_eof = len >= contents.size() - offset;  // (offset + len could overflow)
    const uint64_t end = to_eof ? contents.size() : offset + len;
    std::fill(contents.begin() + offset, contents.begin() + end, '\0');
    // Like ext4, only blocks wholly inside the range are freed; partial blocks are zeroed. The
    // last block of the file counts as whole when the range runs to end of file or beyond.
    const uint64_t first = (offset + kBlockSize - 1) / kBlockSize;
    const uint64_t last = to_eof ? file_->allocated.size() : end / kBlockSize;
    for (uint64_t b = first; b < last; ++b) file_->allocated[b] = false;
    return Status::Ok();
  }

  Status Truncate(uint64_t size) override {
    if (!writable_) return Status::FromErrno(EINVAL, "ftruncate", path_);
    std::lock_guard<std::mutex> lock(file_->mu);
    file_->data.resize(size, '\0');
    file_->FitBlocksLocked();
    return Status::Ok();
  }

  Result<uint64_t> Size() override {
    std::lock_guard<std::mutex> lock(file_->mu);
    return uint64_t{file_->data.size()};
  }

  Result<uint64_t> NextData(uint64_t from) override {
    std::lock_guard<std::mutex> lock(file_->mu);
    const uint64_t size = file_->data.size();
    for (uint64_t b = from / kBlockSize; b < file_->allocated.size(); ++b) {
      if (file_->allocated[b]) return std::min(size, std::max(from, b * kBlockSize));
    }
    return size;
  }

  const std::string& path() const override { return path_; }

 private:
  const std::string path_;
  const std::shared_ptr<MemFileData> file_;
  const bool writable_;
};

// The set of locked paths. Shared with every lock object, so a lock may outlive its Env.
struct LockTable {
  std::mutex mu;
  std::set<std::string> held;  // guarded by mu
};

class MemFileLock final : public FileLock {
 public:
  MemFileLock(std::shared_ptr<LockTable> table, std::string path)
      : table_(std::move(table)), path_(std::move(path)) {}
  ~MemFileLock() override {
    std::lock_guard<std::mutex> lock(table_->mu);
    table_->held.erase(path_);
  }

 private:
  const std::shared_ptr<LockTable> table_;
  const std::string path_;
};

class MemEnv final : public Env {
 public:
  Result<std::unique_ptr<File>> OpenFile(const std::string& raw_path, OpenMode mode) override {
    const std::string path = Normalize(raw_path);
    std::lock_guard<std::mutex> lock(mu_);
    if (dirs_.count(path) != 0) return Status::FromErrno(EISDIR, "open", raw_path);
    auto it = files_.find(path);
    if (it != files_.end()) {
      if (mode == OpenMode::kCreateExclusive) return Status::FromErrno(EEXIST, "open", raw_path);
    } else {
      if (mode == OpenMode::kReadOnly || mode == OpenMode::kReadWrite) {
        return Status::FromErrno(ENOENT, "open", raw_path);
      }
      RANKFS_RETURN_IF_ERROR(CheckParentLocked(path, "open", raw_path));
      it = files_.emplace(path, std::make_shared<MemFileData>()).first;
    }
    return std::unique_ptr<File>(
        std::make_unique<MemFile>(raw_path, it->second, mode != OpenMode::kReadOnly));
  }

  Status DeleteFile(const std::string& raw_path) override {
    const std::string path = Normalize(raw_path);
    std::lock_guard<std::mutex> lock(mu_);
    if (dirs_.count(path) != 0) return Status::FromErrno(EISDIR, "unlink", raw_path);
    if (files_.erase(path) == 0) return Status::FromErrno(ENOENT, "unlink", raw_path);
    return Status::Ok();
  }

  Status RenameFile(const std::string& raw_from, const std::string& raw_to) override {
    const std::string from = Normalize(raw_from);
    const std::string to = Normalize(raw_to);
    const std::string what = raw_from + " -> " + raw_to;
    std::lock_guard<std::mutex> lock(mu_);
    if (dirs_.count(from) != 0) {
      return Status(ENOTSUP, "rename " + what + ": MemEnv does not rename directories");
    }
    auto it = files_.find(from);
    if (it == files_.end()) return Status::FromErrno(ENOENT, "rename", what);
    if (dirs_.count(to) != 0) return Status::FromErrno(EISDIR, "rename", what);
    RANKFS_RETURN_IF_ERROR(CheckParentLocked(to, "rename", what));
    if (from == to) return Status::Ok();
    std::shared_ptr<MemFileData> file = it->second;
    files_.erase(it);
    files_[to] = std::move(file);
    return Status::Ok();
  }

  Status CreateDir(const std::string& raw_path) override {
    const std::string path = Normalize(raw_path);
    std::lock_guard<std::mutex> lock(mu_);
    if (IsDirLocked(path)) return Status::Ok();
    if (files_.count(path) != 0) return Status::FromErrno(EEXIST, "mkdir", raw_path);
    RANKFS_RETURN_IF_ERROR(CheckParentLocked(path, "mkdir", raw_path));
    dirs_.insert(path);
    return Status::Ok();
  }

  Status DeleteDir(const std::string& raw_path) override {
    const std::string path = Normalize(raw_path);
    std::lock_guard<std::mutex> lock(mu_);
    if (files_.count(path) != 0) return Status::FromErrno(ENOTDIR, "rmdir", raw_path);
    if (dirs_.count(path) == 0) return Status::FromErrno(ENOENT, "rmdir", raw_path);
    if (!ChildrenLocked(path).empty()) return Status::FromErrno(ENOTEMPTY, "rmdir", raw_path);
    dirs_.erase(path);
    return Status::Ok();
  }

  Result<std::vector<std::string>> ListDir(const std::string& raw_path) override {
    const std::string path = Normalize(raw_path);
    std::lock_guard<std::mutex> lock(mu_);
    if (files_.count(path) != 0) return Status::FromErrno(ENOTDIR, "opendir", raw_path);
    if (!IsDirLocked(path)) return Status::FromErrno(ENOENT, "opendir", raw_path);
    return ChildrenLocked(path);
  }

  Result<FileInfo> Stat(const std::string& raw_path) override {
    const std::string path = Normalize(raw_path);
    std::lock_guard<std::mutex> lock(mu_);
    FileInfo info;
    if (IsDirLocked(path)) {
      info.is_dir = true;
      return info;
    }
    auto it = files_.find(path);
    if (it == files_.end()) return Status::FromErrno(ENOENT, "stat", raw_path);
    std::lock_guard<std::mutex> file_lock(it->second->mu);
    info.size = it->second->data.size();
    info.allocated_bytes = it->second->AllocatedBytesLocked();
    return info;
  }

  Status SyncDir(const std::string& raw_path) override {
    const std::string path = Normalize(raw_path);
    std::lock_guard<std::mutex> lock(mu_);
    if (!IsDirLocked(path)) return Status::FromErrno(ENOENT, "open directory", raw_path);
    return Status::Ok();
  }

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& raw_path) override {
    const std::string path = Normalize(raw_path);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (dirs_.count(path) != 0) return Status::FromErrno(EISDIR, "open lock file", raw_path);
      if (files_.count(path) == 0) {
        RANKFS_RETURN_IF_ERROR(CheckParentLocked(path, "open lock file", raw_path));
        files_.emplace(path, std::make_shared<MemFileData>());
      }
    }
    std::lock_guard<std::mutex> lock(locks_->mu);
    if (!locks_->held.insert(path).second) {
      return Status(EBUSY, "lock " + raw_path + ": held by another handle");
    }
    return std::unique_ptr<FileLock>(std::make_unique<MemFileLock>(locks_, path));
  }

  Result<SpaceInfo> GetSpaceInfo(const std::string& raw_path) override {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t used = 0;
    for (const auto& [name, file] : files_) {
      std::lock_guard<std::mutex> file_lock(file->mu);
      used += file->AllocatedBytesLocked();
    }
    SpaceInfo info;
    info.total_bytes = kMemCapacity;
    info.free_bytes = used >= kMemCapacity ? 0 : kMemCapacity - used;
    info.avail_bytes = info.free_bytes;
    return info;
  }

 private:
  // The root ("/") and the current directory ("") always exist.
  // REQUIRES: mu_ held.
  bool IsDirLocked(const std::string& path) const {
    return path.empty() || path == "/" || dirs_.count(path) != 0;
  }

  // ENOENT unless the parent of `path` is an existing directory (ENOTDIR when it is a file).
  // REQUIRES: mu_ held.
  Status CheckParentLocked(const std::string& path, std::string_view op,
                           const std::string& what) const {
    const std::string parent = Parent(path);
    if (IsDirLocked(parent)) return Status::Ok();
    if (files_.count(parent) != 0) return Status::FromErrno(ENOTDIR, op, what);
    return Status::FromErrno(ENOENT, op, what);
  }

  // Names of the direct children of directory `dir`.
  // REQUIRES: mu_ held.
  std::vector<std::string> ChildrenLocked(const std::string& dir) const {
    std::string prefix = dir;
    if (!prefix.empty() && prefix.back() != '/') prefix.push_back('/');
    std::vector<std::string> names;
    auto collect = [&](const std::string& name) {
      if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return;
      if (name.find('/', prefix.size()) != std::string::npos) return;  // a grandchild
      names.push_back(name.substr(prefix.size()));
    };
    // Both maps are ordered, so the children form one contiguous run starting at `prefix`.
    for (auto it = files_.lower_bound(prefix); it != files_.end(); ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      collect(it->first);
    }
    for (auto it = dirs_.lower_bound(prefix); it != dirs_.end(); ++it) {
      if (it->compare(0, prefix.size(), prefix) != 0) break;
      collect(*it);
    }
    return names;
  }

  std::mutex mu_;
  // Guarded by mu_. Paths are normalized; a path is never in both.
  std::map<std::string, std::shared_ptr<MemFileData>> files_;
  std::set<std::string> dirs_;
  const std::shared_ptr<LockTable> locks_ = std::make_shared<LockTable>();
};

}  // namespace

std::unique_ptr<Env> NewMemEnv() { return std::make_unique<MemEnv>(); }

}  // namespace rankfs
