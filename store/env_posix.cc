// PosixEnv: the Env of the process (Env::Default()), a thin layer over Linux file syscalls.
//
// Every fd is opened O_CLOEXEC so that a forked helper (mount-helper, tests) never inherits
// store files. Every error Status names the operation and the path.

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/env.h"

namespace rankfs {
namespace {

// Owns one file descriptor; closes it on destruction. Move-only.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  void Reset() {
    // close(2) on Linux releases the fd even when it reports EINTR, so it is never retried.
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
};

// Owns a DIR* from opendir(3).
class ScopedDir {
 public:
  explicit ScopedDir(DIR* dir) : dir_(dir) {}
  ScopedDir(const ScopedDir&) = delete;
  ScopedDir& operator=(const ScopedDir&) = delete;
  ~ScopedDir() {
    if (dir_ != nullptr) ::closedir(dir_);
  }
  DIR* get() const { return dir_; }

 private:
  DIR* dir_;
};

// open(2) retrying EINTR (possible on FIFOs and some network filesystems).
int OpenRetrying(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path, flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

class PosixFile final : public File {
 public:
  PosixFile(std::string path, ScopedFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  Status PRead(uint64_t offset, size_t n, char* buf, size_t* got) override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_.get(), buf + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        *got = done;
        return Status::FromErrno("pread", path_);
      }
      if (r == 0) break;  // end of file
      done += static_cast<size_t>(r);
    }
    *got = done;
    return Status::Ok();
  }

  Status PWrite(uint64_t offset, std::string_view data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t r = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("pwrite", path_);
      }
      // A short write (e.g. the disk filled up mid-way) is retried; the retry reports the errno.
      done += static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  Status Sync() override {
    int r;
    do {
      r = ::fdatasync(fd_.get());
    } while (r < 0 && errno == EINTR);
    // No retry after a real error: the kernel may have dropped the dirty pages already, so a
    // second fdatasync could report success for data that is gone. The caller must treat the
    // file as damaged.
    if (r < 0) return Status::FromErrno("fdatasync", path_);
    return Status::Ok();
  }

  Status PunchHole(uint64_t offset, uint64_t len) override {
    if (len == 0) return Status::Ok();  // fallocate rejects len 0 with EINVAL
    int r;
    do {
      r = ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      static_cast<off_t>(offset), static_cast<off_t>(len));
    } while (r < 0 && errno == EINTR);
    if (r < 0) return Status::FromErrno("fallocate(PUNCH_HOLE)", path_);
    return Status::Ok();
  }

  Status Truncate(uint64_t size) override {
    int r;
    do {
      r = ::ftruncate(fd_.get(), static_cast<off_t>(size));
    } while (r < 0 && errno == EINTR);
    if (r < 0) return Status::FromErrno("ftruncate", path_);
    return Status::Ok();
  }

  Result<uint64_t> Size() override {
    struct stat st;
    if (::fstat(fd_.get(), &st) < 0) return Status::FromErrno("fstat", path_);
    return static_cast<uint64_t>(st.st_size);
  }

  Result<uint64_t> NextData(uint64_t from) override {
    off_t r = ::lseek(fd_.get(), static_cast<off_t>(from), SEEK_DATA);
    if (r < 0) {
      if (errno == ENXIO) return Size();  // no data at or after `from`
      return Status::FromErrno("lseek(SEEK_DATA)", path_);
    }
    return static_cast<uint64_t>(r);
  }

  const std::string& path() const override { return path_; }

 private:
  const std::string path_;
  const ScopedFd fd_;
};

// flock(2) locks belong to the open file description, so a second open of the same path in this
// process conflicts too, as the Env contract requires.
class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(ScopedFd fd) : fd_(std::move(fd)) {}
  // Closing the fd releases the lock.
  ~PosixFileLock() override = default;

 private:
  ScopedFd fd_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) override {
    int flags = 0;
    switch (mode) {
      case OpenMode::kReadOnly:
        flags = O_RDONLY;
        break;
      case OpenMode::kReadWrite:
        flags = O_RDWR;
        break;
      case OpenMode::kCreate:
        flags = O_RDWR | O_CREAT;
        break;
      case OpenMode::kCreateExclusive:
        flags = O_RDWR | O_CREAT | O_EXCL;
        break;
    }
    ScopedFd fd(OpenRetrying(path.c_str(), flags, 0644));
    if (!fd.valid()) return Status::FromErrno("open", path);
    return std::unique_ptr<File>(std::make_unique<PosixFile>(path, std::move(fd)));
  }

  Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) < 0) return Status::FromErrno("unlink", path);
    return Status::Ok();
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) < 0) {
      return Status::FromErrno("rename", from + " -> " + to);
    }
    return Status::Ok();
  }

  Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) == 0) return Status::Ok();
    int err = errno;
    if (err == EEXIST) {
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
    }
    return Status::FromErrno(err, "mkdir", path);
  }

  Status DeleteDir(const std::string& path) override {
    if (::rmdir(path.c_str()) < 0) return Status::FromErrno("rmdir", path);
    return Status::Ok();
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    ScopedDir dir(::opendir(path.c_str()));
    if (dir.get() == nullptr) return Status::FromErrno("opendir", path);
    std::vector<std::string> names;
    while (true) {
      errno = 0;
      struct dirent* entry = ::readdir(dir.get());
      if (entry == nullptr) {
        if (errno != 0) return Status::FromErrno("readdir", path);
        break;
      }
      std::string_view name(entry->d_name);
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    return names;
  }

  Result<FileInfo> Stat(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) return Status::FromErrno("stat", path);
    FileInfo info;
    info.size = static_cast<uint64_t>(st.st_size);
    info.allocated_bytes = static_cast<uint64_t>(st.st_blocks) * 512;  // st_blocks: 512 B units
    info.is_dir = S_ISDIR(st.st_mode);
    return info;
  }

  Status SyncDir(const std::string& path) override {
    ScopedFd fd(OpenRetrying(path.c_str(), O_RDONLY | O_DIRECTORY, 0));
    if (!fd.valid()) return Status::FromErrno("open directory", path);
    int r;
    do {
      r = ::fsync(fd.get());
    } while (r < 0 && errno == EINTR);
    if (r < 0) return Status::FromErrno("fsync directory", path);
    return Status::Ok();
  }

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    ScopedFd fd(OpenRetrying(path.c_str(), O_RDWR | O_CREAT, 0644));
    // A store on a read-only file system can still be locked (flock needs no write access).
    if (!fd.valid() && errno == EROFS) fd = ScopedFd(OpenRetrying(path.c_str(), O_RDONLY, 0));
    if (!fd.valid()) return Status::FromErrno("open lock file", path);
    int r;
    do {
      r = ::flock(fd.get(), LOCK_EX | LOCK_NB);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EWOULDBLOCK) {
        return Status(EBUSY, "lock " + path + ": held by another process or handle");
      }
      return Status::FromErrno("flock", path);
    }
    return std::unique_ptr<FileLock>(std::make_unique<PosixFileLock>(std::move(fd)));
  }

  Result<SpaceInfo> GetSpaceInfo(const std::string& path) override {
    struct statvfs sv;
    if (::statvfs(path.c_str(), &sv) < 0) return Status::FromErrno("statvfs", path);
    SpaceInfo info;
    info.total_bytes = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
    info.free_bytes = static_cast<uint64_t>(sv.f_bfree) * sv.f_frsize;
    info.avail_bytes = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
    return info;
  }
};

}  // namespace

Env* Env::Default() {
  // Never destroyed: other static destructors may still use it at exit.
  static Env* const env = new PosixEnv();
  return env;
}

}  // namespace rankfs
