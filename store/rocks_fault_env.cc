#include "store/rocks_fault_env.h"

#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace rankfs {
namespace {

using rocksdb::DataVerificationInfo;
using rocksdb::FileOptions;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// The IOStatus of an injected fault.
IOStatus Injected(int err, const std::string& path, const char* what) {
  std::string msg =
      std::string(what) + " " + path + ": " + ErrnoString(err) + " (injected fault)";
  return err == ENOSPC ? IOStatus::NoSpace(msg) : IOStatus::IOError(msg);
}

// Runs `call` unless the controller stops it: a FaultEffect::kApplied fault runs it and then
// reports the error.
template <typename Call>
IOStatus Obey(FaultController& controller, FaultOp op, const std::string& path, const char* what,
              Call call) {
  const Fault f = controller.Check(op, path);
  if (!f) return call();
  if (f.applied()) {
    IOStatus done = call();
    if (!done.ok()) return done;
  }
  return Injected(f.err, path, what);
}

// Checks `op` on `path` with the controller; the IOStatus to fail with, or OK (for calls whose
// fault can only mean "nothing happened").
IOStatus Refused(FaultController& controller, FaultOp op, const std::string& path,
                 const char* what) {
  const rankfs::Fault f = controller.Check(op, path);
  return f ? Injected(f.err, path, what) : IOStatus::OK();
}

class FaultWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  // `truncate` cuts the file back after a failed sync (the kernel dropped its dirty pages).
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> base, std::string fname,
                    std::shared_ptr<SyncLedger::File> ledger,
                    std::shared_ptr<FaultController> controller)
      : FSWritableFileOwnerWrapper(std::move(base)),
        fname_(std::move(fname)),
        ledger_(std::move(ledger)),
        controller_(std::move(controller)) {}

  // Both Append overloads are overridden: the wrapper's verification overload would otherwise
  // forward straight to the target and skip the check.
  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* dbg) override {
    return Obey(*controller_, kFaultWrite, fname_, "append", [&] {
      IOStatus s = target()->Append(data, options, dbg);
      if (s.ok()) Grew(data.size(), std::nullopt);
      return s;
    });
  }
  IOStatus Append(const Slice& data, const IOOptions& options, const DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    return Obey(*controller_, kFaultWrite, fname_, "append", [&] {
      IOStatus s = target()->Append(data, options, info, dbg);
      if (s.ok()) Grew(data.size(), std::nullopt);
      return s;
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    return Obey(*controller_, kFaultWrite, fname_, "positioned append", [&] {
      IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
      if (s.ok()) Grew(data.size(), offset);
      return s;
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const DataVerificationInfo& info, IODebugContext* dbg) override {
    return Obey(*controller_, kFaultWrite, fname_, "positioned append", [&] {
      IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
      if (s.ok()) Grew(data.size(), offset);
      return s;
    });
  }

  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    return Obey(*controller_, kFaultTruncate, fname_, "truncate", [&] {
      IOStatus s = target()->Truncate(size, options, dbg);
      if (s.ok()) ledger_->Truncated(size);
      return s;
    });
  }

  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    return SyncWith(options, dbg, [&] { return target()->Sync(options, dbg); });
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    return SyncWith(options, dbg, [&] { return target()->Fsync(options, dbg); });
  }
  // sync_file_range(2) writes pages back but promises nothing after a crash (no metadata, no
  // disk cache flush), so it can fail but never counts as a sync.
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    return Obey(*controller_, kFaultSync, fname_, "range sync",
                [&] { return target()->RangeSync(offset, nbytes, options, dbg); });
  }
  // Close is forwarded unchecked (it releases the fd); unsynced data stays unsynced.

 private:
  void Grew(size_t n, std::optional<uint64_t> offset) {
    const uint64_t end = offset ? *offset + n : ledger_->SizeBeforeSync() + n;
    ledger_->Wrote(end);
  }

  template <typename SyncFn>
  IOStatus SyncWith(const IOOptions& options, IODebugContext* dbg, SyncFn sync) {
    const rankfs::Fault f = controller_->Check(kFaultSync, fname_);
    if (f.drops_unsynced()) {
      // The kernel may have dropped the dirty pages: the unsynced bytes are gone for good.
      const uint64_t keep = ledger_->SyncFailed();
      if (target()->GetFileSize(options, dbg) > keep) {
        target()->Truncate(keep, options, dbg).PermitUncheckedError();
      }
      return Injected(f.err, fname_, "sync");
    }
    // The size is taken before the sync: only what was appended before the call is durable.
    const uint64_t size = ledger_->SizeBeforeSync();
    if (f && !f.applied()) return Injected(f.err, fname_, "sync");  // the power is off
    IOStatus s = sync();
    if (s.ok()) ledger_->Synced(size);
    if (s.ok() && f.applied()) return Injected(f.err, fname_, "sync");
    return s;
  }

  const std::string fname_;
  const std::shared_ptr<SyncLedger::File> ledger_;
  const std::shared_ptr<FaultController> controller_;
};

