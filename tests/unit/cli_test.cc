// The command-line tools in-process (RankfsMain, MountHelperMain) and, for a few calls, as the
// built binaries. Nothing here mounts: mount.rankfs runs in fake mode (-f) or fails before
// mounting; real mounts are in tests/integration (admin_cli_test, fstab_test).
#include "mount-helper/cli.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fs/fs_core.h"
#include "store/pack_format.h"
#include "store/store.h"
#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/temp_dir.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

struct Ran {
  int code;
  std::string out, err;
};

Ran Call(int (*fn)(const std::vector<std::string>&, const CliIo&), std::vector<std::string> args) {
  std::ostringstream out, err;
  CliIo io{&out, &err, false};
  int code = fn(args, io);
  return {code, out.str(), err.str()};
}
Ran Rankfs(std::vector<std::string> args) {
  args.insert(args.begin(), "rankfs");
  return Call(RankfsMain, std::move(args));
}
Ran Helper(std::vector<std::string> args) {
  args.insert(args.begin(), "/sbin/mount.rankfs");
  return Call(MountHelperMain, std::move(args));
}

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// A store with one file, closed again.
void MakeStore(const std::string& dir) {
  StoreOptions so;
  auto store = Store::Open(dir, so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto core = FsCore::Create(store->get(), FsOptions());
  ASSERT_TRUE(core.ok()) << core.status().ToString();
  auto a = (*core)->Create(kRootIno, "f", 0644, O_RDWR, Caller{});
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*core)->Write(a->ino, 0, std::string(100000, 'x')).ok());
  ASSERT_TRUE((*core)->Release(a->ino).ok());
  ASSERT_TRUE((*core)->Shutdown().ok());
  core->reset();
  ASSERT_TRUE((*store)->Close().ok());
}

// ---- rankfs ---------------------------------------------------------------------------------

