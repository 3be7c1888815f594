// fstab entries mounted for real through mount(8) (util-linux) and the freshly built helpers:
//   type rankfs       -> /sbin/mount.rankfs
//   type fuse.rankfs  -> /sbin/mount.fuse.rankfs (a link to mount.rankfs), or, without it,
//                        /sbin/mount.fuse -> mount.fuse3, which runs "rankfs SOURCE MNT -o ..."
//   a `user` entry    -> mount(8) runs the helper as the user; libfuse mounts via fusermount3
//
// mount(8) looks for helpers in /sbin only, and reads user entries from /etc/fstab only. So
// that no test touches the system's /sbin or /etc/fstab (or races another test doing so),
// each case runs as a shell script in a private mount namespace (unshare -m) where an overlay
// over /sbin adds the helpers and, for the user case, a bind mount replaces /etc/fstab. All of
// it, the rankfs mounts included, vanishes with the namespace. The script ends with unmounting;
// the test then checks the store offline (fsck, superblock, file contents).
//
// Needs root and /dev/fuse; skips with the reason when the namespace, the overlay or (for the
// user case) a setuid mount(8)/fusermount3 is not available.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fs/fs_core.h"
#include "store/store.h"
#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"

namespace rankfs {
namespace {

namespace fs = std::filesystem;

constexpr int kSetupFailed = 77;  // the script could not build its namespace: skip

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// The mounts live in the test's own mount namespace; MNT and mnt2 are the fixture's
// mountpoints all the same, so that nothing is left should a mount escape.
class FstabTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto ns = RunCommand({"unshare", "-m", "--propagation", "private", "true"});
    if (!ns.ok() || ns->exit_code != 0) {
      RANKFS_SKIP("cannot create a private mount namespace (unshare -m): "
                  << (ns.ok() ? ns->output : ns.status().ToString()));
    }
    // Users (uid 65534) must be able to reach the mountpoints.
    ASSERT_EQ(chmod(tmp_.path().c_str(), 0755), 0);
    AddMountpoint("mnt2");
    for (const char* d : {"up", "work"}) {
      ASSERT_EQ(mkdir(tmp_.Join(d).c_str(), 0755), 0) << d;
    }
  }

  void WriteFstab(const std::string& lines) { std::ofstream(tmp_.Join("fstab")) << lines; }

  // Runs `body` (sh) in a private mount namespace after this prelude: /sbin (wherever it
  // really is) is overlaid so that $SBIN/mount.rankfs is the built helper, $T is the temporary
  // directory, $RANKFS and $HELPER the built binaries. Mounts still there at the end are
  // detached. Skips the test when the prelude fails.
  CommandResult RunInNamespace(const std::string& body) {
    const std::string script =
        "set -eu\n"
        "T='" +
        tmp_.path() +
        "'; RANKFS='" RANKFS_CLI_BINARY "'; HELPER='" MOUNT_RANKFS_BINARY
        "'\n"
        "setup_failed() { echo \"SETUP: $*\"; exit 77; }\n"
        "SBIN=$(readlink -f /sbin)\n"
        "mount -t overlay overlay -o lowerdir=$SBIN,upperdir=$T/up,workdir=$T/work $SBIN "
        "|| setup_failed cannot overlay $SBIN\n"
        // An installed rankfs (cmake --install, the .deb) must not stand in for the built one.
        "rm -f $SBIN/mount.rankfs $SBIN/mount.fuse.rankfs $SBIN/rankfs\n"
        "ln -s \"$HELPER\" $SBIN/mount.rankfs\n"
        "trap 'for m in $T/mnt $T/mnt2 $T/u/mnt; do umount -l $m 2>/dev/null || true; done' "
        "EXIT\n" +
        body;
    auto r = RunCommand({"unshare", "-m", "--propagation", "private", "sh", "-c", script},
                        std::chrono::seconds(90));
    if (!r.ok()) {
      ADD_FAILURE() << r.status().ToString();
      return CommandResult();
    }
    return std::move(r).value();
  }

  // The store, checked by rankfs fsck right after the unmount, as an administrator would run
  // it: fsck waits for the daemon, which writes back after the unmount, to release the store.
  void ExpectCleanStore(const std::string& store) {
    auto r = RunCommand({RANKFS_CLI_BINARY, "fsck", store});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->exit_code, 0) << r->output;
    EXPECT_NE(r->output.find(store + ": clean"), std::string::npos) << r->output;
  }

  // Reads a file of `store` without mounting.
  std::string ReadFromStore(const std::string& store, const std::string& name) {
    auto s = Store::Open(store, StoreOptions());
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return "";
    auto core = FsCore::Create(s->get(), FsOptions());
    EXPECT_TRUE(core.ok());
    if (!core.ok()) return "";
    auto a = (*core)->Lookup(kRootIno, name);
    if (!a.ok()) return "<" + a.status().ToString() + ">";
    std::string out(a->size, '\0');
    auto n = (*core)->Read(a->ino, 0, out.size(), out.data());
    out.resize(n.ok() ? *n : 0);
    return out;
  }
};

