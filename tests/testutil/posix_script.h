// POSIX conformance by comparison: a script of syscalls runs once in a directory on the
// backing filesystem and once inside a rankfs mount. Each step records its outcome (a value,
// or the errno's name) in a Transcript; the two transcripts must be equal step by step. The
// reference is whatever the kernel's local filesystem does, so a test states "behaves like
// ext4" without hard-coding every errno by hand.
//
// A script is a table of ScriptCases run in order in one directory (a case finds what the
// cases before it left there); PosixComparisonTest (tests/testutil/posix_comparison_test.h)
// runs each case on both sides and compares its steps. The helpers below turn results into
// transcript text, leaving out what legitimately differs between filesystems (inode
// numbers, devices, block counts, times).
//
// Thread-safety: a test's own thread (a forked child may run a script too).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace rankfs::posix {

// Records the outcome of each step as "step: outcome" lines.
class Transcript {
 public:
  explicit Transcript(std::string base) : base_(std::move(base)) {}

  // The path of `rel` under the script's directory ("" is the directory itself).
  std::string P(const std::string& rel) const { return base_ + "/" + rel; }

  // A syscall that returns -1/errno on failure: records "ok" (or the value when asked) or
  // the errno's name.
  void Rc(const std::string& step, long rc, bool record_value = false);
  void Add(const std::string& step, const std::string& outcome) {
    lines_.push_back(step + ": " + outcome);
  }
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::string base_;
  std::vector<std::string> lines_;
};

// One case of a table: `run` adds its steps to the transcript and asserts nothing.
struct ScriptCase {
  const char* name;
  void (*run)(Transcript& t);
};

std::string ErrnoName(int e);
// renameat2(2) through syscall(), so that no glibc wrapper is needed.
int Rename2(const std::string& from, const std::string& to, unsigned flags);
std::string ModeString(mode_t m);
// stat() (or lstat()) summary: type, mode, nlink, size, owner; or the errno's name.
std::string StatString(const std::string& path, bool follow = true);
// The whole file, or "<ERRNO>" / "<read ERRNO>".
std::string ReadAll(const std::string& path);
// Short contents verbatim, long ones as size and checksum.
std::string Summary(const std::string& s);
// Creates or truncates `path` with `data`; 0, or -1 with errno set.
int WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644);
// The sorted names in `path` (with . and ..), or the errno's name.
std::string ListDir(const std::string& path);
// The sorted user.* xattr names of `path`, or the errno's name.
std::string UserXattrs(const std::string& path);
std::string GetXattr(const std::string& path, const char* name);

}  // namespace rankfs::posix
