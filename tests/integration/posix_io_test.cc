// POSIX conformance of file contents by comparison (tests/testutil/posix_script.h): a table of
// syscall cases runs in a directory on the backing filesystem and inside a rankfs mount, and
// each case's transcript must match step by step: O_APPEND, files open after their name is
// gone or replaced, sparse files (SEEK_DATA/SEEK_HOLE, punching), flock, OFD and POSIX locks,
// a directory bigger than one readdir buffer, FIFOs and statfs. What the cases leave must
// also survive a remount.
//
// Needs root and /dev/fuse (skips otherwise).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tests/testutil/posix_comparison_test.h"
#include "tests/testutil/posix_script.h"

namespace rankfs::posix {
namespace {

// a file for the lock cases
void FileToLock(Transcript& t) { t.Rc("write f2", WriteFile(t.P("f2"), "lock me")); }

// O_APPEND
void Append(Transcript& t) {
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
}

// an open file whose name is gone
void OpenUnlinkedFile(Transcript& t) {
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
}

// a rename replaces a file that is open: the old one stays readable through its fd
void RenameOverAnOpenFile(Transcript& t) {
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
}

// sparse file: SEEK_DATA / SEEK_HOLE (blocks of 4 KiB at 0 and at 2 MiB)
void SparseFile(Transcript& t) {
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
}

// locks
void Locks(Transcript& t) {
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
    t.Add("child F_SETLK read (conflict)", results[0] == 0 ? "ok" : ErrnoName(results[0]));
    t.Add("child F_GETLK", results[1] == 0 ? "ok" : ErrnoName(results[1]));
    t.Add("child F_GETLK reports parent's write lock", results[2] == 1 ? "yes" : "no");
    close(fd1);  // drops the process's POSIX locks on f2
    close(fd2);
  }
}

// a directory bigger than one readdir buffer
void BigDirectory(Transcript& t) {
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
}

// special files, readdir, statfs
void SpecialFilesAndStatfs(Transcript& t) {
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
}

// In order: each case works on what the cases before it left.
const ScriptCase kCases[] = {
    {"a file for the lock cases", FileToLock},
    {"O_APPEND", Append},
    {"an open file whose name is gone", OpenUnlinkedFile},
    {"a rename replaces a file that is open: the old one stays readable through its fd",
     RenameOverAnOpenFile},
    {"sparse file: SEEK_DATA / SEEK_HOLE (blocks of 4 KiB at 0 and at 2 MiB)", SparseFile},
    {"locks", Locks},
    {"a directory bigger than one readdir buffer", BigDirectory},
    {"special files, readdir, statfs", SpecialFilesAndStatfs},
};

class PosixIoTest : public PosixComparisonTest {};

TEST_F(PosixIoTest, SyscallScriptMatchesTheBackingFilesystem) {
  ASSERT_NO_FATAL_FAILURE(Mount());
  RunCases(kCases);

  // The files the cases left must also survive a remount.
  auto state = [&] {
    return ListDir(mnt_) + "|" + ReadAll(mnt_ + "/app") + "|" + Summary(ReadAll(mnt_ + "/sparse"));
  };
  const std::string before = state();
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(before, state());
}

}  // namespace
}  // namespace rankfs::posix
