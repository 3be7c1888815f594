// FaultController, FaultInjectionEnv (on MemEnv and PosixEnv) and the RocksDB fault wrapper.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <memory>
#include <string>

#include "store/fault_injection_env.h"
#include "store/rocks_fault_env.h"
#include "tests/testutil/temp_dir.h"

namespace rankfs {
namespace {

// A FaultInjectionEnv over a fresh MemEnv, with helpers.
class FaultEnvTest : public ::testing::Test {
 protected:
  FaultEnvTest() : base_(NewMemEnv()), env_(base_.get()) {}

  std::unique_ptr<File> Open(Env* env, const std::string& path, OpenMode mode) {
    Result<std::unique_ptr<File>> file = env->OpenFile(path, mode);
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    return file.ok() ? std::move(file).value() : nullptr;
  }

  // The contents of `path`, read from the base Env (bypassing faults), or "<ENOENT>".
  std::string Contents(const std::string& path) {
    Result<std::unique_ptr<File>> file = base_->OpenFile(path, OpenMode::kReadOnly);
    if (!file.ok()) return file.status().code() == ENOENT ? "<ENOENT>" : "<error>";
    std::string data(1 << 16, '\0');
    size_t got = 0;
    EXPECT_TRUE((*file)->PRead(0, data.size(), data.data(), &got).ok());
    data.resize(got);
    return data;
  }

  FaultController& controller() { return env_.controller(); }

  std::unique_ptr<Env> base_;
  FaultInjectionEnv env_;
};

TEST_F(FaultEnvTest, EnospcAfterThreeWritesWritesNothing) {
  controller().FailAfter(kFaultWrite, 3, ENOSPC);
  std::unique_ptr<File> file = Open(&env_, "/f", OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, "aaaa").ok());
  ASSERT_TRUE(file->PWrite(4, "bbbb").ok());
  ASSERT_TRUE(file->PWrite(8, "cccc").ok());
  Status fourth = file->PWrite(12, "dddd");
  EXPECT_EQ(fourth.code(), ENOSPC);
  EXPECT_NE(fourth.message().find("/f"), std::string::npos) << fourth.message();
  EXPECT_EQ(Contents("/f"), "aaaabbbbcccc");
  EXPECT_EQ(controller().injected(), 1u);
  // count < 0: the rule keeps failing, even overwrites inside the file.
  EXPECT_EQ(file->PWrite(0, "zz").code(), ENOSPC);
  EXPECT_EQ(Contents("/f"), "aaaabbbbcccc");
  EXPECT_EQ(controller().injected(), 2u);
  // Other operations are not affected.
  EXPECT_TRUE(file->Sync().ok());
  EXPECT_TRUE(file->Truncate(4).ok());
  controller().ClearFaults();
  EXPECT_TRUE(file->PWrite(4, "ok").ok());
  EXPECT_EQ(Contents("/f"), "aaaaok");
}

TEST_F(FaultEnvTest, PathFilterSelectsFiles) {
  ASSERT_TRUE(env_.CreateDir("/packs").ok());
  controller().FailAfter(kFaultWrite | kFaultSync, 0, EIO, "/packs/");
  std::unique_ptr<File> meta = Open(&env_, "/meta", OpenMode::kCreate);
  std::unique_ptr<File> pack = Open(&env_, "/packs/000001.pack", OpenMode::kCreate);
  EXPECT_TRUE(meta->PWrite(0, "m").ok());
  EXPECT_TRUE(meta->Sync().ok());
  EXPECT_EQ(pack->PWrite(0, "p").code(), EIO);
  EXPECT_EQ(pack->Sync().code(), EIO);
  EXPECT_EQ(Contents("/packs/000001.pack"), "");
  EXPECT_EQ(controller().injected(), 2u);
}

TEST_F(FaultEnvTest, CountLimitsTheFailures) {
  controller().FailAfter(kFaultPunch, 1, EIO, "", /*count=*/2);
  std::unique_ptr<File> file = Open(&env_, "/f", OpenMode::kCreate);
  EXPECT_TRUE(file->PunchHole(0, 1).ok());
  EXPECT_EQ(file->PunchHole(0, 1).code(), EIO);
  EXPECT_EQ(file->PunchHole(0, 1).code(), EIO);
  EXPECT_TRUE(file->PunchHole(0, 1).ok());
  EXPECT_TRUE(file->PunchHole(0, 1).ok());
  EXPECT_EQ(controller().injected(), 2u);
}

// Linux may drop the dirty pages when fdatasync fails: the bytes written since the last good
// sync are gone at once, and a later sync that succeeds does not bring them back.
TEST_F(FaultEnvTest, FailedSyncDropsWhatWasNotSynced) {
  controller().FailAfter(kFaultSync, 1, EIO, "", /*count=*/1);
  std::unique_ptr<File> file = Open(&env_, "/f", OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, "durable").ok());
  ASSERT_TRUE(file->Sync().ok());
  ASSERT_TRUE(file->PWrite(7, "+dropped").ok());
  EXPECT_EQ(file->Sync().code(), EIO);
  EXPECT_EQ(Contents("/f"), "durable");
  EXPECT_TRUE(file->Sync().ok()) << "the rule fails one sync";
  ASSERT_TRUE(file->PWrite(7, "+later").ok());
  ASSERT_TRUE(file->Sync().ok());
  file.reset();
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Contents("/f"), "durable+later");
}

