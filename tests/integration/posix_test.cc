// POSIX conformance by comparison: one syscall script runs twice, once in a directory on the
// backing filesystem (a TempDir under /tmp) and once inside a rankfs mount. Each step records
// its outcome (a value, or the errno name) into a transcript; the two transcripts must be equal
// step by step. The reference is whatever the kernel's local filesystem does, so the test
// states "behaves like ext4" without hard-coding every errno by hand.
//
// A second test runs a permission script as uid/gid 65534 (nobody) in a forked child, against
// a tree prepared by root, again on both filesystems (mount with allow_other; the kernel
// enforces permissions through default_permissions).
//
// Needs root and /dev/fuse (skips otherwise).
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/temp_dir.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace rankfs {
namespace {

// renameat2(2) through syscall() so that the test does not depend on the glibc wrapper.
int Rename2(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(
      syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

// Records the outcome of each step as "step: outcome" lines.
class Transcript {
 public:
  explicit Transcript(std::string base) : base_(std::move(base)) {}

  std::string P(const std::string& rel) const { return base_ + "/" + rel; }

  // A syscall that returns -1/errno on failure: records "ok" (or the value when asked) or
  // the errno's name.
  void Rc(const std::string& step, long rc, bool record_value = false) {
    if (rc < 0) {
      Add(step, ErrnoName(errno));
    } else {
      Add(step, record_value ? std::to_string(rc) : "ok");
    }
  }
  void Add(const std::string& step, const std::string& outcome) {
    lines_.push_back(step + ": " + outcome);
  }
  const std::vector<std::string>& lines() const { return lines_; }

  static std::string ErrnoName(int e) {
    static const std::pair<int, const char*> kNames[] = {
        {ENOENT, "ENOENT"},   {EEXIST, "EEXIST"},   {ENOTEMPTY, "ENOTEMPTY"},
        {EISDIR, "EISDIR"},   {ENOTDIR, "ENOTDIR"}, {EACCES, "EACCES"},
        {EPERM, "EPERM"},     {EINVAL, "EINVAL"},   {ENODATA, "ENODATA"},
        {ERANGE, "ERANGE"},   {ENXIO, "ENXIO"},     {EAGAIN, "EAGAIN/EWOULDBLOCK"},
        {EBADF, "EBADF"},     {EXDEV, "EXDEV"},     {ENAMETOOLONG, "ENAMETOOLONG"},
        {ENOTSUP, "ENOTSUP"}, {ENOSYS, "ENOSYS"},   {EIO, "EIO"},
        {EBUSY, "EBUSY"},     {EMLINK, "EMLINK"},
    };
    for (const auto& [code, name] : kNames) {
      if (code == e) return name;
    }
    return "errno " + std::to_string(e) + " (" + strerror(e) + ")";
  }

 private:
  std::string base_;
  std::vector<std::string> lines_;
};

std::string ModeString(mode_t m) {
  char buf[32];
  const char* type = S_ISREG(m)    ? "reg"
                     : S_ISDIR(m)  ? "dir"
                     : S_ISLNK(m)  ? "lnk"
                     : S_ISFIFO(m) ? "fifo"
                                   : "other";
  std::snprintf(buf, sizeof buf, "%s %04o", type, unsigned(m & 07777));
  return buf;
}

// stat() summary without fields that legitimately differ between filesystems (inode numbers,
// device, block counts, times).
std::string StatString(const std::string& path, bool follow = true) {
  struct stat st;
  int rc = follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
  if (rc != 0) return Transcript::ErrnoName(errno);
  return ModeString(st.st_mode) + " nlink=" + std::to_string(st.st_nlink) +
         " size=" + (S_ISDIR(st.st_mode) ? std::string("(dir)") : std::to_string(st.st_size)) +
         " uid=" + std::to_string(st.st_uid) + " gid=" + std::to_string(st.st_gid);
}

std::string ReadAll(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<" + Transcript::ErrnoName(errno) + ">";
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      out = "<read " + Transcript::ErrnoName(errno) + ">";
      break;
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

// Compact for transcripts: short contents verbatim, long ones by size and a checksum.
std::string Summary(const std::string& s) {
  if (s.size() <= 64) return "\"" + s + "\"";
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return std::to_string(s.size()) + " bytes, fnv " + std::to_string(h);
}

int WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) return -1;
  ssize_t n = write(fd, data.data(), data.size());
  int e = errno;
  close(fd);
  errno = e;
  return n == ssize_t(data.size()) ? 0 : -1;
}

std::string ListDir(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return Transcript::ErrnoName(errno);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) names.push_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += n + " ";
  return out;
}

std::string UserXattrs(const std::string& path) {
  char buf[4096];
  ssize_t n = listxattr(path.c_str(), buf, sizeof buf);
  if (n < 0) return Transcript::ErrnoName(errno);
  std::vector<std::string> names;
  for (ssize_t i = 0; i < n;) {
    std::string name(buf + i);
    i += ssize_t(name.size()) + 1;
    if (name.rfind("user.", 0) == 0) names.push_back(name);  // ignore security.* & co
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& x : names) out += x + " ";
  return out;
}

std::string GetXattr(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = getxattr(path.c_str(), name, buf, sizeof buf);
  if (n < 0) return Transcript::ErrnoName(errno);
  return "\"" + std::string(buf, size_t(n)) + "\"";
}

// The main script. Every step's outcome goes into `t`; nothing here asserts.
void RunScript(Transcript& t) {
  // --- ENOENT ---
  t.Rc("open missing", open(t.P("missing").c_str(), O_RDONLY));
  t.Rc("unlink missing", unlink(t.P("missing").c_str()));
  t.Rc("rmdir missing", rmdir(t.P("missing").c_str()));
  t.Rc("stat missing", [&] {
    struct stat st;
    return stat(t.P("missing").c_str(), &st);
  }());
  t.Rc("open missing/x O_CREAT", open(t.P("missing/x").c_str(), O_CREAT | O_WRONLY, 0644));
  t.Rc("rename missing", rename(t.P("missing").c_str(), t.P("other").c_str()));

  // --- EEXIST ---
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
    t.Add("readlink s", n < 0 ? Transcript::ErrnoName(errno) : std::string(buf, size_t(n)));
    n = readlink(t.P("f").c_str(), buf, sizeof buf);
    t.Add("readlink f (not a link)", n < 0 ? Transcript::ErrnoName(errno) : "ok");
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

  // --- ENOTEMPTY ---
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

  // --- EISDIR ---
  t.Rc("unlink d (dir)", unlink(t.P("d").c_str()));
  t.Rc("open d O_WRONLY", open(t.P("d").c_str(), O_WRONLY));
  t.Rc("open d O_RDWR", open(t.P("d").c_str(), O_RDWR));
  t.Rc("rename file f over dir d", rename(t.P("f").c_str(), t.P("d").c_str()));

  // --- ENOTDIR ---
  t.Rc("rmdir f (file)", rmdir(t.P("f").c_str()));
  t.Rc("mkdir f/x", mkdir(t.P("f/x").c_str(), 0755));
  t.Rc("open f/x", open(t.P("f/x").c_str(), O_RDONLY));
  t.Rc("rename dir dA over file f", rename(t.P("dA").c_str(), t.P("f").c_str()));
  t.Rc("open f O_DIRECTORY", open(t.P("f").c_str(), O_RDONLY | O_DIRECTORY));

  // --- EINVAL, ENAMETOOLONG ---
  t.Rc("rename d into d/sub/inner", rename(t.P("d").c_str(), t.P("d/sub/inner").c_str()));
  t.Rc("rmdir d/sub/.", rmdir(t.P("d/sub/.").c_str()));
  t.Rc("create 256-byte name", open(t.P(std::string(256, 'n')).c_str(), O_CREAT | O_WRONLY, 0644));
  {
    int fd = open(t.P(std::string(255, 'n')).c_str(), O_CREAT | O_WRONLY, 0644);
    t.Rc("create 255-byte name", fd);
    if (fd >= 0) close(fd);
    t.Rc("unlink 255-byte name", unlink(t.P(std::string(255, 'n')).c_str()));
  }

  // --- same-directory renames ---
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

  // --- renameat2 flags ---
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

  // --- hard links ---
  t.Rc("link f2 l1", link(t.P("f2").c_str(), t.P("l1").c_str()));
  t.Rc("link f2 d/l2", link(t.P("f2").c_str(), t.P("d/l2").c_str()));
  t.Add("stat f2 (3 links)", StatString(t.P("f2")));
  t.Rc("unlink l1", unlink(t.P("l1").c_str()));
  t.Add("stat f2 (2 links)", StatString(t.P("f2")));
  t.Rc("rename d/l2 over f2 (same inode)", rename(t.P("d/l2").c_str(), t.P("f2").c_str()));
  t.Add("stat f2 after same-inode rename", StatString(t.P("f2")));
  t.Add("stat d/l2 after same-inode rename", StatString(t.P("d/l2")));

  // --- chmod, truncate, times ---
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

  // --- xattrs ---
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

  // --- O_APPEND ---
  {
    WriteFile(t.P("app"), "start-");
    int fd = open(t.P("app").c_str(), O_WRONLY | O_APPEND);
    t.Rc("write append 1", write(fd, "abc", 3), true);
    lseek(fd, 0, SEEK_SET);
    t.Rc("write append 2 after seek 0", write(fd, "XYZ", 3), true);
    t.Rc("offset after append", lseek(fd, 0, SEEK_CUR), true);
    close(fd);
    // A second descriptor appending in between.
    int a = open(t.P("app").c_str(), O_WRONLY | O_APPEND);
    int b = open(t.P("app").c_str(), O_WRONLY | O_APPEND);
    write(a, "1", 1);
    write(b, "2", 1);
    write(a, "3", 1);
    close(a);
    close(b);
    t.Add("read app", ReadAll(t.P("app")));
  }

  // --- open-unlinked file ---
  {
    WriteFile(t.P("unl"), "still here");
    int fd = open(t.P("unl").c_str(), O_RDWR);
    t.Rc("unlink open file", unlink(t.P("unl").c_str()));
    char buf[64] = {};
    t.Rc("pread unlinked", pread(fd, buf, sizeof buf, 0), true);
    t.Add("content unlinked", buf);
    t.Rc("pwrite unlinked", pwrite(fd, "STILL", 5, 0), true);
    pread(fd, buf, sizeof buf, 0);
    t.Add("content unlinked after write", buf);
    struct stat st {};
    fstat(fd, &st);
    t.Add("fstat unlinked nlink", std::to_string(st.st_nlink));
    close(fd);
    t.Add("stat unl", StatString(t.P("unl")));
  }

  // --- a rename replaces a file that is open: the old one stays readable through its fd ---
  {
    WriteFile(t.P("old"), "old content");
    WriteFile(t.P("new"), "new content");
    int fd = open(t.P("old").c_str(), O_RDONLY);
    t.Rc("rename new over open old", rename(t.P("new").c_str(), t.P("old").c_str()));
    char buf[64] = {};
    t.Rc("pread replaced file", pread(fd, buf, sizeof buf - 1, 0), true);
    t.Add("content replaced file", buf);
    struct stat st {};
    fstat(fd, &st);
    t.Add("fstat replaced file nlink", std::to_string(st.st_nlink));
    close(fd);
    t.Add("read old (now the new file)", ReadAll(t.P("old")));
    // The last name of a hard-linked, open file goes; the inode lives on through the fd.
    WriteFile(t.P("hl1"), "linked");
    link(t.P("hl1").c_str(), t.P("hl2").c_str());
    fd = open(t.P("hl2").c_str(), O_RDWR);
    unlink(t.P("hl1").c_str());
    fstat(fd, &st);
    t.Add("nlink after unlinking one of two names", std::to_string(st.st_nlink));
    unlink(t.P("hl2").c_str());
    fstat(fd, &st);
    t.Add("nlink after unlinking both", std::to_string(st.st_nlink));
    t.Rc("ftruncate unlinked 3", ftruncate(fd, 3));
    memset(buf, 0, sizeof buf);
    t.Rc("pread unlinked after ftruncate", pread(fd, buf, sizeof buf - 1, 0), true);
    t.Add("content", buf);
    close(fd);
    unlink(t.P("old").c_str());
  }

  // --- sparse file: SEEK_DATA / SEEK_HOLE (blocks of 4 KiB at 0 and at 2 MiB) ---
  {
    const std::string block(4096, 'D');
    int fd = open(t.P("sparse").c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
    pwrite(fd, block.data(), block.size(), 0);
    pwrite(fd, block.data(), block.size(), 2 << 20);
    ftruncate(fd, (4 << 20));
    close(fd);
    fd = open(t.P("sparse").c_str(), O_RDONLY);
    t.Rc("SEEK_DATA 0", lseek(fd, 0, SEEK_DATA), true);
    t.Rc("SEEK_HOLE 0", lseek(fd, 0, SEEK_HOLE), true);
    t.Rc("SEEK_DATA 4096", lseek(fd, 4096, SEEK_DATA), true);
    t.Rc("SEEK_HOLE 2M", lseek(fd, 2 << 20, SEEK_HOLE), true);
    t.Rc("SEEK_DATA 2M+4096", lseek(fd, (2 << 20) + 4096, SEEK_DATA), true);
    t.Rc("SEEK_HOLE 2M+4096", lseek(fd, (2 << 20) + 4096, SEEK_HOLE), true);
    t.Rc("SEEK_DATA at EOF", lseek(fd, 4 << 20, SEEK_DATA), true);
    t.Rc("SEEK_HOLE past EOF", lseek(fd, (4 << 20) + 1, SEEK_HOLE), true);
    t.Add("sparse content", Summary(ReadAll(t.P("sparse"))));
    close(fd);
    // Punching a hole turns data into a hole.
    fd = open(t.P("sparse").c_str(), O_RDWR);
    t.Rc("punch 2M block",
         fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 << 20, 4096));
    t.Rc("SEEK_DATA 4096 after punch", lseek(fd, 4096, SEEK_DATA), true);
    struct stat st {};
    fstat(fd, &st);
    t.Add("size after punch", std::to_string(st.st_size));
    close(fd);
    t.Add("sparse content after punch", Summary(ReadAll(t.P("sparse"))));
  }

  // --- locks ---
  {
    int fd1 = open(t.P("f2").c_str(), O_RDWR);
    int fd2 = open(t.P("f2").c_str(), O_RDWR);
    t.Rc("flock fd1 LOCK_EX", flock(fd1, LOCK_EX | LOCK_NB));
    t.Rc("flock fd2 LOCK_EX|LOCK_NB (conflict)", flock(fd2, LOCK_EX | LOCK_NB));
    t.Rc("flock fd2 LOCK_SH|LOCK_NB (conflict)", flock(fd2, LOCK_SH | LOCK_NB));
    t.Rc("flock fd1 LOCK_UN", flock(fd1, LOCK_UN));
    t.Rc("flock fd2 LOCK_EX after unlock", flock(fd2, LOCK_EX | LOCK_NB));
    flock(fd2, LOCK_UN);

    // Open-file-description locks conflict between two descriptions in one process.
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 100;
    t.Rc("F_OFD_SETLK fd1 write 0-100", fcntl(fd1, F_OFD_SETLK, &fl));
    struct flock fl2 = fl;
    fl2.l_start = 50;
    t.Rc("F_OFD_SETLK fd2 write 50-150 (conflict)", fcntl(fd2, F_OFD_SETLK, &fl2));
    fl2.l_start = 100;
    t.Rc("F_OFD_SETLK fd2 write 100-200 (no overlap)", fcntl(fd2, F_OFD_SETLK, &fl2));
    fl.l_type = F_UNLCK;
    fcntl(fd1, F_OFD_SETLK, &fl);
    fl2.l_type = F_UNLCK;
    fcntl(fd2, F_OFD_SETLK, &fl2);

    // Classic POSIX locks are per process: the conflict needs a second process.
    struct flock pl {};
    pl.l_type = F_WRLCK;
    pl.l_whence = SEEK_SET;
    pl.l_len = 0;
    t.Rc("F_SETLK fd1 whole file", fcntl(fd1, F_SETLK, &pl));
    int pipefd[2];
    pipe(pipefd);
    pid_t child = fork();
    if (child == 0) {
      int fd = open(t.P("f2").c_str(), O_RDWR);
      struct flock c {};
      c.l_type = F_RDLCK;
      c.l_whence = SEEK_SET;
      c.l_len = 10;
      int results[3];
      results[0] = fcntl(fd, F_SETLK, &c) == 0 ? 0 : errno;
      struct flock q {};
      q.l_type = F_WRLCK;
      q.l_whence = SEEK_SET;
      q.l_len = 10;
      results[1] = fcntl(fd, F_GETLK, &q) == 0 ? 0 : errno;
      results[2] = q.l_type == F_WRLCK && q.l_pid == getppid() ? 1 : 0;
      write(pipefd[1], results, sizeof results);
      _exit(0);
    }
    int results[3] = {-1, -1, -1};
    read(pipefd[0], results, sizeof results);
    waitpid(child, nullptr, 0);
    close(pipefd[0]);
    close(pipefd[1]);
    t.Add("child F_SETLK read (conflict)",
          results[0] == 0 ? "ok" : Transcript::ErrnoName(results[0]));
    t.Add("child F_GETLK", results[1] == 0 ? "ok" : Transcript::ErrnoName(results[1]));
    t.Add("child F_GETLK reports parent's write lock", results[2] == 1 ? "yes" : "no");
    close(fd1);  // drops the process's POSIX locks on f2
    close(fd2);
  }

  // --- a directory bigger than one readdir buffer ---
  {
    mkdir(t.P("big").c_str(), 0755);
    int made = 0;
    for (int i = 0; i < 1500; ++i) {
      char name[128];
      std::snprintf(name, sizeof name, "big/entry-with-a-longish-name-%05d", i);
      int fd = open(t.P(name).c_str(), O_CREAT | O_WRONLY, 0644);
      if (fd >= 0) {
        ++made;
        close(fd);
      }
    }
    t.Add("created in big", std::to_string(made));
    DIR* d = opendir(t.P("big").c_str());
    std::vector<std::string> names;
    while (d != nullptr && readdir(d) != nullptr) {
    }
    if (d != nullptr) {
      // Unlinking while listing must neither skip nor repeat the entries that stay.
      rewinddir(d);
      int i = 0;
      while (dirent* e = readdir(d)) {
        names.push_back(e->d_name);
        if (++i == 700) unlink(t.P("big/entry-with-a-longish-name-01499").c_str());
      }
      closedir(d);
    }
    std::sort(names.begin(), names.end());
    const bool unique = std::adjacent_find(names.begin(), names.end()) == names.end();
    t.Add("listed in big (no duplicates)", unique ? "yes" : "no");
    t.Add("listed in big >= 1501", names.size() >= 1501 ? "yes" : std::to_string(names.size()));
    int removed = 0;
    for (int i = 0; i < 1499; ++i) {
      char name[128];
      std::snprintf(name, sizeof name, "big/entry-with-a-longish-name-%05d", i);
      if (unlink(t.P(name).c_str()) == 0) ++removed;
    }
    t.Add("removed from big", std::to_string(removed));
    t.Rc("rmdir big", rmdir(t.P("big").c_str()));
  }

  // --- special files, readdir, statfs ---
  t.Rc("mkfifo fifo", mkfifo(t.P("fifo").c_str(), 0600));
  t.Add("stat fifo", StatString(t.P("fifo")));
  t.Add("list base", ListDir(t.P("")));
  {
    struct statfs sf {};
    t.Rc("statfs", statfs(t.P("").c_str(), &sf));
    t.Add("statfs f_blocks > 0", sf.f_blocks > 0 ? "yes" : "no");
    t.Add("statfs f_bsize > 0", sf.f_bsize > 0 ? "yes" : "no");
    t.Add("statfs f_bfree > 0", sf.f_bfree > 0 ? "yes" : "no");
    t.Add("statfs f_bavail <= f_bfree", sf.f_bavail <= sf.f_bfree ? "yes" : "no");
    t.Add("statfs f_namelen", std::to_string(sf.f_namelen));
  }

  // --- rm -rf the tree bottom-up ---
  t.Rc("unlink f2", unlink(t.P("f2").c_str()));
  t.Rc("rmdir d (non-empty)", rmdir(t.P("d").c_str()));
  t.Rc("unlink d/moved", unlink(t.P("d/moved").c_str()));
  t.Rc("rmdir d/sub (moved away)", rmdir(t.P("d/sub").c_str()));
  t.Rc("rmdir d", rmdir(t.P("d").c_str()));
  t.Rc("rmdir e/sub", rmdir(t.P("e/sub").c_str()));
}

class PosixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!MountedFs::FuseAvailable()) GTEST_SKIP() << "needs root and /dev/fuse";
    mnt_ = tmp_.Join("mnt");
    store_ = tmp_.Join("store");
    ref_ = tmp_.Join("ref");
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(ref_.c_str(), 0755), 0);
    timeout_.Watch(mnt_);
  }

  void Mount(const std::string& options = "") {
    auto m = MountedFs::Start(RANKFS_BINARY, store_, mnt_, options);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    fs_ = std::move(m).value();
  }

  void ExpectSameTranscripts(const std::vector<std::string>& ref,
                             const std::vector<std::string>& got) {
    for (size_t i = 0; i < std::max(ref.size(), got.size()); ++i) {
      const std::string r = i < ref.size() ? ref[i] : "<missing>";
      const std::string g = i < got.size() ? got[i] : "<missing>";
      EXPECT_EQ(r, g) << "step " << i << " differs (left: backing fs, right: rankfs)";
    }
  }

  TempDir tmp_;
  TestTimeout timeout_{std::chrono::seconds(240)};
  std::string mnt_, store_, ref_;
  std::unique_ptr<MountedFs> fs_;
};

