// SyncLedger: how much of each file a fault model may keep after a power cut or a failed sync.
//
// Both fault models (FaultInjectionEnv for rankfs's own files, RocksFaultEnv for RocksDB's) fake
// the data loss of a power cut the same way: a file created since tracking began and never
// synced is deleted; any other written file is cut back to its size at its last successful sync.
// They also fake what Linux does when fdatasync(2) fails: the kernel may already have dropped
// the dirty pages, so the bytes written since the last successful sync are gone at once, and a
// later sync that succeeds says nothing about them. This class keeps that state per path; the
// models apply its verdicts through their own file systems.
//
// Limitations (state them when relying on this): in-place overwrites and hole punches inside the
// synced size are not rolled back, and creations, renames and deletions are durable at once
// (directory fsync is not modelled). Pack files and RocksDB's files are append-only, so this
// models them exactly.
//
// Thread-safety: all methods may be called from any thread. Lock order: the ledger's mutex
// before a File's.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "store/status.h"

namespace rankfs {

class SyncLedger {
 public:
  // One tracked path. Open file wrappers hold it, so writes through a handle opened before a
  // rename are still tracked under the new name.
  class File {
   public:
    // Bytes were written up to `end` (the file's size is at least `end` now).
    void Wrote(uint64_t end);
    // The file was truncated to `size`. A shrink is not rolled back (the old bytes are gone), so
    // the synced size never exceeds it.
    void Truncated(uint64_t size);
    // The size to record if the sync about to start succeeds: what was written before the call.
    uint64_t SizeBeforeSync();
    // A sync that started when the file was `size` bytes long succeeded.
    void Synced(uint64_t size);
    // A sync failed: the unsynced bytes are dropped. Returns the size to cut the file back to.
    uint64_t SyncFailed();

   private:
    friend class SyncLedger;
    std::mutex mu;
    uint64_t size = 0;         // guarded by mu; the size as far as writes through us tell
    uint64_t synced_size = 0;  // guarded by mu
    bool created = false;      // guarded by mu; created since tracking began
    bool ever_synced = false;  // guarded by mu
    bool dirty = false;        // guarded by mu; written or truncated since tracking began
  };

  // Starts or continues tracking `path`, opened for writing. `created`: the open made a new,
  // empty file, so any older state of the name is stale. `size`: the file's size now, taken as
  // durable when the file existed before.
  std::shared_ptr<File> Track(const std::string& path, bool created, uint64_t size);
  void Renamed(const std::string& from, const std::string& to);
  void Deleted(const std::string& path);

  // How a fault model changes its files. `size` returns ENOENT for a file that is gone.
  struct FileOps {
    std::function<Status(const std::string& path)> remove;
    std::function<Result<uint64_t>(const std::string& path)> size;
    std::function<Status(const std::string& path, uint64_t size)> truncate;
  };
  // The power cut: every tracked file loses what was not synced (see the header comment). Then
  // tracking starts afresh. Returns the first error.
  Status DropUnsynced(const FileOps& ops);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<File>> files_;  // guarded by mu_
};

}  // namespace rankfs
