// CrashWorkload: concurrent writers for crash tests, with a ledger of what every name may hold
// after the crash, and the check of a rebooted filesystem against that ledger.
//
// The writers work in one directory through a CrashTarget (real syscalls on a FUSE mount in
// crash_loop_test, FsCore calls over a fault-injecting store in power_cut_test). Four kinds:
//   fsyncer   create, write, fsync, sometimes append more without fsync, close;
//   unsynced  create, write, close (never fsync'd);
//   renamer   create tmpN, write, fsync, close, rename to one of three final names (replacing
//             the older version), fsync the directory (the pattern careful programs use);
//   deleter   create, write, fsync, unlink (closing before or after the unlink).
// Each writer stops at its first failed call; a failure before MarkCrash() is an error --
// unless the options say that faults are injected: then EIO (and ENOSPC) may come from any call.
// A failed fsync is tried again (a later one that returns covers every byte written before it,
// rankfs's promise); a writer whose other call fails gives that file up and goes on.
//
// What a crash may leave (rankfs's contract, docs/design.md "Durability rules"):
//   - a file whose fsync returned has at least the synced content exactly;
//   - every byte beyond what was synced is the written byte or zero, and no file is longer than
//     what was written;
//   - names: an fsync that returned, of a file or of a directory, makes every namespace change
//     that completed before the fsync started durable (it is a synced RocksDB write after
//     them). So a create, rename or unlink that completed before such an fsync must be visible
//     after the crash; one that did not may or may not be. A renamed, fsync'd version is always
//     somewhere: under its tmp name or as the final name's content (or a later version's).
//   - no name appears that no writer created, and nothing fails to read.
//
// Thread-safety: Start/MarkCrash/Join/Verify from one thread; the writers are internal threads.
// The CrashTarget must be safe for concurrent calls on distinct handles and names.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace rankfs {

// The filesystem under test. Names are "DIR/NAME" relative to the filesystem's root. Every call
// returns 0 (Create: a handle >= 0) or -errno.
class CrashTarget {
 public:
  virtual ~CrashTarget() = default;
  virtual int MkDir(const std::string& dir) = 0;
  // Creates or truncates a regular file (mode 0644) and opens it for writing.
  virtual int Create(const std::string& name) = 0;
  virtual int Write(int handle, uint64_t offset, std::string_view data) = 0;
  virtual int Fsync(int handle) = 0;
  // fsync(2) of the directory `dir` (its entries become durable).
  virtual int FsyncDir(const std::string& dir) = 0;
  virtual int Close(int handle) = 0;
  virtual int Rename(const std::string& from, const std::string& to) = 0;  // replaces `to`
  virtual int Unlink(const std::string& name) = 0;
  virtual int RmDir(const std::string& dir) = 0;
  // The whole content of `name`; -ENOENT when it does not exist.
  virtual int ReadFile(const std::string& name, std::string* out) = 0;
  // The names in `dir` (without "." and "..").
  virtual int ListDir(const std::string& dir, std::vector<std::string>* names) = 0;
};

struct CrashWorkloadOptions {
  std::string dir;                 // the directory the writers create files in (must exist)
  uint64_t seed = 1;
  int writers_per_kind = 1;        // 4 kinds
  size_t max_file_bytes = 2 << 20;
  const std::string* pool = nullptr;  // file contents are slices of this; >= 2 * max_file_bytes
  // Faults are injected into the filesystem: EIO/ENOSPC before the crash are expected (see the
  // header comment), counted in injected_errors().
  bool faults = false;
};

// What Verify saw, for the log.
struct CrashVerifyStats {
  size_t files = 0;             // names present and checked
  size_t synced_exact = 0;      // of which held at least their fsync'd content
  size_t unsynced_bytes = 0;    // bytes beyond a sync point that were present
  size_t unsynced_zero = 0;     // of which read as zero where non-zero was written
  size_t absent_optional = 0;   // names that may be gone and were
};

// The content of a directory as observed after a crash, to be checked exactly later.
using DirSnapshot = std::map<std::string, std::string>;  // NAME -> content digest

class CrashWorkload {
 public:
  CrashWorkload(CrashTarget* target, CrashWorkloadOptions options);
  ~CrashWorkload();  // joins the writers (MarkCrash first if they still run)
  CrashWorkload(const CrashWorkload&) = delete;
  CrashWorkload& operator=(const CrashWorkload&) = delete;

  void Start();
  // From now on failed calls are expected; writers stop at their next call. Call before the
  // crash is caused.
  void MarkCrash();
  void Join();

  // Failures of calls made before MarkCrash (each one line). Must be empty.
  std::vector<std::string> Errors() const;
  size_t fsyncs_returned() const { return fsyncs_ok_.load(); }
  // Calls that failed with an expected error of an injected fault (options.faults).
  size_t injected_errors() const { return injected_errors_.load(); }
  size_t files_created() const;

  // Checks the rebooted filesystem `after` against the ledger. Returns one line per violation
  // (empty: all rules hold). `snapshot` (optional) receives what the directory holds.
  std::vector<std::string> Verify(CrashTarget* after, CrashVerifyStats* stats,
                                  DirSnapshot* snapshot) const;

 private:
  enum Kind { kFsyncer = 0, kUnsynced, kRenamer, kDeleter, kNumKinds };
  // One file a writer created (or tried to). Written by its writer thread only; read by
  // Verify after Join.
  struct FileRec {
    std::string name;     // DIR/NAME
    std::string full;     // every byte sent to the file, in order (writes are appends)
    bool create_done = false;
    uint64_t create_tick = 0;
    size_t synced_size = 0;
    bool synced = false;
    std::string final_name;  // renamer: the rename target
    bool rename_issued = false, rename_done = false;
    uint64_t rename_tick = 0;
    bool unlink_issued = false, unlink_done = false;
    uint64_t unlink_tick = 0;
  };
  struct Writer {
    int id = 0;
    Kind kind = kFsyncer;
    std::vector<FileRec> files;
    std::vector<std::string> errors;
    int failed_in_a_row = 0;  // calls failed by injected faults since the last one that worked
    std::thread thread;
  };

  void RunWriter(Writer* w);
  // Runs `call`; on failure records it (an error unless crashed_ or an expected injected
  // fault) and returns false.
  bool Ok(Writer* w, int rc, const std::string& what);
  // One file's life (create, write, fsync, rename or unlink, close). Returns false when the
  // writer must stop (the crash, or an unexpected error).
  bool RunFile(Writer* w, int n, std::mt19937_64& rng);
  uint64_t Tick() { return clock_.fetch_add(1) + 1; }
  bool Durable(bool done, uint64_t tick) const { return done && tick < durable_epoch_.load(); }

  CrashTarget* const target_;
  const CrashWorkloadOptions options_;
  std::vector<std::unique_ptr<Writer>> writers_;
  std::atomic<bool> crashed_{false};
  std::atomic<uint64_t> clock_{0};
  // The largest start tick of an fsync that returned OK.
  std::atomic<uint64_t> durable_epoch_{0};
  std::atomic<size_t> fsyncs_ok_{0};
  std::atomic<size_t> injected_errors_{0};
};

// A short digest of `data` (SHA-256 hex) for snapshots.
std::string ContentDigest(std::string_view data);

// Checks that `dir` holds exactly `snapshot`; one line per difference.
std::vector<std::string> VerifySnapshot(CrashTarget* target, const std::string& dir,
                                        const DirSnapshot& snapshot);

}  // namespace rankfs