class FaultSequentialFile final : public rocksdb::FSSequentialFileOwnerWrapper {
 public:
  FaultSequentialFile(std::unique_ptr<rocksdb::FSSequentialFile> base, std::string fname,
                      std::shared_ptr<FaultController> controller)
      : FSSequentialFileOwnerWrapper(std::move(base)),
        fname_(std::move(fname)),
        controller_(std::move(controller)) {}

  IOStatus Read(size_t n, const IOOptions& options, Slice* result, char* scratch,
                IODebugContext* dbg) override {
    IOStatus s = Refused(*controller_, kFaultRead, fname_, "read");
    return s.ok() ? target()->Read(n, options, result, scratch, dbg) : s;
  }
  IOStatus PositionedRead(uint64_t offset, size_t n, const IOOptions& options, Slice* result,
                          char* scratch, IODebugContext* dbg) override {
    IOStatus s = Refused(*controller_, kFaultRead, fname_, "read");
    return s.ok() ? target()->PositionedRead(offset, n, options, result, scratch, dbg) : s;
  }

 private:
  const std::string fname_;
  const std::shared_ptr<FaultController> controller_;
};

class FaultRandomAccessFile final : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultRandomAccessFile(std::unique_ptr<rocksdb::FSRandomAccessFile> base, std::string fname,
                        std::shared_ptr<FaultController> controller)
      : FSRandomAccessFileOwnerWrapper(std::move(base)),
        fname_(std::move(fname)),
        controller_(std::move(controller)) {}

  IOStatus Read(uint64_t offset, size_t n, const IOOptions& options, Slice* result, char* scratch,
                IODebugContext* dbg) const override {
    IOStatus s = Refused(*controller_, kFaultRead, fname_, "read");
    return s.ok() ? target()->Read(offset, n, options, result, scratch, dbg) : s;
  }
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs, const IOOptions& options,
                     IODebugContext* dbg) override {
    IOStatus s = Refused(*controller_, kFaultRead, fname_, "multiread");
    if (!s.ok()) {
      for (size_t i = 0; i < num_reqs; ++i) reqs[i].status = s;
      return s;
    }
    return target()->MultiRead(reqs, num_reqs, options, dbg);
  }

 private:
  const std::string fname_;
  const std::shared_ptr<FaultController> controller_;
};

// Random read-write files are checked but not tracked for DropUnsyncedData: RocksDB uses them
// only for features rankfs does not enable (e.g. external file ingestion with global seqno).
class FaultRandomRWFile final : public rocksdb::FSRandomRWFileOwnerWrapper {
 public:
  FaultRandomRWFile(std::unique_ptr<rocksdb::FSRandomRWFile> base, std::string fname,
                    std::shared_ptr<FaultController> controller)
      : FSRandomRWFileOwnerWrapper(std::move(base)),
        fname_(std::move(fname)),
        controller_(std::move(controller)) {}

  IOStatus Write(uint64_t offset, const Slice& data, const IOOptions& options,
                 IODebugContext* dbg) override {
    IOStatus s = Refused(*controller_, kFaultWrite, fname_, "write");
    return s.ok() ? target()->Write(offset, data, options, dbg) : s;
  }
  IOStatus Read(uint64_t offset, size_t n, const IOOptions& options, Slice* result, char* scratch,
                IODebugContext* dbg) const override {
    IOStatus s = Refused(*controller_, kFaultRead, fname_, "read");
    return s.ok() ? target()->Read(offset, n, options, result, scratch, dbg) : s;
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = Refused(*controller_, kFaultSync, fname_, "sync");
    return s.ok() ? target()->Sync(options, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = Refused(*controller_, kFaultSync, fname_, "fsync");
    return s.ok() ? target()->Fsync(options, dbg) : s;
  }

 private:
  const std::string fname_;
  const std::shared_ptr<FaultController> controller_;
};

class FaultDirectory final : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> base, std::string name,
                 std::shared_ptr<FaultController> controller)
      : FSDirectoryWrapper(std::move(base)),
        name_(std::move(name)),
        controller_(std::move(controller)) {}

  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = Refused(*controller_, kFaultSync, name_, "fsync directory");
    return s.ok() ? FSDirectoryWrapper::Fsync(options, dbg) : s;
  }
  IOStatus FsyncWithDirOptions(const IOOptions& options, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& dir_options) override {
    IOStatus s = Refused(*controller_, kFaultSync, name_, "fsync directory");
    return s.ok() ? FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options) : s;
  }

 private:
  const std::string name_;
  const std::shared_ptr<FaultController> controller_;
};

}  // namespace