TEST(RankfsCliTest, HelpVersionAndUnknownCommands) {
  Ran help = Rankfs({"--help"});
  EXPECT_EQ(help.code, 0);
  for (const char* cmd :
       {"rankfs mount", "rankfs unmount", "rankfs stats", "rankfs fsck", "rankfs gc"}) {
    EXPECT_TRUE(Has(help.out, cmd)) << help.out;
  }
  Ran version = Rankfs({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_TRUE(version.out.starts_with("rankfs ")) << version.out;
  Ran unknown = Rankfs({"frob"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_TRUE(Has(unknown.err, "unknown command 'frob'")) << unknown.err;
  EXPECT_EQ(Rankfs({}).code, 2);
}

TEST(RankfsCliTest, EveryCommandHasHelp) {
  for (std::string cmd : {"mount", "unmount", "stats", "fsck", "gc"}) {
    Ran r = Rankfs({cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_TRUE(Has(r.out, "usage: rankfs " + cmd)) << r.out;
  }
  Ran h = Helper({"--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_TRUE(Has(h.out, "usage: mount.rankfs SOURCE MOUNTPOINT")) << h.out;
}

TEST(RankfsCliTest, MountRefusesBadOptionsNamingThem) {
  TempDir tmp;
  Ran r = Rankfs({"mount", tmp.Join("s"), tmp.path(), "-o", "cache_size=1G,compress=99"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(Has(r.err, "compress=99")) << r.err;
  EXPECT_FALSE(fs::exists(tmp.Join("s")));
  EXPECT_EQ(Rankfs({"mount", tmp.path()}).code, 2);
  EXPECT_EQ(Rankfs({"mount", "-x", "a", "b"}).code, 2);
}

TEST(RankfsCliTest, NewStoresBelongToTheMountingUser) {
  MountConfig cfg = DefaultMountConfig();
  EXPECT_EQ(cfg.fs.root_uid, getuid());
  EXPECT_EQ(cfg.fs.root_gid, getgid());
  ASSERT_TRUE(ParseMountOptions("uid=123,gid=456", &cfg).ok());
  EXPECT_EQ(cfg.fs.root_uid, 123u);
  EXPECT_EQ(cfg.fs.root_gid, 456u);
}

// ---- rankfs stats (on a directory holding a stats file: the command only reads the file) ----

class StatsCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A name that needs escaping in JSON and in Prometheus labels.
    mnt_ = tmp_.Join("m\"n\\t");
    fs::create_directory(mnt_);
    std::ofstream(mnt_ + "/.rankfs-stats") << "logical_bytes=3145728\nfiles=2\n"
                                              "dedup_ratio=2.000\ndedup_hits=5\n"
                                              "future_key=7\nweird=abc\n";
  }
  TempDir tmp_;
  std::string mnt_;
};

TEST_F(StatsCliTest, HumanReadable) {
  Ran r = Rankfs({"stats", mnt_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Has(r.out, "rankfs statistics of " + mnt_)) << r.out;
  EXPECT_TRUE(Has(r.out, "logical_bytes:          3.00 MiB (3145728 bytes)")) << r.out;
  EXPECT_TRUE(Has(r.out, "dedup_ratio:            2.000")) << r.out;
  EXPECT_TRUE(Has(r.out, "weird:                  abc")) << r.out;
}

// A key longer than the usual column moves the column for every line, so values still line up
// and none runs into its key.
TEST_F(StatsCliTest, HumanReadableAlignsAfterALongKey) {
  std::ofstream(mnt_ + "/.rankfs-stats") << "files=2\nmeta_table_reader_bytes=0\n";
  Ran r = Rankfs({"stats", mnt_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Has(r.out, "  files:                   2\n")) << r.out;
  EXPECT_TRUE(Has(r.out, "  meta_table_reader_bytes: 0 B\n")) << r.out;
}

TEST_F(StatsCliTest, Json) {
  Ran r = Rankfs({"stats", mnt_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string escaped = tmp_.path() + "/m\\\"n\\\\t";
  EXPECT_EQ(r.out, "{\"mountpoint\": \"" + escaped +
                       "\", \"logical_bytes\": 3145728, \"files\": 2, \"dedup_ratio\": 2.000, "
                       "\"dedup_hits\": 5, \"future_key\": 7, \"weird\": \"abc\"}\n");
}

TEST_F(StatsCliTest, Prometheus) {
  Ran r = Rankfs({"stats", "--prometheus", mnt_});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string label = "{mountpoint=\"" + tmp_.path() + "/m\\\"n\\\\t\"}";
  EXPECT_TRUE(
      Has(r.out, "# TYPE rankfs_logical_bytes gauge\nrankfs_logical_bytes" + label + " 3145728\n"))
      << r.out;
  EXPECT_TRUE(Has(
      r.out, "# TYPE rankfs_dedup_hits_total counter\nrankfs_dedup_hits_total" + label + " 5\n"))
      << r.out;
  EXPECT_TRUE(Has(r.out, "# HELP rankfs_future_key rankfs statistic future_key.\n")) << r.out;
  EXPECT_FALSE(Has(r.out, "weird")) << r.out;  // not a number: no sample
  // Every sample follows its own HELP and TYPE lines.
  std::istringstream lines(r.out);
  std::string line, help, type;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.starts_with("# HELP ")) {
      help = line.substr(7, line.find(' ', 7) - 7);
    } else if (line.starts_with("# TYPE ")) {
      type = line.substr(7, line.find(' ', 7) - 7);
    } else {
      std::string name = line.substr(0, line.find('{'));
      EXPECT_EQ(name, help) << line;
      EXPECT_EQ(name, type) << line;
      EXPECT_TRUE(name.starts_with("rankfs_")) << line;
      ++samples;
    }
  }
  EXPECT_EQ(samples, 5);
}

TEST_F(StatsCliTest, ErrorsSayWhatIsWrong) {
  Ran plain = Rankfs({"stats", tmp_.path()});
  EXPECT_EQ(plain.code, 1);
  EXPECT_TRUE(Has(plain.err, "is not a rankfs mount")) << plain.err;
  Ran missing = Rankfs({"stats", tmp_.Join("nope")});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(Has(missing.err, "cannot access")) << missing.err;
  EXPECT_EQ(Rankfs({"stats"}).code, 2);
  EXPECT_EQ(Rankfs({"stats", mnt_, "--yaml"}).code, 2);
}

// ---- rankfs fsck ----------------------------------------------------------------------------

TEST(FsckCliTest, CleanStoreThenAnOrphanPackFoundAndRepaired) {
  TempDir tmp;
  const std::string store = tmp.Join("store");
  ASSERT_NO_FATAL_FAILURE(MakeStore(store));
  Ran clean = Rankfs({"fsck", store});
  EXPECT_EQ(clean.code, 0) << clean.out << clean.err;
  EXPECT_TRUE(Has(clean.out, store + ": clean")) << clean.out;
  EXPECT_FALSE(Has(clean.out, "\r")) << "no progress bar when not on a terminal";

  // A pack file that holds no indexed chunk (not even a valid header).
  std::ofstream(store + "/packs/000777.pack") << std::string(4096, 'z');
  Ran found = Rankfs({"fsck", store});
  EXPECT_EQ(found.code, 4) << found.out;
  EXPECT_TRUE(Has(found.out, "orphan pack: pack 777")) << found.out;
  EXPECT_TRUE(Has(found.out, "rankfs fsck --repair")) << found.out;
  Ran fixed = Rankfs({"fsck", "--repair", store});
  EXPECT_EQ(fixed.code, 1) << fixed.out;
  EXPECT_TRUE(Has(fixed.out, "changes made:\n  pack 777: deleted")) << fixed.out;
  EXPECT_FALSE(fs::exists(store + "/packs/000777.pack"));
  EXPECT_EQ(Rankfs({"fsck", store}).code, 0);
}

TEST(FsckCliTest, OperationalAndUsageErrors) {
  TempDir tmp;
  Ran none = Rankfs({"fsck", tmp.path()});
  EXPECT_EQ(none.code, 8);
  EXPECT_TRUE(Has(none.err, "holds no rankfs store")) << none.err;
  const std::string store = tmp.Join("store");
  ASSERT_NO_FATAL_FAILURE(MakeStore(store));
  {
    auto open = Store::Open(store, StoreOptions());
    ASSERT_TRUE(open.ok());
    Ran busy = Rankfs({"fsck", store});
    EXPECT_EQ(busy.code, 8);
    EXPECT_TRUE(Has(busy.err, "in use")) << busy.err;
  }
  EXPECT_EQ(Rankfs({"fsck"}).code, 16);
  EXPECT_EQ(Rankfs({"fsck", store, "--force"}).code, 16);
  EXPECT_EQ(Rankfs({"fsck", store, "--wait"}).code, 16);
  Ran wait = Rankfs({"fsck", store, "--wait", "soon"});
  EXPECT_EQ(wait.code, 16);
  EXPECT_TRUE(Has(wait.err, "--wait 'soon' is not a number of seconds")) << wait.err;
  EXPECT_EQ(Rankfs({"fsck", store, "--wait", "0"}).code, 0);  // nothing holds it: no wait
}

// ---- rankfs unmount -------------------------------------------------------------------------

// Argument errors (exit 2) and what is not a rankfs mount (exit 3); real mounts, busy ones and
// the timeout are in tests/integration/unmount_test.cc.
TEST(UnmountCliTest, UsageErrorsAndWhatIsNotARankfsMount) {
  TempDir tmp;
  struct Case {
    std::vector<std::string> args;
    std::string says;
  } cases[] = {
      {{"unmount"}, "needs one MOUNTPOINT"},
      {{"unmount", "a", "b"}, "needs one MOUNTPOINT"},
      {{"unmount", "a", "--timeout"}, "--timeout needs a value"},
      {{"unmount", "a", "--timeout", "soon"}, "--timeout 'soon' is not a number of seconds"},
      {{"unmount", "a", "--timeout", "-1"}, "--timeout '-1' is not a number of seconds"},
      {{"unmount", "a", "--store"}, "--store needs a value"},
      {{"unmount", "a", "--lazy"}, "unknown flag '--lazy'"},
  };
  for (const Case& c : cases) {
    Ran r = Rankfs(c.args);
    EXPECT_EQ(r.code, kUnmountExitUsage) << c.says;
    EXPECT_TRUE(Has(r.err, "rankfs unmount: " + c.says)) << r.err;
    EXPECT_TRUE(Has(r.err, "usage: rankfs unmount MOUNTPOINT")) << r.err;
  }
  Ran dir = Rankfs({"unmount", tmp.path(), "--timeout", "1"});
  EXPECT_EQ(dir.code, kUnmountExitNotRankfs);
  EXPECT_TRUE(Has(dir.err, tmp.path() + " is not a mount point")) << dir.err;
  Ran missing = Rankfs({"unmount", tmp.Join("nothing/here")});
  EXPECT_EQ(missing.code, kUnmountExitNotRankfs);
  EXPECT_TRUE(Has(missing.err, "is not a mount point")) << missing.err;
  Ran proc = Rankfs({"unmount", "/proc/"});
  EXPECT_EQ(proc.code, kUnmountExitNotRankfs);
  EXPECT_TRUE(Has(proc.err, "/proc is not a rankfs mount (its type is proc)")) << proc.err;
}

// ---- rankfs gc ------------------------------------------------------------------------------

// A store whose only pack holds four one-chunk files, three of them deleted: 75 % dead.
void MakeStoreWithDeadSpace(const std::string& dir) {
  StoreOptions so;
  so.compression_level = 0;
  so.packs.background_reclaim = false;
  auto store = Store::Open(dir, so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (Ino ino = 10; ino < 14; ++ino) {
    std::string data = MakeRandomData(40000, ino);
    ChunkHash h = ChunkHash::Of(data);
    ASSERT_TRUE((*store)->chunks()->Put(h, data).ok());
    ASSERT_TRUE((*store)->chunks()->Flush().ok());
    MetaStore::Batch b;
    InodeAttr attr;
    attr.ino = ino;
    attr.mode = 0100644;
    attr.nlink = 1;
    attr.size = data.size();
    b.PutInode(attr);
    b.PutExtent(ino, 0, Extent{data.size(), h, 0});
    ASSERT_TRUE((*store)->meta()->Write(b, false).ok());
  }
  for (Ino ino = 11; ino < 14; ++ino) {
    MetaStore::Batch b;
    b.DeleteExtent(ino, 0);
    b.DeleteInode(ino);
    ASSERT_TRUE((*store)->meta()->Write(b, false).ok());
    ASSERT_TRUE((*store)->chunks()->Unref(ChunkHash::Of(MakeRandomData(40000, ino)), 1).ok());
  }
  ASSERT_TRUE((*store)->Close().ok());
}

TEST(GcCliTest, DryRunThenCompactionSayWhatTheyDo) {
  TempDir tmp;
  const std::string store = tmp.Join("store");
  ASSERT_NO_FATAL_FAILURE(MakeStoreWithDeadSpace(store));
  const uint64_t record = kRecordHeaderSize + 40000;
  const uint64_t old_size = kPackHeaderSize + 4 * record, new_size = kPackHeaderSize + record;
  ASSERT_EQ(fs::file_size(store + "/packs/000001.pack"), old_size);

  Ran dry = Rankfs({"gc", store, "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_TRUE(Has(dry.out, "rankfs gc " + store + " (dry run, threshold 50%)")) << dry.out;
  EXPECT_TRUE(Has(dry.out, "  pack 1: ")) << dry.out;
  EXPECT_TRUE(Has(dry.out, "75% dead, 1 live chunk(s)")) << dry.out;
  EXPECT_TRUE(Has(dry.out, "-> would move to pack 2")) << dry.out;
  EXPECT_TRUE(Has(dry.out, "would compact 1 pack(s) into 1 new pack(s), 1 chunk(s) to move"))
      << dry.out;
  EXPECT_TRUE(Has(dry.out, "dry run: nothing was changed")) << dry.out;
  EXPECT_TRUE(fs::exists(store + "/packs/000001.pack"));
  EXPECT_FALSE(fs::exists(store + "/packs/000002.pack"));

  Ran high = Rankfs({"gc", "--threshold", "80%", store});
  EXPECT_EQ(high.code, 0) << high.err;
  EXPECT_TRUE(Has(high.out, "no pack has 80% or more dead space: nothing to do")) << high.out;
  EXPECT_TRUE(fs::exists(store + "/packs/000001.pack"));

  Ran done = Rankfs({"gc", store, "--threshold=75"});
  EXPECT_EQ(done.code, 0) << done.out << done.err;
  EXPECT_TRUE(Has(done.out, "-> moved to pack 2")) << done.out;
  EXPECT_TRUE(Has(done.out, "new pack 2: 1 chunk(s), " + std::to_string(new_size) + " bytes"))
      << done.out;
  EXPECT_TRUE(Has(done.out, "compacted 1 pack(s) into 1 new pack(s), 1 chunk(s) moved"))
      << done.out;
  EXPECT_TRUE(Has(done.out, "  before: " + std::to_string(old_size) + " bytes in files"))
      << done.out;
  EXPECT_TRUE(Has(done.out, "  after:  " + std::to_string(new_size) + " bytes")) << done.out;
  EXPECT_FALSE(Has(done.out, "\r")) << "no progress bar when not on a terminal";
  EXPECT_FALSE(fs::exists(store + "/packs/000001.pack"));
  EXPECT_EQ(fs::file_size(store + "/packs/000002.pack"), new_size);
  Ran fsck = Rankfs({"fsck", store});
  EXPECT_EQ(fsck.code, 0) << fsck.out;
  EXPECT_TRUE(Has(Rankfs({"gc", store}).out, "nothing to do"));
}

TEST(GcCliTest, UsageAndOperationalErrors) {
  TempDir tmp;
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{"gc"},
                                             {"gc", "a", "b"},
                                             {"gc", "a", "--threshold"},
                                             {"gc", "a", "--threshold", "101"},
                                             {"gc", "a", "--threshold=-1"},
                                             {"gc", "a", "--threshold=abc"},
                                             {"gc", "a", "--wait"},
                                             {"gc", "a", "--wait", "-3"},
                                             {"gc", "a", "--force"}}) {
    Ran r = Rankfs(args);
    EXPECT_EQ(r.code, 2) << args.back();
    EXPECT_TRUE(Has(r.err, "usage: rankfs gc STORE")) << r.err;
  }
  Ran bad = Rankfs({"gc", "a", "--threshold", "abc"});
  EXPECT_TRUE(Has(bad.err, "'abc' is not a percentage")) << bad.err;
  Ran none = Rankfs({"gc", tmp.path()});
  EXPECT_EQ(none.code, 1);
  EXPECT_TRUE(Has(none.err, "holds no rankfs store")) << none.err;
  const std::string store = tmp.Join("store");
  ASSERT_NO_FATAL_FAILURE(MakeStoreWithDeadSpace(store));
  {
    auto open = Store::Open(store, StoreOptions());  // as a mounted daemon holds it
    ASSERT_TRUE(open.ok());
    Ran busy = Rankfs({"gc", store});
    EXPECT_EQ(busy.code, 1);
    EXPECT_TRUE(Has(busy.err, "is in use by another process: a rankfs daemon (unmount it first"))
        << busy.err;
  }
}

// On a terminal, fsck and gc draw a progress bar on `out` and erase it before their report.
TEST(OfflineCliTest, ProgressBarOnATerminalIsErasedBeforeTheReport) {
  TempDir tmp;
  const std::string store = tmp.Join("store");
  ASSERT_NO_FATAL_FAILURE(MakeStoreWithDeadSpace(store));
  struct Case {
    std::string command, phase;
  };
  for (const Case& c : {Case{"fsck", "scanning packs"}, Case{"gc", "compacting packs"}}) {
    std::ostringstream out, err;
    const int code = RankfsMain({"rankfs", c.command, store}, CliIo{&out, &err, true});
    EXPECT_EQ(code, 0) << out.str() << err.str();
    const std::string text = out.str();
    EXPECT_TRUE(text.starts_with("\r" + c.phase + " [")) << text;
    const size_t erased = text.find("\r\033[K");
    ASSERT_NE(erased, std::string::npos) << text;
    const std::string report = text.substr(erased + 4);  // after the erasing sequence
    EXPECT_TRUE(report.starts_with("rankfs " + c.command + " " + store)) << text;
    EXPECT_FALSE(Has(report, "\r")) << text;
  }
}

// ---- mount.rankfs ---------------------------------------------------------------------------

class MountHelperTest : public ::testing::Test {
 protected:
  TempDir tmp_;
  const std::string store_ = tmp_.Join("store");
  const std::string mnt_ = tmp_.path();
};

TEST_F(MountHelperTest, FakeModeStripsFstabWordsAndMountsNothing) {
  Ran r = Helper({store_, mnt_, "-f", "-v", "-o",
                  "rw,defaults,noauto,user,x-systemd.automount,x-systemd.requires=a.service,"
                  "comment=x,_netdev,nofail,compress=3,allow_other"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Has(r.out,
                  "mount.rankfs: ignoring fstab-only options: defaults noauto user "
                  "x-systemd.automount x-systemd.requires=a.service comment=x _netdev "
                  "nofail\n"))
      << r.out;
  EXPECT_TRUE(Has(r.out, "would mount " + store_ + " on " + mnt_ + " -o rw,compress=3,allow_other"))
      << r.out;
  EXPECT_FALSE(fs::exists(store_));
}

TEST_F(MountHelperTest, UnknownAndMalformedOptionsAreRefusedByName) {
  for (std::string opt : {"frobnicate", "compress=abc", "chunk_avg=3000", "x_systemd=1"}) {
    Ran r = Helper({store_, mnt_, "-o", "noauto," + opt});
    EXPECT_EQ(r.code, kMountExitUsage) << opt;
    EXPECT_TRUE(Has(r.err, opt)) << r.err;
  }
  EXPECT_FALSE(fs::exists(store_));
}

TEST_F(MountHelperTest, SloppyModeDropsRefusedOptionsWithAWarning) {
  Ran r = Helper({"-s", "-f", "-v", store_, mnt_, "-o", "frobnicate,compress=2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Has(r.err, "ignoring (sloppy): mount option 'frobnicate'")) << r.err;
  EXPECT_TRUE(Has(r.out, "-o compress=2 (fake")) << r.out;
}

TEST_F(MountHelperTest, TypesSourcesAndFlags) {
  EXPECT_EQ(Helper({store_, mnt_, "-f", "-t", "fuse.rankfs"}).code, 0);
  EXPECT_EQ(Helper({store_, mnt_, "-f", "-n", "-t", "rankfs"}).code, 0);
  Ran ext4 = Helper({store_, mnt_, "-t", "ext4"});
  EXPECT_EQ(ext4.code, kMountExitUsage);
  EXPECT_TRUE(Has(ext4.err, "'ext4' is not rankfs")) << ext4.err;
  Ran legacy = Helper({"rankfs#" + store_, mnt_, "-f", "-v"});
  EXPECT_EQ(legacy.code, 0);
  EXPECT_TRUE(Has(legacy.out, "would mount " + store_ + " on")) << legacy.out;
  EXPECT_EQ(Helper({store_, mnt_, "-N", "/proc/1/ns/mnt"}).code, kMountExitUsage);
  EXPECT_EQ(Helper({store_}).code, kMountExitUsage);
  EXPECT_EQ(Helper({store_, mnt_, "-q"}).code, kMountExitUsage);
  Ran debug = Helper({store_, mnt_, "-o", "debug"});
  EXPECT_EQ(debug.code, kMountExitUsage);
  EXPECT_TRUE(Has(debug.err, "rankfs mount -d")) << debug.err;
  Ran nomnt = Helper({store_, tmp_.Join("nomnt")});
  EXPECT_EQ(nomnt.code, kMountExitFailure);
  EXPECT_TRUE(Has(nomnt.err, "is not an existing directory")) << nomnt.err;
}

// mount.fuse3 runs "rankfs SOURCE MOUNTPOINT -o OPTIONS" for type fuse.rankfs.
TEST_F(MountHelperTest, RankfsWithAnAbsoluteStoreActsAsTheHelper) {
  Ran r = Rankfs({store_, mnt_, "-o", "rw,nofail,dev,suid", "-f", "-v"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Has(r.out, "rankfs: would mount " + store_)) << r.out;
  EXPECT_TRUE(Has(r.out, "-o rw,dev,suid")) << r.out;
}

// ---- the binaries ---------------------------------------------------------------------------

TEST(CliBinaryTest, RankfsAndMountRankfsRun) {
  auto v = RunCommand({RANKFS_CLI_BINARY, "--version"});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->exit_code, 0);
  EXPECT_TRUE(v->output.starts_with("rankfs ")) << v->output;

  TempDir tmp;
  auto fake = RunCommand(
      {MOUNT_RANKFS_BINARY, tmp.Join("store"), tmp.path(), "-f", "-v", "-o", "noauto,compress=3"});
  ASSERT_TRUE(fake.ok());
  EXPECT_EQ(fake->exit_code, 0) << fake->output;
  EXPECT_TRUE(Has(fake->output, "mount.rankfs: would mount")) << fake->output;
  auto bad = RunCommand({MOUNT_RANKFS_BINARY, tmp.Join("store"), tmp.path(), "-o", "bogus"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->exit_code, kMountExitUsage) << bad->output;
  EXPECT_TRUE(Has(bad->output, "bogus")) << bad->output;

  const std::string store = tmp.Join("store");
  ASSERT_NO_FATAL_FAILURE(MakeStore(store));
  auto fsck = RunCommand({RANKFS_CLI_BINARY, "fsck", store});
  ASSERT_TRUE(fsck.ok());
  EXPECT_EQ(fsck->exit_code, 0) << fsck->output;
  auto none = RunCommand({RANKFS_CLI_BINARY, "fsck", tmp.Join("none")});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->exit_code, 8) << none->output;
}

TEST(CliBinaryTest, RankfsGc) {
  auto help = RunCommand({RANKFS_CLI_BINARY, "gc", "--help"});
  ASSERT_TRUE(help.ok());
  EXPECT_EQ(help->exit_code, 0);
  EXPECT_TRUE(Has(help->output, "usage: rankfs gc STORE [--threshold PCT] [--dry-run]"))
      << help->output;
  auto usage = RunCommand({RANKFS_CLI_BINARY, "gc", "--threshold", "x", "s"});
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->exit_code, 2) << usage->output;

  TempDir tmp;
  const std::string store = tmp.Join("store");
  ASSERT_NO_FATAL_FAILURE(MakeStoreWithDeadSpace(store));
  {
    auto open = Store::Open(store, StoreOptions());  // another process holds the lock
    ASSERT_TRUE(open.ok());
    auto busy = RunCommand({RANKFS_CLI_BINARY, "gc", store});
    ASSERT_TRUE(busy.ok());
    EXPECT_EQ(busy->exit_code, 1) << busy->output;
    EXPECT_TRUE(Has(busy->output, "unmount it first")) << busy->output;
  }
  EXPECT_TRUE(fs::exists(store + "/packs/000001.pack"));
  auto gc = RunCommand({RANKFS_CLI_BINARY, "gc", store});
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->exit_code, 0) << gc->output;
  EXPECT_TRUE(Has(gc->output, "compacted 1 pack(s)")) << gc->output;
  EXPECT_FALSE(Has(gc->output, "\r")) << gc->output;
  EXPECT_FALSE(fs::exists(store + "/packs/000001.pack"));
  auto fsck = RunCommand({RANKFS_CLI_BINARY, "fsck", store});
  ASSERT_TRUE(fsck.ok());
  EXPECT_EQ(fsck->exit_code, 0) << fsck->output;
}

}  // namespace
}  // namespace rankfs