// FaultEffect::kApplied: the call happens, and the caller is told it failed.
TEST_F(FaultEnvTest, AppliedFaultsCarryTheCallOutAndReportAnError) {
  controller().FailAfter(kFaultWrite | kFaultSync, 1, EIO, "", /*count=*/2,
                         FaultEffect::kApplied);
  std::unique_ptr<File> file = Open(&env_, "/f", OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, "one").ok());
  EXPECT_EQ(file->PWrite(3, "two").code(), EIO);
  EXPECT_EQ(Contents("/f"), "onetwo");
  EXPECT_EQ(file->Sync().code(), EIO);
  file.reset();
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Contents("/f"), "onetwo") << "the failed sync made the bytes durable";
  EXPECT_EQ(controller().injected(), 2u);
}

TEST_F(FaultEnvTest, OnlyMatchingOpsAdvanceARule) {
  controller().FailAfter(kFaultRename, 1, EIO);
  std::unique_ptr<File> file = Open(&env_, "/a", OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, "x").ok());  // not a rename: does not count
  ASSERT_TRUE(env_.RenameFile("/a", "/b").ok());
  Status s = env_.RenameFile("/b", "/c");
  EXPECT_EQ(s.code(), EIO);
  EXPECT_EQ(Contents("/b"), "x") << "a failed rename must not reach the base Env";
  EXPECT_EQ(Contents("/c"), "<ENOENT>");
}

TEST_F(FaultEnvTest, SeveralRulesAndEveryOpKind) {
  controller().FailAfter(kFaultOpen, 0, EACCES, "/locked");
  controller().FailAfter(kFaultDelete | kFaultDirOp | kFaultPunch | kFaultTruncate | kFaultRead, 0,
                         EIO, "/x");
  EXPECT_EQ(env_.OpenFile("/locked", OpenMode::kCreate).status().code(), EACCES);
  std::unique_ptr<File> file = Open(&env_, "/x", OpenMode::kCreate);
  ASSERT_TRUE(file != nullptr);
  EXPECT_EQ(file->PunchHole(0, 10).code(), EIO);
  EXPECT_EQ(file->Truncate(0).code(), EIO);
  char buf[4];
  size_t got = 7;
  EXPECT_EQ(file->PRead(0, 4, buf, &got).code(), EIO);
  EXPECT_EQ(got, 0u);
  EXPECT_EQ(file->NextData(0).status().code(), EIO);
  EXPECT_EQ(env_.Stat("/x").status().code(), EIO);
  EXPECT_EQ(env_.DeleteFile("/x").code(), EIO);
  EXPECT_EQ(env_.CreateDir("/xdir").code(), EIO);
  EXPECT_EQ(Contents("/x"), "") << "the file must still exist";
  EXPECT_TRUE(env_.CreateDir("/other").ok());
  EXPECT_EQ(controller().injected(), 8u);
}