#define SKIP_IF_SETUP_FAILED(r) \
  if ((r).exit_code == kSetupFailed) RANKFS_SKIP((r).output)

TEST_F(FstabTest, RootEntryWithAllowOther) {
  WriteFstab(tmp_.Join("store") + " " + tmp_.Join("mnt") +
             " rankfs defaults,noauto,allow_other,compress=3,x-systemd.automount,"
             "x-systemd.requires=network.target,comment=rankfs 0 0\n");
  CommandResult r = RunInNamespace(
      "mount -v -T $T/fstab $T/mnt\n"
      "echo \"FINDMNT: $(findmnt -n -o FSTYPE,SOURCE,OPTIONS $T/mnt)\"\n"
      "printf 'from fstab' > $T/mnt/f\n"
      "echo \"OTHER USER READS: $(setpriv --reuid=65534 --regid=65534 --clear-groups "
      "cat $T/mnt/f)\"\n"
      "\"$RANKFS\" stats $T/mnt --json\n"
      "umount $T/mnt\n"
      "findmnt $T/mnt >/dev/null || echo UNMOUNTED\n");
  SKIP_IF_SETUP_FAILED(r);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r.output, "mount.rankfs: mounted " + tmp_.Join("store"))) << r.output;
  EXPECT_TRUE(Has(r.output, "FINDMNT: fuse.rankfs " + tmp_.Join("store") + " ")) << r.output;
  EXPECT_TRUE(Has(r.output, "allow_other")) << r.output;
  EXPECT_TRUE(Has(r.output, "OTHER USER READS: from fstab")) << r.output;
  EXPECT_TRUE(Has(r.output, "\"files\": 1,")) << r.output;
  EXPECT_TRUE(Has(r.output, "UNMOUNTED")) << r.output;
  ASSERT_NO_FATAL_FAILURE(ExpectCleanStore(tmp_.Join("store")));
  EXPECT_EQ(ReadFromStore(tmp_.Join("store"), "f"), "from fstab");
  auto s = Store::Open(tmp_.Join("store"), StoreOptions());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->super().compression_level, 3);
}

TEST_F(FstabTest, FuseSubtypeThroughMountFuseRankfsLink) {
  WriteFstab(tmp_.Join("store") + " " + tmp_.Join("mnt") + " fuse.rankfs noauto,nofail 0 0\n");
  CommandResult r = RunInNamespace(
      "ln -s \"$HELPER\" $SBIN/mount.fuse.rankfs\n"
      "mount -v -T $T/fstab $T/mnt\n"
      "echo \"FINDMNT: $(findmnt -n -o FSTYPE $T/mnt)\"\n"
      "printf 'subtype' > $T/mnt/f\n"
      "umount $T/mnt\n");
  SKIP_IF_SETUP_FAILED(r);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r.output, "mount.fuse.rankfs: mounted")) << r.output;
  EXPECT_TRUE(Has(r.output, "FINDMNT: fuse.rankfs")) << r.output;
  ASSERT_NO_FATAL_FAILURE(ExpectCleanStore(tmp_.Join("store")));
  EXPECT_EQ(ReadFromStore(tmp_.Join("store"), "f"), "subtype");
}

// Without mount.fuse.rankfs, mount(8) falls back to mount.fuse3, which runs
// "rankfs SOURCE MOUNTPOINT -o OPTIONS" through /bin/sh. mount(8) clears PATH, so sh searches
// its default path, which includes /sbin: the script links rankfs there.
TEST_F(FstabTest, FuseSubtypeAndLegacySourceThroughMountFuse3) {
  WriteFstab(tmp_.Join("store") + " " + tmp_.Join("mnt") + " fuse.rankfs noauto,compress=2 0 0\n" +
             "rankfs#" + tmp_.Join("store2") + " " + tmp_.Join("mnt2") + " fuse noauto 0 0\n");
  CommandResult r = RunInNamespace(
      "[ -x $SBIN/mount.fuse3 ] || setup_failed no mount.fuse3\n"
      "ln -s \"$RANKFS\" $SBIN/rankfs\n"
      // sh looks in /usr/local before $SBIN: an installed rankfs there gives way too.
      "for d in /usr/local/sbin /usr/local/bin; do\n"
      "  if [ -e $d/rankfs ]; then mount --bind \"$RANKFS\" $d/rankfs; fi\n"
      "done\n"
      "mount -T $T/fstab $T/mnt\n"
      "mount -T $T/fstab $T/mnt2\n"
      "echo \"FINDMNT: $(findmnt -n -o FSTYPE $T/mnt) $(findmnt -n -o FSTYPE $T/mnt2)\"\n"
      "printf one > $T/mnt/f\n"
      "printf two > $T/mnt2/f\n"
      "umount $T/mnt\n"
      "umount $T/mnt2\n");
  SKIP_IF_SETUP_FAILED(r);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r.output, "FINDMNT: fuse.rankfs fuse.rankfs")) << r.output;
  ASSERT_NO_FATAL_FAILURE(ExpectCleanStore(tmp_.Join("store")));
  ASSERT_NO_FATAL_FAILURE(ExpectCleanStore(tmp_.Join("store2")));
  EXPECT_EQ(ReadFromStore(tmp_.Join("store"), "f"), "one");
  EXPECT_EQ(ReadFromStore(tmp_.Join("store2"), "f"), "two");
}

