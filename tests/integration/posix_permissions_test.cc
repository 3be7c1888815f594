// Permissions by comparison (tests/testutil/posix_script.h): root prepares the same tree in a
// directory on the backing filesystem and inside a rankfs mount (with allow_other; the kernel
// enforces permissions through default_permissions), then a script runs as uid/gid 65534
// (nobody) in a forked child on both, and the transcripts must match step by step.
//
// Needs root and /dev/fuse (skips otherwise).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/posix_comparison_test.h"
#include "tests/testutil/posix_script.h"

namespace rankfs::posix {
namespace {

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

class PosixPermissionsTest : public PosixComparisonTest {};

TEST_F(PosixPermissionsTest, PermissionsAsNobodyMatchTheBackingFilesystem) {
  // The backing TempDir and its parents must be traversable by nobody (/tmp is 1777).
  ASSERT_EQ(chmod(tmp_.path().c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(Mount("allow_other"));
  ASSERT_NO_FATAL_FAILURE(PrepareTree(ref_));
  ASSERT_NO_FATAL_FAILURE(PrepareTree(mnt_));

  const std::vector<std::string> ref = RunAsNobody(ref_);
  const std::vector<std::string> got = RunAsNobody(mnt_);
  ASSERT_GT(ref.size(), 10u) << (ref.empty() ? "" : ref[0]);
  ExpectSameTranscripts("as nobody", ref, got);
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
}  // namespace rankfs::posix