TEST_F(FaultEnvTest, DropUnsyncedDataRollsBackToLastSync) {
  // A file that existed before the Env saw it: its old bytes count as durable.
  {
    std::unique_ptr<File> old = Open(base_.get(), "/old", OpenMode::kCreate);
    ASSERT_TRUE(old->PWrite(0, "base").ok());
  }
  std::unique_ptr<File> old = Open(&env_, "/old", OpenMode::kReadWrite);
  ASSERT_TRUE(old->PWrite(4, "+lost").ok());

  std::unique_ptr<File> synced = Open(&env_, "/synced", OpenMode::kCreateExclusive);
  ASSERT_TRUE(synced->PWrite(0, "abc").ok());
  ASSERT_TRUE(synced->Sync().ok());
  ASSERT_TRUE(synced->PWrite(3, "def").ok());

  std::unique_ptr<File> never = Open(&env_, "/never", OpenMode::kCreate);
  ASSERT_TRUE(never->PWrite(0, "gone").ok());

  std::unique_ptr<File> renamed = Open(&env_, "/tmp1", OpenMode::kCreate);
  ASSERT_TRUE(renamed->PWrite(0, "123").ok());
  ASSERT_TRUE(renamed->Sync().ok());
  ASSERT_TRUE(env_.RenameFile("/tmp1", "/final").ok());
  ASSERT_TRUE(renamed->PWrite(3, "456").ok());  // after the rename, still tracked

  std::unique_ptr<File> deleted = Open(&env_, "/deleted", OpenMode::kCreate);
  ASSERT_TRUE(deleted->PWrite(0, "x").ok());
  ASSERT_TRUE(env_.DeleteFile("/deleted").ok());

  old.reset();
  synced.reset();
  never.reset();
  renamed.reset();
  deleted.reset();
  Status s = env_.DropUnsyncedData();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Contents("/old"), "base");
  EXPECT_EQ(Contents("/synced"), "abc");
  EXPECT_EQ(Contents("/never"), "<ENOENT>");
  EXPECT_EQ(Contents("/tmp1"), "<ENOENT>");
  EXPECT_EQ(Contents("/final"), "123");
  EXPECT_EQ(Contents("/deleted"), "<ENOENT>");

  // Tracking starts afresh: what survived is now the durable state.
  std::unique_ptr<File> again = Open(&env_, "/synced", OpenMode::kReadWrite);
  ASSERT_TRUE(again->PWrite(3, "!").ok());
  again.reset();
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Contents("/synced"), "abc");
}

TEST_F(FaultEnvTest, TwoHandlesOfOnePathShareSyncState) {
  std::unique_ptr<File> writer = Open(&env_, "/f", OpenMode::kCreate);
  std::unique_ptr<File> syncer = Open(&env_, "/f", OpenMode::kReadWrite);
  ASSERT_TRUE(writer->PWrite(0, "durable").ok());
  ASSERT_TRUE(syncer->Sync().ok());  // fdatasync covers the whole file, whichever fd
  ASSERT_TRUE(writer->PWrite(7, "-lost").ok());
  writer.reset();
  syncer.reset();
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Contents("/f"), "durable");
}

TEST_F(FaultEnvTest, TruncateBelowSyncedSizeIsNotUndone) {
  std::unique_ptr<File> file = Open(&env_, "/f", OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, "0123456789").ok());
  ASSERT_TRUE(file->Sync().ok());
  ASSERT_TRUE(file->Truncate(4).ok());
  ASSERT_TRUE(file->PWrite(4, "abcdefgh").ok());
  file.reset();
  ASSERT_TRUE(env_.DropUnsyncedData().ok());
  EXPECT_EQ(Contents("/f"), "0123");
}

TEST_F(FaultEnvTest, InactiveControllerFailsEveryChangeWithEio) {
  std::unique_ptr<File> file = Open(&env_, "/f", OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, "before").ok());
  controller().SetActive(false);
  EXPECT_FALSE(controller().active());
  EXPECT_EQ(file->PWrite(0, "after!").code(), EIO);
  EXPECT_EQ(file->Sync().code(), EIO);
  EXPECT_EQ(file->Truncate(0).code(), EIO);
  EXPECT_EQ(file->PunchHole(0, 4).code(), EIO);
  EXPECT_EQ(env_.OpenFile("/new", OpenMode::kCreate).status().code(), EIO);
  EXPECT_EQ(env_.RenameFile("/f", "/g").code(), EIO);
  EXPECT_EQ(env_.DeleteFile("/f").code(), EIO);
  EXPECT_EQ(env_.CreateDir("/d").code(), EIO);
  EXPECT_EQ(env_.SyncDir("/").code(), EIO);
  EXPECT_EQ(Contents("/f"), "before");
  EXPECT_EQ(Contents("/new"), "<ENOENT>");
  EXPECT_EQ(Contents("/g"), "<ENOENT>");
  EXPECT_EQ(controller().injected(), 9u);
  // Reads and opening an existing file still work.
  std::unique_ptr<File> reader = Open(&env_, "/f", OpenMode::kReadOnly);
  char buf[6];
  size_t got = 0;
  ASSERT_TRUE(reader->PRead(0, 6, buf, &got).ok());
  EXPECT_EQ(std::string(buf, got), "before");

  controller().SetActive(true);
  EXPECT_TRUE(file->PWrite(0, "after!").ok());
  EXPECT_EQ(Contents("/f"), "after!");
}