TEST_F(FstabTest, BadOptionsFailTheMountNamingThem) {
  WriteFstab(tmp_.Join("store") + " " + tmp_.Join("mnt") + " rankfs noauto,compress=99 0 0\n" +
             tmp_.Join("store2") + " " + tmp_.Join("mnt2") + " rankfs noauto,frobnicate 0 0\n");
  CommandResult r = RunInNamespace(
      "if mount -T $T/fstab $T/mnt; then echo MOUNT SUCCEEDED; fi\n"
      "if mount -T $T/fstab $T/mnt2; then echo MOUNT SUCCEEDED; fi\n"
      "findmnt $T/mnt >/dev/null || findmnt $T/mnt2 >/dev/null || echo NOTHING MOUNTED\n");
  SKIP_IF_SETUP_FAILED(r);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(Has(r.output, "MOUNT SUCCEEDED")) << r.output;
  EXPECT_TRUE(Has(r.output, "NOTHING MOUNTED")) << r.output;
  EXPECT_TRUE(Has(r.output, "mount.rankfs: mount option 'compress=99'")) << r.output;
  EXPECT_TRUE(Has(r.output, "mount.rankfs: mount option 'frobnicate': unknown option")) << r.output;
  EXPECT_FALSE(fs::exists(tmp_.Join("store")));
}

// A `user,noauto` entry in /etc/fstab, mounted by uid 65534 with plain mount(8) and unmounted
// by the same user with `rankfs unmount` (through the setuid fusermount3). Standard systems make
// /dev/fuse 0666; containers often make it 0600, in which case the namespace gets a 0666 node of
// the same device (mknod) bound over it.
TEST_F(FstabTest, UserEntryMountedByAnOrdinaryUser) {
  const std::string u = tmp_.Join("u");
  ASSERT_EQ(mkdir(u.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((u + "/mnt").c_str(), 0755), 0);
  ASSERT_EQ(chown(u.c_str(), 65534, 65534), 0);
  ASSERT_EQ(chown((u + "/mnt").c_str(), 65534, 65534), 0);
  WriteFstab(u + "/store " + u + "/mnt rankfs user,noauto 0 0\n");
  CommandResult r = RunInNamespace(
      "for p in /bin/mount /bin/umount /bin/fusermount3; do\n"
      "  [ -u \"$(readlink -f $p)\" ] || setup_failed $p is not setuid root\n"
      "done\n"
      "command -v setpriv >/dev/null || setup_failed no setpriv\n"
      "mount --bind $T/fstab /etc/fstab || setup_failed cannot bind over /etc/fstab\n"
      "if [ \"$(stat -c %a /dev/fuse)\" != 666 ]; then\n"
      "  mknod -m 666 $T/fuse c 10 229 && mount --bind $T/fuse /dev/fuse "
      "|| setup_failed /dev/fuse is not open to users and cannot be replaced here\n"
      "fi\n"
      "AS='setpriv --reuid=65534 --regid=65534 --clear-groups'\n"
      "$AS mount -v $T/u/mnt\n"
      "echo \"FINDMNT: $(findmnt -n -o FSTYPE,OPTIONS $T/u/mnt)\"\n"
      "$AS sh -c \"printf 'by nobody' > $T/u/mnt/f\"\n"
      "$AS \"$RANKFS\" stats $T/u/mnt --json\n"
      "$AS \"$RANKFS\" unmount $T/u/mnt; echo \"UNMOUNT EXIT $?\"\n"
      "findmnt $T/u/mnt >/dev/null || echo UNMOUNTED\n");
  SKIP_IF_SETUP_FAILED(r);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r.output, "FINDMNT: fuse.rankfs ")) << r.output;
  EXPECT_TRUE(Has(r.output, "user_id=65534")) << r.output;  // fusermount3 made the mount
  EXPECT_TRUE(Has(r.output, "\"files\": 1,")) << r.output;
  EXPECT_TRUE(Has(r.output, "UNMOUNT EXIT 0")) << r.output;
  EXPECT_TRUE(Has(r.output, "UNMOUNTED")) << r.output;
  struct stat st;
  ASSERT_EQ(stat((u + "/store/meta").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);  // the daemon ran as the user
  ASSERT_NO_FATAL_FAILURE(ExpectCleanStore(u + "/store"));
  EXPECT_EQ(ReadFromStore(u + "/store", "f"), "by nobody");
}

}  // namespace
}  // namespace rankfs
