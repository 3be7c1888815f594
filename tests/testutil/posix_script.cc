#include "tests/testutil/posix_script.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

namespace rankfs::posix {

void Transcript::Rc(const std::string& step, long rc, bool record_value) {
  if (rc < 0) {
    Add(step, ErrnoName(errno));
  } else {
    Add(step, record_value ? std::to_string(rc) : "ok");
  }
}

std::string ErrnoName(int e) {
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

int Rename2(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(
      syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

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
std::string StatString(const std::string& path, bool follow) {
  struct stat st;
  int rc = follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
  if (rc != 0) return ErrnoName(errno);
  return ModeString(st.st_mode) + " nlink=" + std::to_string(st.st_nlink) +
         " size=" + (S_ISDIR(st.st_mode) ? std::string("(dir)") : std::to_string(st.st_size)) +
         " uid=" + std::to_string(st.st_uid) + " gid=" + std::to_string(st.st_gid);
}

std::string ReadAll(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<" + ErrnoName(errno) + ">";
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      out = "<read " + ErrnoName(errno) + ">";
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

int WriteFile(const std::string& path, const std::string& data, mode_t mode) {
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
  if (d == nullptr) return ErrnoName(errno);
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
  if (n < 0) return ErrnoName(errno);
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
  if (n < 0) return ErrnoName(errno);
  return "\"" + std::string(buf, size_t(n)) + "\"";
}

}  // namespace rankfs::posix
