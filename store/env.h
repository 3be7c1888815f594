// Env: the one seam between rankfs's store and the operating system's files.
//
// Implementations: PosixEnv (Env::Default()), MemEnv (NewMemEnv(), for tests) and
// FaultInjectionEnv (fault_injection_env.h), which wraps another Env to fail chosen operations
// and to "drop unsynced data" as a power cut would. Every store component takes an Env*, never
// calls open(2)/pread(2) itself.
//
// Thread-safety: Env methods are safe to call from any thread. A File may be used by several
// threads at once for PRead/PWrite on any ranges; Sync/Truncate/PunchHole may run concurrently
// with them (they are single syscalls on POSIX).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace rankfs {

struct FileInfo {
  uint64_t size = 0;
  uint64_t allocated_bytes = 0;  // physical space in use (st_blocks * 512 on POSIX)
  bool is_dir = false;
};

struct SpaceInfo {
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;   // free blocks
  uint64_t avail_bytes = 0;  // free blocks usable by unprivileged users
};

enum class OpenMode {
  kReadOnly,         // must exist
  kReadWrite,        // must exist
  kCreate,           // read-write, created if missing
  kCreateExclusive,  // read-write, EEXIST if it exists
};

class File {
 public:
  virtual ~File() = default;
  File() = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Reads up to n bytes at offset into buf. *got < n only at end of file.
  virtual Status PRead(uint64_t offset, size_t n, char* buf, size_t* got) = 0;
  // Writes all of data at offset (retrying short writes), extending the file if needed.
  virtual Status PWrite(uint64_t offset, std::string_view data) = 0;
  // fdatasync: after OK, all data written before the call survives a crash.
  virtual Status Sync() = 0;
  // Deallocates [offset, offset+len) without changing the size; the range then reads as zeros.
  virtual Status PunchHole(uint64_t offset, uint64_t len) = 0;
  virtual Status Truncate(uint64_t size) = 0;
  virtual Result<uint64_t> Size() = 0;
  // The first offset >= from that holds data (SEEK_DATA); the file size when none does.
  virtual Result<uint64_t> NextData(uint64_t from) = 0;
  virtual const std::string& path() const = 0;
};

// An advisory lock on a file, held until this object is destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;

  // The POSIX Env of the process. Never deleted.
  static Env* Default();

  virtual Result<std::unique_ptr<File>> OpenFile(const std::string& path, OpenMode mode) = 0;
  virtual Status DeleteFile(const std::string& path) = 0;
  // Atomically replaces `to` if it exists.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Creates one directory level; OK if it already exists as a directory.
  virtual Status CreateDir(const std::string& path) = 0;
  virtual Status DeleteDir(const std::string& path) = 0;
  // Names in a directory, without "." and "..", in no particular order.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // ENOENT when path does not exist.
  virtual Result<FileInfo> Stat(const std::string& path) = 0;
  // Makes creations, renames and deletions inside the directory durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Takes an exclusive lock on `path` (created if missing). EBUSY when another holder has it,
  // including another process.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;
  virtual Result<SpaceInfo> GetSpaceInfo(const std::string& path) = 0;
};

// A fresh, empty in-memory Env. Files live as long as the Env.
std::unique_ptr<Env> NewMemEnv();

}  // namespace rankfs