// A FileSystemWrapper that consults the controller and tracks writable files by name.
class RocksFaultFs final : public rocksdb::FileSystemWrapper {
 public:
  RocksFaultFs(const std::shared_ptr<rocksdb::FileSystem>& base,
               std::shared_ptr<FaultController> controller)
      : FileSystemWrapper(base), controller_(std::move(controller)) {}

  static const char* kClassName() { return "RankfsRocksFaultFs"; }
  const char* Name() const override { return kClassName(); }

  IOStatus NewSequentialFile(const std::string& f, const FileOptions& opts,
                             std::unique_ptr<rocksdb::FSSequentialFile>* r,
                             IODebugContext* dbg) override {
    IOStatus s = Check(kFaultOpen, f, "open");
    if (s.ok()) s = target()->NewSequentialFile(f, opts, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultSequentialFile>(std::move(*r), f, controller_);
    return s;
  }

  IOStatus NewRandomAccessFile(const std::string& f, const FileOptions& opts,
                               std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                               IODebugContext* dbg) override {
    IOStatus s = Check(kFaultOpen, f, "open");
    if (s.ok()) s = target()->NewRandomAccessFile(f, opts, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultRandomAccessFile>(std::move(*r), f, controller_);
    return s;
  }

  IOStatus NewWritableFile(const std::string& f, const FileOptions& opts,
                           std::unique_ptr<rocksdb::FSWritableFile>* r,
                           IODebugContext* dbg) override {
    IOStatus s = CheckCreate(f);
    if (s.ok()) s = target()->NewWritableFile(f, opts, r, dbg);
    if (s.ok()) WrapWritable(f, /*created=*/true, r);
    return s;
  }

  IOStatus ReopenWritableFile(const std::string& f, const FileOptions& opts,
                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                              IODebugContext* dbg) override {
    IOStatus s = CheckCreate(f);
    if (!s.ok()) return s;
    const bool existed = target()->FileExists(f, IOOptions(), dbg).ok();
    s = target()->ReopenWritableFile(f, opts, r, dbg);
    if (s.ok()) WrapWritable(f, /*created=*/!existed, r);
    return s;
  }

  // Renames old_fname to f and writes over it; tracked like a new file.
  IOStatus ReuseWritableFile(const std::string& f, const std::string& old_fname,
                             const FileOptions& opts, std::unique_ptr<rocksdb::FSWritableFile>* r,
                             IODebugContext* dbg) override {
    IOStatus s = Check(kFaultRename, old_fname, "rename");
    if (s.ok()) s = CheckCreate(f);
    if (s.ok()) s = target()->ReuseWritableFile(f, old_fname, opts, r, dbg);
    if (s.ok()) {
      Untrack(old_fname);
      WrapWritable(f, /*created=*/true, r);
    }
    return s;
  }

  IOStatus NewRandomRWFile(const std::string& f, const FileOptions& opts,
                           std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                           IODebugContext* dbg) override {
    IOStatus s = CheckCreate(f);
    if (s.ok()) s = target()->NewRandomRWFile(f, opts, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultRandomRWFile>(std::move(*r), f, controller_);
    return s;
  }

  IOStatus NewDirectory(const std::string& name, const IOOptions& io_opts,
                        std::unique_ptr<rocksdb::FSDirectory>* r, IODebugContext* dbg) override {
    IOStatus s = Check(kFaultOpen, name, "open directory");
    if (s.ok()) s = target()->NewDirectory(name, io_opts, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultDirectory>(std::move(*r), name, controller_);
    return s;
  }

  IOStatus DeleteFile(const std::string& f, const IOOptions& opts, IODebugContext* dbg) override {
    IOStatus s = Check(kFaultDelete, f, "delete");
    if (s.ok()) s = target()->DeleteFile(f, opts, dbg);
    if (s.ok()) Untrack(f);
    return s;
  }

  IOStatus RenameFile(const std::string& from, const std::string& to, const IOOptions& opts,
                      IODebugContext* dbg) override {
    return Obey(*controller_, kFaultRename, from, "rename", [&] {
      IOStatus s = target()->RenameFile(from, to, opts, dbg);
      if (s.ok()) ledger_.Renamed(from, to);
      return s;
    });
  }

  // Not tracked: RocksDB 7.8 truncates through the open writable file, not by name.
  IOStatus Truncate(const std::string& f, size_t size, const IOOptions& opts,
                    IODebugContext* dbg) override {
    IOStatus s = Check(kFaultTruncate, f, "truncate");
    return s.ok() ? target()->Truncate(f, size, opts, dbg) : s;
  }

  IOStatus CreateDir(const std::string& d, const IOOptions& opts, IODebugContext* dbg) override {
    IOStatus s = Check(kFaultDirOp, d, "mkdir");
    return s.ok() ? target()->CreateDir(d, opts, dbg) : s;
  }
  IOStatus CreateDirIfMissing(const std::string& d, const IOOptions& opts,
                              IODebugContext* dbg) override {
    IOStatus s = Check(kFaultDirOp, d, "mkdir");
    return s.ok() ? target()->CreateDirIfMissing(d, opts, dbg) : s;
  }
  IOStatus DeleteDir(const std::string& d, const IOOptions& opts, IODebugContext* dbg) override {
    IOStatus s = Check(kFaultDirOp, d, "rmdir");
    return s.ok() ? target()->DeleteDir(d, opts, dbg) : s;
  }
  IOStatus LinkFile(const std::string& from, const std::string& to, const IOOptions& opts,
                    IODebugContext* dbg) override {
    IOStatus s = Check(kFaultDirOp, to, "link");
    return s.ok() ? target()->LinkFile(from, to, opts, dbg) : s;
  }

  Status DropUnsyncedData() {
    auto status = [](const IOStatus& s) {
      return s.ok() ? Status::Ok() : Status(s.IsPathNotFound() || s.IsNotFound() ? ENOENT : EIO,
                                             s.ToString());
    };
    SyncLedger::FileOps ops;
    ops.remove = [&](const std::string& f) {
      return status(target()->DeleteFile(f, IOOptions(), nullptr));
    };
    ops.size = [&](const std::string& f) -> Result<uint64_t> {
      uint64_t size = 0;
      RANKFS_RETURN_IF_ERROR(status(target()->GetFileSize(f, IOOptions(), &size, nullptr)));
      return size;
    };
    ops.truncate = [&](const std::string& f, uint64_t size) {
      return status(TruncateFile(f, size));
    };
    return ledger_.DropUnsynced(ops);
  }

 private:
  IOStatus Check(FaultOp op, const std::string& path, const char* what) {
    return Refused(*controller_, op, path, what);
  }

  // FileSystem::Truncate is not implemented by RocksDB 7.8's POSIX file system, so the file is
  // reopened for writing (which neither truncates nor moves data) and truncated through that.
  IOStatus TruncateFile(const std::string& fname, uint64_t size) {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    IOStatus s = target()->ReopenWritableFile(fname, FileOptions(), &file, nullptr);
    if (s.ok()) s = file->Truncate(size, IOOptions(), nullptr);
    if (file != nullptr) {
      IOStatus closed = file->Close(IOOptions(), nullptr);
      if (s.ok()) s = closed;
    }
    return s;
  }

  // An open that may create the file: also refused while the controller is inactive.
  IOStatus CheckCreate(const std::string& path) {
    const rankfs::Fault f = controller_->CheckOpen(path, /*may_create=*/true);
    return f ? Injected(f.err, path, "open") : IOStatus::OK();
  }

  // Replaces *r by a tracking wrapper. `created`: the file starts empty and is new, so any older
  // state of the name is stale.
  void WrapWritable(const std::string& f, bool created,
                    std::unique_ptr<rocksdb::FSWritableFile>* r) {
    // A reopened file's existing bytes are taken as durable.
    const uint64_t size = created ? 0 : (*r)->GetFileSize(IOOptions(), nullptr);
    *r = std::make_unique<FaultWritableFile>(std::move(*r), f, ledger_.Track(f, created, size),
                                             controller_);
  }

  void Untrack(const std::string& f) { ledger_.Deleted(f); }

  const std::shared_ptr<FaultController> controller_;
  // Writable files opened since the last DropUnsyncedData, by RocksDB file name.
  SyncLedger ledger_;
};

RocksFaultEnv::RocksFaultEnv(std::shared_ptr<FaultController> controller, rocksdb::Env* base)
    : controller_(std::move(controller)),
      fs_(std::make_shared<RocksFaultFs>(base->GetFileSystem(), controller_)),
      env_(rocksdb::NewCompositeEnv(fs_)) {}

RocksFaultEnv::~RocksFaultEnv() = default;

Status RocksFaultEnv::DropUnsyncedData() { return fs_->DropUnsyncedData(); }

std::unique_ptr<rocksdb::Env> NewFaultInjectingRocksEnv(std::shared_ptr<FaultController> controller,
                                                        rocksdb::Env* base) {
  return rocksdb::NewCompositeEnv(
      std::make_shared<RocksFaultFs>(base->GetFileSystem(), std::move(controller)));
}

}  // namespace rankfs
