// POSIX conformance of names and attributes by comparison (tests/testutil/posix_script.h): a
// table of syscall cases runs in a directory on the backing filesystem (a TempDir under /tmp)
// and inside a rankfs mount, and each case's transcript must match step by step: errnos of
// missing, existing and wrong-type names, links and symlinks, renames and renameat2 flags,
// modes, owners, sizes and times, xattrs, and removing the tree. What the cases leave must
// also survive a remount. posix_io_test.cc does the same for file contents, locks and big
// directories, posix_permissions_test.cc for an unprivileged user.
//
// Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/testutil/posix_comparison_test.h"
#include "tests/testutil/posix_script.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace rankfs::posix {
namespace {

// ENOENT: names that do not exist
void Enoent(Transcript& t) {
  t.Rc("open missing", open(t.P("missing").c_str(), O_RDONLY));
  t.Rc("unlink missing", unlink(t.P("missing").c_str()));
  t.Rc("rmdir missing", rmdir(t.P("missing").c_str()));
  t.Rc("stat missing", [&] {
    struct stat st;
    return stat(t.P("missing").c_str(), &st);
  }());
  t.Rc("open missing/x O_CREAT", open(t.P("missing/x").c_str(), O_CREAT | O_WRONLY, 0644));
  t.Rc("rename missing", rename(t.P("missing").c_str(), t.P("other").c_str()));
}

// EEXIST: names that exist; hard links and symlinks
void ExistingNames(Transcript& t) {
  t.Rc("mkdir d", mkdir(t.P("d").c_str(), 0755));
  t.Rc("mkdir d again", mkdir(t.P("d").c_str(), 0755));
  t.Rc("write f", WriteFile(t.P("f"), "hello"));
  t.Rc("open f O_CREAT|O_EXCL", open(t.P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  t.Rc("open d O_CREAT|O_EXCL", open(t.P("d").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  t.Rc("link f g", link(t.P("f").c_str(), t.P("g").c_str()));
  t.Add("stat f after link", StatString(t.P("f")));
  t.Add("stat g after link", StatString(t.P("g")));
  t.Rc("link f g again", link(t.P("f").c_str(), t.P("g").c_str()));
  t.Rc("link d dlink (dir)", link(t.P("d").c_str(), t.P("dlink").c_str()));
  t.Rc("symlink f s", symlink("f", t.P("s").c_str()));
  t.Rc("symlink x over s", symlink("x", t.P("s").c_str()));
  t.Rc("symlink x over f", symlink("x", t.P("f").c_str()));
  {
    char buf[256];
    ssize_t n = readlink(t.P("s").c_str(), buf, sizeof buf);
    t.Add("readlink s", n < 0 ? ErrnoName(errno) : std::string(buf, size_t(n)));
    n = readlink(t.P("f").c_str(), buf, sizeof buf);
    t.Add("readlink f (not a link)", n < 0 ? ErrnoName(errno) : "ok");
  }
  t.Add("lstat s", ModeString([&] {
          struct stat st {};
          lstat(t.P("s").c_str(), &st);
          return st.st_mode & S_IFMT;
        }()));
  t.Add("stat s (follows)", StatString(t.P("s")));
  t.Add("read through s", ReadAll(t.P("s")));
  t.Rc("symlink dangling", symlink("nowhere", t.P("dangling").c_str()));
  t.Add("stat dangling", StatString(t.P("dangling")));
  t.Add("lstat dangling size", [&] {
    struct stat st {};
    lstat(t.P("dangling").c_str(), &st);
    return std::to_string(st.st_size);
  }());
}

// ENOTEMPTY: directories that are not empty
void NonEmptyDirectories(Transcript& t) {
  t.Rc("mkdir d/sub", mkdir(t.P("d/sub").c_str(), 0755));
  t.Rc("write d/sub/file", WriteFile(t.P("d/sub/file"), "x"));
  t.Rc("rmdir d/sub (non-empty)", rmdir(t.P("d/sub").c_str()));
  t.Rc("mkdir e", mkdir(t.P("e").c_str(), 0755));
  t.Rc("mkdir e/child", mkdir(t.P("e/child").c_str(), 0755));
  t.Rc("mkdir dA", mkdir(t.P("dA").c_str(), 0755));
  t.Rc("write dA/inside", WriteFile(t.P("dA/inside"), "in dA"));
  t.Rc("rename dA over non-empty e", rename(t.P("dA").c_str(), t.P("e").c_str()));
  t.Add("stat d nlink (dir with one subdir)", StatString(t.P("d")));
  t.Add("stat e nlink (dir with one subdir)", StatString(t.P("e")));
}

// EISDIR: file calls on a directory
void IsADirectory(Transcript& t) {
  t.Rc("unlink d (dir)", unlink(t.P("d").c_str()));
  t.Rc("open d O_WRONLY", open(t.P("d").c_str(), O_WRONLY));
  t.Rc("open d O_RDWR", open(t.P("d").c_str(), O_RDWR));
  t.Rc("rename file f over dir d", rename(t.P("f").c_str(), t.P("d").c_str()));
}

// ENOTDIR: directory calls on a file
void NotADirectory(Transcript& t) {
  t.Rc("rmdir f (file)", rmdir(t.P("f").c_str()));
  t.Rc("mkdir f/x", mkdir(t.P("f/x").c_str(), 0755));
  t.Rc("open f/x", open(t.P("f/x").c_str(), O_RDONLY));
  t.Rc("rename dir dA over file f", rename(t.P("dA").c_str(), t.P("f").c_str()));
  t.Rc("open f O_DIRECTORY", open(t.P("f").c_str(), O_RDONLY | O_DIRECTORY));
}

// EINVAL and ENAMETOOLONG
void InvalidAndLongNames(Transcript& t) {
  t.Rc("rename d into d/sub/inner", rename(t.P("d").c_str(), t.P("d/sub/inner").c_str()));
  t.Rc("rmdir d/sub/.", rmdir(t.P("d/sub/.").c_str()));
  t.Rc("create 256-byte name", open(t.P(std::string(256, 'n')).c_str(), O_CREAT | O_WRONLY, 0644));
  {
    int fd = open(t.P(std::string(255, 'n')).c_str(), O_CREAT | O_WRONLY, 0644);
    t.Rc("create 255-byte name", fd);
    if (fd >= 0) close(fd);
    t.Rc("unlink 255-byte name", unlink(t.P(std::string(255, 'n')).c_str()));
  }
}

// renames within and across directories
void Renames(Transcript& t) {
  t.Rc("write h", WriteFile(t.P("h"), "other content"));
  t.Rc("rename h over g (file over file)", rename(t.P("h").c_str(), t.P("g").c_str()));
  t.Add("read g", ReadAll(t.P("g")));
  t.Add("stat f after g replaced", StatString(t.P("f")));
  t.Add("stat h after rename", StatString(t.P("h")));
  t.Rc("rename f onto itself", rename(t.P("f").c_str(), t.P("f").c_str()));
  t.Rc("mkdir empty", mkdir(t.P("empty").c_str(), 0755));
  t.Rc("rename dA over empty dir", rename(t.P("dA").c_str(), t.P("empty").c_str()));
  t.Add("stat dA after rename", StatString(t.P("dA")));
  t.Add("read empty/inside", ReadAll(t.P("empty/inside")));
  t.Rc("rename d/sub/file to d/moved (cross-dir)",
       rename(t.P("d/sub/file").c_str(), t.P("d/moved").c_str()));
  t.Add("list d", ListDir(t.P("d")));
  t.Add("list d/sub", ListDir(t.P("d/sub")));
  t.Rc("rename d/sub to e/sub (dir, cross-dir)",
       rename(t.P("d/sub").c_str(), t.P("e/sub").c_str()));
  t.Add("stat d nlink after moving subdir out", StatString(t.P("d")));
  t.Add("stat e nlink after moving subdir in", StatString(t.P("e")));
}

// renameat2 flags
void RenameFlags(Transcript& t) {
  t.Rc("NOREPLACE f -> g (exists)", Rename2(t.P("f"), t.P("g"), RENAME_NOREPLACE));
  t.Rc("NOREPLACE f -> f2", Rename2(t.P("f"), t.P("f2"), RENAME_NOREPLACE));
  t.Add("stat f after NOREPLACE", StatString(t.P("f")));
  t.Rc("EXCHANGE f2 <-> g", Rename2(t.P("f2"), t.P("g"), RENAME_EXCHANGE));
  t.Add("read f2 after exchange", ReadAll(t.P("f2")));
  t.Add("read g after exchange", ReadAll(t.P("g")));
  t.Rc("EXCHANGE f2 <-> missing", Rename2(t.P("f2"), t.P("missing"), RENAME_EXCHANGE));
  t.Rc("EXCHANGE dir e <-> file g", Rename2(t.P("e"), t.P("g"), RENAME_EXCHANGE));
  t.Add("stat e after exchange", StatString(t.P("e")));
  t.Add("list g after exchange", ListDir(t.P("g")));
  t.Rc("EXCHANGE|NOREPLACE", Rename2(t.P("f2"), t.P("g"), RENAME_EXCHANGE | RENAME_NOREPLACE));
  t.Rc("EXCHANGE back", Rename2(t.P("e"), t.P("g"), RENAME_EXCHANGE));
}

// hard links
void HardLinks(Transcript& t) {
  t.Rc("link f2 l1", link(t.P("f2").c_str(), t.P("l1").c_str()));
  t.Rc("link f2 d/l2", link(t.P("f2").c_str(), t.P("d/l2").c_str()));
  t.Add("stat f2 (3 links)", StatString(t.P("f2")));
  t.Rc("unlink l1", unlink(t.P("l1").c_str()));
  t.Add("stat f2 (2 links)", StatString(t.P("f2")));
  t.Rc("rename d/l2 over f2 (same inode)", rename(t.P("d/l2").c_str(), t.P("f2").c_str()));
  t.Add("stat f2 after same-inode rename", StatString(t.P("f2")));
  t.Add("stat d/l2 after same-inode rename", StatString(t.P("d/l2")));
}

// chmod, chown, truncate, times
void ModesSizesTimes(Transcript& t) {
  t.Rc("chmod f2 0640", chmod(t.P("f2").c_str(), 0640));
  t.Add("stat f2 after chmod", StatString(t.P("f2")));
  t.Rc("chmod f2 04755", chmod(t.P("f2").c_str(), 04755));
  t.Add("stat f2 after chmod 04755", StatString(t.P("f2")));
  t.Rc("chmod d 0700", chmod(t.P("d").c_str(), 0700));
  t.Add("stat d after chmod", StatString(t.P("d")));
  t.Rc("chown f2 1234:5678", chown(t.P("f2").c_str(), 1234, 5678));
  t.Add("stat f2 after chown", StatString(t.P("f2")));
  t.Rc("chmod f2 0644", chmod(t.P("f2").c_str(), 0644));
  t.Rc("truncate g 3", truncate(t.P("g").c_str(), 3));
  t.Add("read g after truncate 3", ReadAll(t.P("g")));
  t.Rc("truncate g 10000", truncate(t.P("g").c_str(), 10000));
  t.Add("read g after truncate 10000", Summary(ReadAll(t.P("g"))));
  t.Rc("truncate d (dir)", truncate(t.P("d").c_str(), 0));
  t.Rc("truncate g -1", truncate(t.P("g").c_str(), -1));
  {
    int fd = open(t.P("g").c_str(), O_RDWR);
    t.Rc("ftruncate g 4096", ftruncate(fd, 4096));
    struct stat st {};
    fstat(fd, &st);
    t.Add("fstat g size", std::to_string(st.st_size));
    char c;
    t.Rc("pread past EOF", pread(fd, &c, 1, 5000), true);
    close(fd);
    fd = open(t.P("g").c_str(), O_RDONLY);
    t.Rc("ftruncate on O_RDONLY fd", ftruncate(fd, 0));
    close(fd);
    fd = open(t.P("g").c_str(), O_WRONLY | O_TRUNC);
    fstat(fd, &st);
    t.Add("size after O_TRUNC", std::to_string(st.st_size));
    close(fd);
  }
  {
    struct timespec ts[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
    t.Rc("utimensat f2", utimensat(AT_FDCWD, t.P("f2").c_str(), ts, 0));
    struct stat st {};
    stat(t.P("f2").c_str(), &st);
    t.Add("f2 atime", std::to_string(st.st_atim.tv_sec) + "." + std::to_string(st.st_atim.tv_nsec));
    t.Add("f2 mtime", std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
    struct timespec now_only_mtime[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    t.Rc("utimensat f2 mtime=NOW", utimensat(AT_FDCWD, t.P("f2").c_str(), now_only_mtime, 0));
    stat(t.P("f2").c_str(), &st);
    const time_t now = time(nullptr);
    t.Add("f2 atime kept",
          std::to_string(st.st_atim.tv_sec) + "." + std::to_string(st.st_atim.tv_nsec));
    t.Add("f2 mtime near now", std::llabs(st.st_mtim.tv_sec - now) <= 5 ? "yes" : "no");
    t.Rc("utimensat symlink NOFOLLOW",
         utimensat(AT_FDCWD, t.P("s").c_str(), ts, AT_SYMLINK_NOFOLLOW));
    lstat(t.P("s").c_str(), &st);
    t.Add("s mtime (the link's own)", std::to_string(st.st_mtim.tv_sec));
    // Writing updates mtime and ctime.
    utimensat(AT_FDCWD, t.P("f2").c_str(), ts, 0);
    int fd = open(t.P("f2").c_str(), O_WRONLY);
    write(fd, "zz", 2);
    close(fd);
    stat(t.P("f2").c_str(), &st);
    t.Add("f2 mtime updated by write", std::llabs(st.st_mtim.tv_sec - now) <= 5 ? "yes" : "no");
    t.Add("f2 ctime near now", std::llabs(st.st_ctim.tv_sec - now) <= 5 ? "yes" : "no");
  }
}

// xattrs
void Xattrs(Transcript& t) {
  const std::string x = t.P("f2");
  t.Rc("setxattr user.x", setxattr(x.c_str(), "user.x", "v1", 2, 0));
  t.Add("getxattr user.x", GetXattr(x, "user.x"));
  t.Rc("getxattr user.x size query", getxattr(x.c_str(), "user.x", nullptr, 0), true);
  {
    char small[1];
    t.Rc("getxattr user.x into 1 byte", getxattr(x.c_str(), "user.x", small, 1));
  }
  t.Rc("setxattr user.y", setxattr(x.c_str(), "user.y", "", 0, 0));
  t.Add("getxattr user.y (empty value)", GetXattr(x, "user.y"));
  t.Add("listxattr", UserXattrs(x));
  t.Rc("setxattr user.x XATTR_CREATE", setxattr(x.c_str(), "user.x", "v2", 2, XATTR_CREATE));
  t.Rc("setxattr user.z XATTR_REPLACE", setxattr(x.c_str(), "user.z", "v2", 2, XATTR_REPLACE));
  t.Rc("setxattr user.x XATTR_REPLACE", setxattr(x.c_str(), "user.x", "v3", 2, XATTR_REPLACE));
  t.Add("getxattr user.x after replace", GetXattr(x, "user.x"));
  t.Rc("removexattr user.x", removexattr(x.c_str(), "user.x"));
  t.Add("getxattr user.x after remove", GetXattr(x, "user.x"));
  t.Rc("removexattr user.x again", removexattr(x.c_str(), "user.x"));
  t.Add("listxattr after remove", UserXattrs(x));
  t.Rc("setxattr user.d on dir", setxattr(t.P("d").c_str(), "user.d", "dir", 3, 0));
  t.Add("getxattr user.d on dir", GetXattr(t.P("d"), "user.d"));
  t.Rc("getxattr missing file", getxattr(t.P("missing").c_str(), "user.x", nullptr, 0));
  t.Rc("setxattr user.r (2000-byte value)",
       setxattr(x.c_str(), "user.r", std::string(2000, 'r').c_str(), 2000, 0));
  t.Add("xattr survives rename", [&] {
    rename(x.c_str(), t.P("f3").c_str());
    std::string v = std::to_string(getxattr(t.P("f3").c_str(), "user.r", nullptr, 0));
    rename(t.P("f3").c_str(), x.c_str());
    return v;
  }());
}

// rm -rf the tree bottom-up
void RemoveTheTree(Transcript& t) {
  t.Rc("unlink f2", unlink(t.P("f2").c_str()));
  t.Rc("rmdir d (non-empty)", rmdir(t.P("d").c_str()));
  t.Rc("unlink d/moved", unlink(t.P("d/moved").c_str()));
  t.Rc("rmdir d/sub (moved away)", rmdir(t.P("d/sub").c_str()));
  t.Rc("rmdir d", rmdir(t.P("d").c_str()));
  t.Rc("rmdir e/sub", rmdir(t.P("e/sub").c_str()));
}

// In order: each case works on what the cases before it left.
const ScriptCase kCases[] = {
    {"ENOENT: names that do not exist", Enoent},
    {"EEXIST: names that exist; hard links and symlinks", ExistingNames},
    {"ENOTEMPTY: directories that are not empty", NonEmptyDirectories},
    {"EISDIR: file calls on a directory", IsADirectory},
    {"ENOTDIR: directory calls on a file", NotADirectory},
    {"EINVAL and ENAMETOOLONG", InvalidAndLongNames},
    {"renames within and across directories", Renames},
    {"renameat2 flags", RenameFlags},
    {"hard links", HardLinks},
    {"chmod, chown, truncate, times", ModesSizesTimes},
    {"xattrs", Xattrs},
    {"rm -rf the tree bottom-up", RemoveTheTree},
};

class PosixTest : public PosixComparisonTest {};

TEST_F(PosixTest, SyscallScriptMatchesTheBackingFilesystem) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  RunCases(kCases);

  // The state the cases left must also survive a remount (attributes and names are stored).
  auto state = [&] {
    return ListDir(mnt_) + "|" + StatString(mnt_ + "/g") + "|" + StatString(mnt_ + "/e") + "|" +
           StatString(mnt_ + "/s", false);
  };
  const std::string before = state();
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(before, state());
  EXPECT_EQ(GetXattr(mnt_ + "/d", "user.d"), "\"dir\"");
}

}  // namespace
}  // namespace rankfs::posix