TEST_F(PosixTest, SyscallScriptMatchesTheBackingFilesystem) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  Transcript ref(ref_);
  RunScript(ref);
  Transcript got(mnt_);
  RunScript(got);
  ExpectSameTranscripts(ref.lines(), got.lines());
  for (const std::string& l : got.lines()) std::printf("  %s\n", l.c_str());

  // The state the script left must also survive a remount (attributes and names are stored).
  const std::string before = ListDir(mnt_) + "|" + StatString(mnt_ + "/g") + "|" +
                             ReadAll(mnt_ + "/app") + "|" + StatString(mnt_ + "/e") + "|" +
                             StatString(mnt_ + "/s", false);
  Status s = fs_->Unmount();
  ASSERT_TRUE(s.ok()) << s.ToString();
  fs_.reset();
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string after = ListDir(mnt_) + "|" + StatString(mnt_ + "/g") + "|" +
                            ReadAll(mnt_ + "/app") + "|" + StatString(mnt_ + "/e") + "|" +
                            StatString(mnt_ + "/s", false);
  EXPECT_EQ(before, after);
  EXPECT_EQ(GetXattr(mnt_ + "/d", "user.d"), "\"dir\"");
}

// ---------------------------------------------------------------------------------------------
// Permissions as uid/gid 65534.