TEST_F(FaultEnvTest, RulesPauseWhileInactive) {
  controller().FailAfter(kFaultWrite, 1, ENOSPC);
  std::unique_ptr<File> file = Open(&env_, "/f", OpenMode::kCreate);
  controller().SetActive(false);
  EXPECT_EQ(file->PWrite(0, "x").code(), EIO);  // the power-cut error, not the rule's
  controller().SetActive(true);
  EXPECT_TRUE(file->PWrite(0, "x").ok()) << "a write failed by the power cut must not count";
  EXPECT_EQ(file->PWrite(1, "y").code(), ENOSPC);
}

// The same drop on the real file system: truncation and deletion reach the disk.
TEST(FaultInjectionPosixTest, DropUnsyncedDataOnDisk) {
  TempDir tmp("rankfs-fault-");
  FaultInjectionEnv env(Env::Default());
  const std::string kept = tmp.Join("kept"), lost = tmp.Join("lost");
  {
    Result<std::unique_ptr<File>> file = env.OpenFile(kept, OpenMode::kCreateExclusive);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->PWrite(0, std::string(8192, 'k')).ok());
    ASSERT_TRUE((*file)->Sync().ok());
    ASSERT_TRUE((*file)->PWrite(8192, std::string(4096, 'u')).ok());
    Result<std::unique_ptr<File>> other = env.OpenFile(lost, OpenMode::kCreate);
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE((*other)->PWrite(0, "never synced").ok());
  }
  env.controller().SetActive(false);
  ASSERT_TRUE(env.DropUnsyncedData().ok()) << "must work while the controller is inactive";
  env.controller().SetActive(true);
  Result<FileInfo> info = Env::Default()->Stat(kept);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 8192u);
  EXPECT_EQ(Env::Default()->Stat(lost).status().code(), ENOENT);
}

// ---------------------------------------------------------------------------------------------
// RocksDB

std::unique_ptr<rocksdb::DB> OpenDb(rocksdb::Env* env, const std::string& dir,
                                    rocksdb::Status* status) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.env = env;
  rocksdb::DB* db = nullptr;
  *status = rocksdb::DB::Open(options, dir, &db);
  return std::unique_ptr<rocksdb::DB>(db);
}

std::string Get(rocksdb::DB* db, const std::string& key) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return "<not found>";
  return s.ok() ? value : "<" + s.ToString() + ">";
}

TEST(RocksFaultEnvTest, PowerCutKeepsSyncedWritesOnly) {
  TempDir tmp("rankfs-rocks-fault-");
  const std::string dir = tmp.Join("db");
  auto controller = std::make_shared<FaultController>();
  RocksFaultEnv fault_env(controller);
  rocksdb::Status s;
  std::unique_ptr<rocksdb::DB> db = OpenDb(fault_env.env(), dir, &s);
  ASSERT_TRUE(s.ok()) << s.ToString();

  rocksdb::WriteOptions synced;
  synced.sync = true;
  ASSERT_TRUE(db->Put(synced, "synced", "1").ok());
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "unsynced", "2").ok());
  EXPECT_EQ(Get(db.get(), "unsynced"), "2");

  controller->SetActive(false);  // the power goes out...
  db.reset();                    // ...and the process dies with it
  Status dropped = fault_env.DropUnsyncedData();
  ASSERT_TRUE(dropped.ok()) << dropped.ToString();
  controller->SetActive(true);

  db = OpenDb(fault_env.env(), dir, &s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Get(db.get(), "synced"), "1");
  EXPECT_EQ(Get(db.get(), "unsynced"), "<not found>") << "the unsynced WAL tail was not dropped";
  // The reopened DB works normally.
  ASSERT_TRUE(db->Put(synced, "after", "3").ok());
  EXPECT_EQ(Get(db.get(), "after"), "3");
}

