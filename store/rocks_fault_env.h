// RocksFaultEnv: a rocksdb::Env whose file I/O obeys a FaultController (fault_injection_env.h)
// and which can drop the RocksDB data that was never synced, as a power cut would.
//
// Give the same controller to a FaultInjectionEnv and a RocksFaultEnv and one test fails the pack
// files and the metadata store together (a path filter in FailAfter tells them apart).
//
// What is checked, as FaultOp (the path matched is RocksDB's file name):
//   kFaultOpen     NewSequentialFile, NewRandomAccessFile, NewWritableFile, ReopenWritableFile,
//                  ReuseWritableFile, NewRandomRWFile, NewDirectory
//   kFaultRead     reads of sequential, random-access and random-read-write files (not ReadAsync)
//   kFaultWrite    Append, PositionedAppend, RandomRW Write
//   kFaultSync     Sync, Fsync, RangeSync, directory Fsync
//   kFaultTruncate writable-file Truncate and FileSystem::Truncate
//   kFaultDelete   DeleteFile
//   kFaultRename   RenameFile (`from`), ReuseWritableFile (`old_fname`)
//   kFaultDirOp    CreateDir, CreateDirIfMissing, DeleteDir, LinkFile
// A failed Sync or Fsync drops what the file gained since its last successful sync (the kernel
// may have dropped the dirty pages; sync_ledger.h); a FaultEffect::kApplied fault on a WAL sync
// makes a write whose outcome RocksDB cannot know: durable, but reported as failed.
// Errors come back as IOStatus::NoSpace() for ENOSPC and IOStatus::IOError() otherwise. Close,
// Flush and LockFile are never failed, so a DB can always be shut down. The info LOG file is not
// routed through this wrapper by RocksDB 7.8 (NewLogger goes to the base file system).
//
// Thread-safety: safe for RocksDB's concurrent use. DropUnsyncedData requires the DB to be closed
// (or the controller inactive, so that stray writes fail).
#pragma once

#include <rocksdb/env.h>

#include <memory>

#include "store/fault_injection_env.h"
#include "store/status.h"

namespace rankfs {

class RocksFaultFs;  // the rocksdb::FileSystemWrapper doing the work (rocks_fault_env.cc)

class RocksFaultEnv {
 public:
  // Files go to base->GetFileSystem(); threads and the clock come from rocksdb::Env::Default()
  // (rocksdb::NewCompositeEnv takes no other). `base` must outlive this object.
  explicit RocksFaultEnv(std::shared_ptr<FaultController> controller,
                         rocksdb::Env* base = rocksdb::Env::Default());
  ~RocksFaultEnv();
  RocksFaultEnv(const RocksFaultEnv&) = delete;
  RocksFaultEnv& operator=(const RocksFaultEnv&) = delete;

  // Set it as rocksdb::Options::env. Owned by this object: close every DB that uses it first.
  rocksdb::Env* env() const { return env_.get(); }
  FaultController& controller() const { return *controller_; }

  // Fakes the data loss of a power cut for every file RocksDB wrote through env(): a file
  // created since tracking began and never synced (Sync or Fsync; RangeSync does not count) is
  // deleted; any other written file is truncated back to its size at its last sync. Then
  // tracking starts afresh. Bypasses the controller. The limits of the model are SyncLedger's
  // (sync_ledger.h); RocksDB only appends, except CURRENT, which it replaces by a synced rename.
  // REQUIRES: no DB is using env() (delete the DB object first, as a crash would).
  Status DropUnsyncedData();

 private:
  const std::shared_ptr<FaultController> controller_;
  std::shared_ptr<RocksFaultFs> fs_;
  std::unique_ptr<rocksdb::Env> env_;  // holds a reference to fs_
};

// The same fault wrapper when no DropUnsyncedData is needed. The Env owns its file system.
std::unique_ptr<rocksdb::Env> NewFaultInjectingRocksEnv(
    std::shared_ptr<FaultController> controller, rocksdb::Env* base = rocksdb::Env::Default());

}  // namespace rankfs