constexpr uid_t kNobody = 65534;

// Root prepares: secret (0600 root), private/ (0700 root) with a file, rootdir/ (0755 root)
// with victim, nobodydir/ (0755 nobody).
void PrepareTree(const std::string& base) {
  ASSERT_EQ(chmod(base.c_str(), 0755), 0) << base;
  ASSERT_EQ(WriteFile(base + "/secret", "top secret", 0600), 0) << strerror(errno);
  ASSERT_EQ(chmod((base + "/secret").c_str(), 0600), 0);
  ASSERT_EQ(mkdir((base + "/private").c_str(), 0700), 0);
  ASSERT_EQ(WriteFile(base + "/private/file", "private"), 0);
  ASSERT_EQ(mkdir((base + "/rootdir").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(base + "/rootdir/victim", "victim", 0666), 0);
  ASSERT_EQ(chmod((base + "/rootdir/victim").c_str(), 0666), 0);
  ASSERT_EQ(mkdir((base + "/nobodydir").c_str(), 0755), 0);
  ASSERT_EQ(chown((base + "/nobodydir").c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(WriteFile(base + "/readable", "public", 0644), 0);
  ASSERT_EQ(chmod((base + "/readable").c_str(), 0644), 0);
}

void RunUnprivilegedScript(Transcript& t) {
  t.Add("uid", std::to_string(getuid()) + "/" + std::to_string(geteuid()));
  t.Rc("open secret O_RDONLY", open(t.P("secret").c_str(), O_RDONLY));
  t.Rc("open secret O_WRONLY", open(t.P("secret").c_str(), O_WRONLY));
  t.Rc("truncate secret", truncate(t.P("secret").c_str(), 0));
  t.Rc("chmod secret", chmod(t.P("secret").c_str(), 0666));
  t.Rc("chown secret", chown(t.P("secret").c_str(), kNobody, kNobody));
  {
    struct timespec ts[2] = {{1, 0}, {2, 0}};
    t.Rc("utimensat secret explicit", utimensat(AT_FDCWD, t.P("secret").c_str(), ts, 0));
    t.Rc("utimensat secret NOW (not owner, no write)",
         utimensat(AT_FDCWD, t.P("secret").c_str(), nullptr, 0));
  }
  t.Rc("setxattr user.x on secret", setxattr(t.P("secret").c_str(), "user.x", "v", 1, 0));
  t.Add("read readable", ReadAll(t.P("readable")));
  t.Rc("open readable O_WRONLY", open(t.P("readable").c_str(), O_WRONLY));
  t.Rc("unlink rootdir/victim", unlink(t.P("rootdir/victim").c_str()));
  t.Rc("create in rootdir", open(t.P("rootdir/new").c_str(), O_CREAT | O_WRONLY, 0644));
  t.Rc("mkdir in base (root 0755)", mkdir(t.P("mine").c_str(), 0755));
  t.Add("readdir private", ListDir(t.P("private")));
  t.Add("stat private/file", StatString(t.P("private/file")));
  t.Rc("open private/file", open(t.P("private/file").c_str(), O_RDONLY));
  {
    // Writing the world-writable victim is allowed (0666), deleting it is not.
    int fd = open(t.P("rootdir/victim").c_str(), O_WRONLY | O_APPEND);
    t.Rc("open rootdir/victim O_WRONLY (0666)", fd);
    if (fd >= 0) {
      t.Rc("append to victim", write(fd, "+", 1), true);
      close(fd);
    }
  }
  {
    int fd = open(t.P("nobodydir/x").c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
    t.Rc("create nobodydir/x", fd);
    if (fd >= 0) {
      t.Rc("write nobodydir/x", write(fd, "mine", 4), true);
      close(fd);
    }
  }
  t.Add("stat nobodydir/x", StatString(t.P("nobodydir/x")));
  t.Rc("rename nobodydir/x over rootdir/victim",
       rename(t.P("nobodydir/x").c_str(), t.P("rootdir/victim").c_str()));
  t.Rc("rename rootdir/victim into nobodydir",
       rename(t.P("rootdir/victim").c_str(), t.P("nobodydir/v").c_str()));
  t.Rc("rename nobodydir/x to nobodydir/y",
       rename(t.P("nobodydir/x").c_str(), t.P("nobodydir/y").c_str()));
  t.Rc("chmod nobodydir/y 0600", chmod(t.P("nobodydir/y").c_str(), 0600));
  t.Rc("chown nobodydir/y to root", chown(t.P("nobodydir/y").c_str(), 0, 0));
  t.Rc("mkdir nobodydir/sub", mkdir(t.P("nobodydir/sub").c_str(), 0700));
  t.Rc("link secret into nobodydir", link(t.P("secret").c_str(), t.P("nobodydir/hl").c_str()));
  t.Rc("symlink in nobodydir", symlink("../secret", t.P("nobodydir/sl").c_str()));
  t.Add("read via symlink", ReadAll(t.P("nobodydir/sl")));
  t.Add("read nobodydir/y", ReadAll(t.P("nobodydir/y")));
  t.Add("list nobodydir", ListDir(t.P("nobodydir")));
  t.Add("stat nobodydir/sub", StatString(t.P("nobodydir/sub")));
}

// Runs the unprivileged script in a child that drops to 65534:65534; returns its transcript.
std::vector<std::string> RunAsNobody(const std::string& base) {
  ChildResult r = RunAsUser(kNobody, [&] {
    Transcript t(base);
    RunUnprivilegedScript(t);
    std::string out;
    for (const auto& l : t.lines()) out += l + "\n";
    return out;
  });
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < r.output.size(); ++i) {
    if (r.output[i] == '\n') {
      lines.push_back(r.output.substr(start, i - start));
      start = i + 1;
    }
  }
  if (!r.exited_cleanly) lines.push_back("child died");
  return lines;
}

TEST_F(PosixTest, PermissionsAsNobodyMatchTheBackingFilesystem) {
  // The backing TempDir and its parents must be traversable by nobody (/tmp is 1777).
  ASSERT_EQ(chmod(tmp_.path().c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(Mount("allow_other"));
  ASSERT_NO_FATAL_FAILURE(PrepareTree(ref_));
  ASSERT_NO_FATAL_FAILURE(PrepareTree(mnt_));

  const std::vector<std::string> ref = RunAsNobody(ref_);
  const std::vector<std::string> got = RunAsNobody(mnt_);
  ASSERT_GT(ref.size(), 10u) << (ref.empty() ? "" : ref[0]);
  ExpectSameTranscripts(ref, got);
  for (const std::string& l : got) std::printf("  %s\n", l.c_str());

  // The denials the brief names, spelled out (the transcripts above already compare them).
  auto has = [&](const std::string& line) {
    return std::find(got.begin(), got.end(), line) != got.end();
  };
  EXPECT_TRUE(has("open secret O_RDONLY: EACCES"));
  EXPECT_TRUE(has("open secret O_WRONLY: EACCES"));
  EXPECT_TRUE(has("unlink rootdir/victim: EACCES"));
  EXPECT_TRUE(has("rename nobodydir/x over rootdir/victim: EACCES"));
  EXPECT_TRUE(has("readdir private: EACCES"));
  EXPECT_TRUE(has("create nobodydir/x: ok"));

  // Root still sees everything intact, and nobody's file is owned by nobody.
  EXPECT_EQ(ReadAll(mnt_ + "/secret"), "top secret");
  EXPECT_EQ(ReadAll(mnt_ + "/rootdir/victim"), ReadAll(ref_ + "/rootdir/victim"));
  struct stat st;
  ASSERT_EQ(stat((mnt_ + "/nobodydir/y").c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_uid, kNobody);
  EXPECT_EQ(st.st_gid, kNobody);
}

}  // namespace
}  // namespace rankfs