// A WAL sync that fails after it happened: the write is reported failed, yet it is durable and
// comes back when the database is opened again. A sync that fails the ordinary way loses the
// write's bytes at once.
TEST(RocksFaultEnvTest, WalSyncFailuresOfBothKinds) {
  for (FaultEffect effect : {FaultEffect::kApplied, FaultEffect::kNothing}) {
    TempDir tmp("rankfs-rocks-walsync-");
    const std::string dir = tmp.Join("db");
    auto controller = std::make_shared<FaultController>();
    RocksFaultEnv fault_env(controller);
    rocksdb::Status s;
    std::unique_ptr<rocksdb::DB> db = OpenDb(fault_env.env(), dir, &s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    rocksdb::WriteOptions synced;
    synced.sync = true;
    ASSERT_TRUE(db->Put(synced, "before", "1").ok());
    controller->FailAfter(kFaultSync, 0, EIO, ".log", /*count=*/1, effect);
    EXPECT_FALSE(db->Put(synced, "k", "v").ok());
    EXPECT_EQ(controller->injected(), 1u);
    db.reset();
    ASSERT_TRUE(fault_env.DropUnsyncedData().ok());
    db = OpenDb(fault_env.env(), dir, &s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(Get(db.get(), "before"), "1");
    EXPECT_EQ(Get(db.get(), "k"), effect == FaultEffect::kApplied ? "v" : "<not found>");
  }
}

TEST(RocksFaultEnvTest, EnospcMakesPutFailWithNoSpace) {
  TempDir tmp("rankfs-rocks-nospace-");
  const std::string dir = tmp.Join("db");
  auto controller = std::make_shared<FaultController>();
  RocksFaultEnv fault_env(controller);
  rocksdb::Status s;
  std::unique_ptr<rocksdb::DB> db = OpenDb(fault_env.env(), dir, &s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "before", "1").ok());

  controller->FailAfter(kFaultWrite, 0, ENOSPC);
  rocksdb::Status put = db->Put(rocksdb::WriteOptions(), "k", "v");
  EXPECT_FALSE(put.ok());
  EXPECT_TRUE(put.IsNoSpace()) << put.ToString();
  EXPECT_GE(controller->injected(), 1u);

  controller->ClearFaults();
  db.reset();
  db = OpenDb(fault_env.env(), dir, &s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Get(db.get(), "before"), "1");
  EXPECT_EQ(Get(db.get(), "k"), "<not found>");
}

// One controller fails the pack files and RocksDB together; a path filter picks one of them.
TEST(RocksFaultEnvTest, SharedControllerReachesBothEnvs) {
  TempDir tmp("rankfs-rocks-shared-");
  auto controller = std::make_shared<FaultController>();
  FaultInjectionEnv env(Env::Default(), controller);
  std::unique_ptr<rocksdb::Env> rocks_env = NewFaultInjectingRocksEnv(controller);
  rocksdb::Status s;
  std::unique_ptr<rocksdb::DB> db = OpenDb(rocks_env.get(), tmp.Join("meta"), &s);
  ASSERT_TRUE(s.ok()) << s.ToString();

  const uint64_t before = controller->injected();
  controller->FailAfter(kFaultSync, 0, EIO, "/meta/");
  Result<std::unique_ptr<File>> pack = env.OpenFile(tmp.Join("1.pack"), OpenMode::kCreate);
  ASSERT_TRUE(pack.ok());
  ASSERT_TRUE((*pack)->PWrite(0, "chunk").ok());
  EXPECT_TRUE((*pack)->Sync().ok()) << "the filter must spare the pack file";
  rocksdb::WriteOptions synced;
  synced.sync = true;
  rocksdb::Status put = db->Put(synced, "k", "v");
  EXPECT_TRUE(put.IsIOError()) << put.ToString();
  const uint64_t after_put = controller->injected();
  EXPECT_GT(after_put, before);

  controller->ClearFaults();
  controller->FailAfter(kFaultWrite, 0, ENOSPC, ".pack");
  EXPECT_EQ((*pack)->PWrite(5, "more").code(), ENOSPC);
  EXPECT_EQ(controller->injected(), after_put + 1);
  controller->ClearFaults();
  db.reset();
}

TEST(RocksFaultEnvTest, OpenFailsWhenFileCreationFails) {
  TempDir tmp("rankfs-rocks-open-");
  auto controller = std::make_shared<FaultController>();
  std::unique_ptr<rocksdb::Env> rocks_env = NewFaultInjectingRocksEnv(controller);
  controller->FailAfter(kFaultOpen, 0, EIO);
  rocksdb::Status s;
  std::unique_ptr<rocksdb::DB> db = OpenDb(rocks_env.get(), tmp.Join("db"), &s);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(db, nullptr);
  EXPECT_GE(controller->injected(), 1u);
}

}  // namespace
}  // namespace rankfs
