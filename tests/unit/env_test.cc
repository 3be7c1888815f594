// The Env contract, checked on PosixEnv (in a temporary directory) and on MemEnv alike.

#include "store/env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/temp_dir.h"

namespace rankfs {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

// Bytes that are never zero, so a punched range is easy to tell apart.
std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(1 + (i * 31 + seed) % 251);
  return s;
}

struct PosixFixture {
  TempDir tmp{"rankfs-env-test-"};
  Env* env() { return Env::Default(); }
  std::string root() { return tmp.path(); }
  static constexpr bool kIsPosix = true;
};

struct MemFixture {
  MemFixture() { EXPECT_TRUE(env_->CreateDir("/root").ok()); }
  Env* env() { return env_.get(); }
  std::string root() { return "/root"; }
  static constexpr bool kIsPosix = false;
  std::unique_ptr<Env> env_ = NewMemEnv();
};

template <typename Fixture>
class EnvTest : public ::testing::Test {
 protected:
  Env* env() { return fixture_.env(); }
  std::string Path(const std::string& name) { return fixture_.root() + "/" + name; }

  std::unique_ptr<File> Open(const std::string& path, OpenMode mode) {
    Result<std::unique_ptr<File>> file = env()->OpenFile(path, mode);
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    return file.ok() ? std::move(file).value() : nullptr;
  }

  void WriteFile(const std::string& path, const std::string& data) {
    std::unique_ptr<File> file = Open(path, OpenMode::kCreate);
    ASSERT_NE(file, nullptr);
    ASSERT_TRUE(file->Truncate(0).ok());
    ASSERT_TRUE(file->PWrite(0, data).ok());
  }

  std::string ReadFile(const std::string& path) {
    std::unique_ptr<File> file = Open(path, OpenMode::kReadOnly);
    if (file == nullptr) return "<open failed>";
    Result<uint64_t> size = file->Size();
    EXPECT_TRUE(size.ok());
    std::string data(size.ok() ? *size : 0, '\0');
    size_t got = 0;
    EXPECT_TRUE(file->PRead(0, data.size(), data.data(), &got).ok());
    data.resize(got);
    return data;
  }

  Fixture fixture_;
};

using Fixtures = ::testing::Types<PosixFixture, MemFixture>;
class FixtureNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kIsPosix ? "Posix" : "Mem";
  }
};
TYPED_TEST_SUITE(EnvTest, Fixtures, FixtureNames);

TYPED_TEST(EnvTest, WriteReadRoundTrip) {
  const std::string path = this->Path("f");
  {
    std::unique_ptr<File> file = this->Open(path, OpenMode::kCreate);
    ASSERT_NE(file, nullptr);
    EXPECT_EQ(file->path(), path);
    ASSERT_TRUE(file->PWrite(0, "hello").ok());
    ASSERT_TRUE(file->PWrite(5, " world").ok());
    ASSERT_TRUE(file->PWrite(0, "J").ok());  // overwrite in place
    ASSERT_TRUE(file->Sync().ok());
    Result<uint64_t> size = file->Size();
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, 11u);
  }
  EXPECT_EQ(this->ReadFile(path), "Jello world");
  Result<FileInfo> info = this->env()->Stat(path);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 11u);
  EXPECT_FALSE(info->is_dir);
}

TYPED_TEST(EnvTest, WriteBeyondEndLeavesZeroGap) {
  const std::string path = this->Path("gap");
  std::unique_ptr<File> file = this->Open(path, OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, "ab").ok());
  ASSERT_TRUE(file->PWrite(6, "cd").ok());
  EXPECT_EQ(this->ReadFile(path), std::string("ab\0\0\0\0cd", 8));
}

TYPED_TEST(EnvTest, ShortReadOnlyAtEndOfFile) {
  const std::string path = this->Path("short");
  this->WriteFile(path, "0123456789");
  std::unique_ptr<File> file = this->Open(path, OpenMode::kReadOnly);
  char buf[100];
  size_t got = 99;
  ASSERT_TRUE(file->PRead(5, sizeof(buf), buf, &got).ok());
  EXPECT_EQ(got, 5u);
  EXPECT_EQ(std::string(buf, got), "56789");
  ASSERT_TRUE(file->PRead(20, 10, buf, &got).ok());
  EXPECT_EQ(got, 0u);
  ASSERT_TRUE(file->PRead(0, 4, buf, &got).ok());
  EXPECT_EQ(got, 4u);
}

TYPED_TEST(EnvTest, CreateExclusiveFailsWhenFileExists) {
  const std::string path = this->Path("excl");
  ASSERT_NE(this->Open(path, OpenMode::kCreateExclusive), nullptr);
  Result<std::unique_ptr<File>> again = this->env()->OpenFile(path, OpenMode::kCreateExclusive);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), EEXIST);
  // kCreate opens the existing file without truncating it.
  this->WriteFile(path, "kept");
  ASSERT_NE(this->Open(path, OpenMode::kCreate), nullptr);
  EXPECT_EQ(this->ReadFile(path), "kept");
}

TYPED_TEST(EnvTest, OpeningMissingFileFailsWithEnoentNamingThePath) {
  const std::string path = this->Path("missing");
  for (OpenMode mode : {OpenMode::kReadOnly, OpenMode::kReadWrite}) {
    Result<std::unique_ptr<File>> file = this->env()->OpenFile(path, mode);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), ENOENT);
    EXPECT_NE(file.status().message().find(path), std::string::npos) << file.status().message();
  }
  Result<FileInfo> info = this->env()->Stat(path);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), ENOENT);
  // Creating inside a missing directory fails too.
  Result<std::unique_ptr<File>> nested =
      this->env()->OpenFile(this->Path("nodir/f"), OpenMode::kCreate);
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(nested.status().code(), ENOENT);
}

TYPED_TEST(EnvTest, RenameReplacesTheTarget) {
  const std::string a = this->Path("a");
  const std::string b = this->Path("b");
  this->WriteFile(a, "from a");
  this->WriteFile(b, "old b");
  ASSERT_TRUE(this->env()->RenameFile(a, b).ok());
  EXPECT_EQ(this->ReadFile(b), "from a");
  EXPECT_EQ(this->env()->Stat(a).status().code(), ENOENT);
  Status missing = this->env()->RenameFile(a, b);
  EXPECT_EQ(missing.code(), ENOENT);
}

TYPED_TEST(EnvTest, DeleteFileRemovesItButOpenHandlesStillRead) {
  const std::string path = this->Path("del");
  this->WriteFile(path, "still here");
  std::unique_ptr<File> open = this->Open(path, OpenMode::kReadOnly);
  ASSERT_TRUE(this->env()->DeleteFile(path).ok());
  EXPECT_EQ(this->env()->Stat(path).status().code(), ENOENT);
  EXPECT_EQ(this->env()->DeleteFile(path).code(), ENOENT);
  char buf[16];
  size_t got = 0;
  ASSERT_TRUE(open->PRead(0, sizeof(buf), buf, &got).ok());
  EXPECT_EQ(std::string(buf, got), "still here");
}

TYPED_TEST(EnvTest, ListDirNamesDirectChildrenOnly) {
  ASSERT_TRUE(this->env()->CreateDir(this->Path("d")).ok());
  ASSERT_TRUE(this->env()->CreateDir(this->Path("d")).ok()) << "CreateDir must be idempotent";
  this->WriteFile(this->Path("x"), "1");
  this->WriteFile(this->Path("y"), "2");
  this->WriteFile(this->Path("d/inner"), "3");
  Result<std::vector<std::string>> names = this->env()->ListDir(this->fixture_.root());
  ASSERT_TRUE(names.ok()) << names.status().ToString();
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"d", "x", "y"}));
  Result<std::vector<std::string>> inner = this->env()->ListDir(this->Path("d"));
  ASSERT_TRUE(inner.ok());
  EXPECT_EQ(*inner, (std::vector<std::string>{"inner"}));
  Result<FileInfo> info = this->env()->Stat(this->Path("d"));
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->is_dir);
  EXPECT_EQ(this->env()->ListDir(this->Path("nope")).status().code(), ENOENT);
  EXPECT_TRUE(this->env()->SyncDir(this->fixture_.root()).ok());
}

TYPED_TEST(EnvTest, CreateDirNeedsItsParent) {
  Status s = this->env()->CreateDir(this->Path("p/q"));
  EXPECT_EQ(s.code(), ENOENT);
  this->WriteFile(this->Path("file"), "x");
  EXPECT_EQ(this->env()->CreateDir(this->Path("file")).code(), EEXIST);
}

TYPED_TEST(EnvTest, DeleteDirFailsWhileNotEmpty) {
  const std::string dir = this->Path("full");
  ASSERT_TRUE(this->env()->CreateDir(dir).ok());
  this->WriteFile(dir + "/f", "x");
  Status s = this->env()->DeleteDir(dir);
  EXPECT_EQ(s.code(), ENOTEMPTY);
  ASSERT_TRUE(this->env()->DeleteFile(dir + "/f").ok());
  ASSERT_TRUE(this->env()->DeleteDir(dir).ok());
  EXPECT_EQ(this->env()->Stat(dir).status().code(), ENOENT);
  EXPECT_EQ(this->env()->DeleteDir(dir).code(), ENOENT);
}

TYPED_TEST(EnvTest, PunchHoleReadsZerosAndGivesSpaceBack) {
  const std::string path = this->Path("punch");
  const std::string data = Pattern(kMiB, 7);
  std::unique_ptr<File> file = this->Open(path, OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, data).ok());
  ASSERT_TRUE(file->Sync().ok());  // so ext4 has allocated the blocks (no delayed allocation)
  Result<FileInfo> before = this->env()->Stat(path);
  ASSERT_TRUE(before.ok());
  EXPECT_GE(before->allocated_bytes, kMiB);

  const uint64_t off = 256 * kKiB, len = 512 * kKiB;
  ASSERT_TRUE(file->PunchHole(off, len).ok());
  std::string back(kMiB, 'x');
  size_t got = 0;
  ASSERT_TRUE(file->PRead(0, back.size(), back.data(), &got).ok());
  ASSERT_EQ(got, kMiB);
  EXPECT_EQ(back.substr(off, len), std::string(len, '\0'));
  EXPECT_EQ(back.substr(0, off), data.substr(0, off));
  EXPECT_EQ(back.substr(off + len), data.substr(off + len));

  Result<FileInfo> after = this->env()->Stat(path);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size, kMiB) << "PunchHole must keep the size";
  EXPECT_GE(before->allocated_bytes - after->allocated_bytes, 400 * kKiB)
      << "before " << before->allocated_bytes << " after " << after->allocated_bytes;
}

TYPED_TEST(EnvTest, PunchHoleOfPartialBlocksZeroesOnlyTheRange) {
  const std::string path = this->Path("partial");
  const std::string data = Pattern(3 * 4096, 3);
  std::unique_ptr<File> file = this->Open(path, OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, data).ok());
  ASSERT_TRUE(file->PunchHole(100, 50).ok());
  ASSERT_TRUE(file->PunchHole(5000, 0).ok()) << "an empty range is a no-op";
  std::string expect = data;
  std::fill(expect.begin() + 100, expect.begin() + 150, '\0');
  EXPECT_EQ(this->ReadFile(path), expect);
}

TYPED_TEST(EnvTest, NextDataSkipsPunchedHoles) {
  const std::string path = this->Path("sparse");
  const uint64_t kPiece = 64 * kKiB;
  std::unique_ptr<File> file = this->Open(path, OpenMode::kCreate);
  ASSERT_TRUE(file->PWrite(0, Pattern(4 * kPiece, 1)).ok());
  ASSERT_TRUE(file->Sync().ok());
  ASSERT_TRUE(file->PunchHole(kPiece, kPiece).ok());      // hole in [64K, 128K)
  ASSERT_TRUE(file->PunchHole(3 * kPiece, kPiece).ok());  // hole to end of file

  Result<uint64_t> next = file->NextData(0);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 0u);
  next = file->NextData(kPiece + 10);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 2 * kPiece);
  next = file->NextData(2 * kPiece + 7);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 2 * kPiece + 7) << "an offset inside data is itself the answer";
  next = file->NextData(3 * kPiece);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 4 * kPiece) << "no data after the offset: the file size";
}

TYPED_TEST(EnvTest, TruncateShrinksAndExtendsWithZeros) {
  const std::string path = this->Path("trunc");
  this->WriteFile(path, "abcdef");
  std::unique_ptr<File> file = this->Open(path, OpenMode::kReadWrite);
  ASSERT_TRUE(file->Truncate(3).ok());
  EXPECT_EQ(this->ReadFile(path), "abc");
  ASSERT_TRUE(file->Truncate(5).ok());
  EXPECT_EQ(this->ReadFile(path), std::string("abc\0\0", 5));
}

TYPED_TEST(EnvTest, ReadOnlyFileRejectsWrites) {
  const std::string path = this->Path("ro");
  this->WriteFile(path, "data");
  std::unique_ptr<File> file = this->Open(path, OpenMode::kReadOnly);
  EXPECT_FALSE(file->PWrite(0, "x").ok());
  EXPECT_EQ(this->ReadFile(path), "data");
}

TYPED_TEST(EnvTest, SecondLockFailsWithEbusyUntilReleased) {
  const std::string path = this->Path("LOCK");
  Result<std::unique_ptr<FileLock>> first = this->env()->LockFile(path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<std::unique_ptr<FileLock>> second = this->env()->LockFile(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), EBUSY);
  EXPECT_NE(second.status().message().find(path), std::string::npos);
  first.value().reset();
  Result<std::unique_ptr<FileLock>> third = this->env()->LockFile(path);
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TYPED_TEST(EnvTest, SpaceInfoIsNonZero) {
  Result<SpaceInfo> space = this->env()->GetSpaceInfo(this->fixture_.root());
  ASSERT_TRUE(space.ok()) << space.status().ToString();
  EXPECT_GT(space->total_bytes, 0u);
  EXPECT_GT(space->free_bytes, 0u);
  EXPECT_LE(space->free_bytes, space->total_bytes);
  EXPECT_LE(space->avail_bytes, space->free_bytes);
}

TYPED_TEST(EnvTest, ConcurrentWritersOfDisjointRanges) {
  const std::string path = this->Path("concurrent");
  std::unique_ptr<File> file = this->Open(path, OpenMode::kCreate);
  constexpr int kThreads = 4;
  constexpr size_t kRange = 64 * kKiB;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t off = 0; off < kRange; off += 4096) {
        EXPECT_TRUE(file->PWrite(t * kRange + off, std::string(4096, char('a' + t))).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const std::string back = this->ReadFile(path);
  ASSERT_EQ(back.size(), kThreads * kRange);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(back.substr(t * kRange, kRange), std::string(kRange, char('a' + t)));
  }
}

// The POSIX lock must also exclude other processes (two daemons on one store).
TEST(PosixEnvTest, LockIsVisibleToAnotherProcess) {
  TempDir tmp("rankfs-env-lock-");
  const std::string path = tmp.Join("LOCK");
  // Exit status 0: the child could not take the lock; 1: it could; 2: it failed otherwise.
  auto child_can_lock = [&path]() -> int {
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) _exit(2);
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) _exit(1);
      _exit(errno == EWOULDBLOCK ? 0 : 2);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  {
    Result<std::unique_ptr<FileLock>> lock = Env::Default()->LockFile(path);
    ASSERT_TRUE(lock.ok()) << lock.status().ToString();
    EXPECT_EQ(child_can_lock(), 0) << "the lock is not held against another process";
  }
  EXPECT_EQ(child_can_lock(), 1) << "destroying the FileLock must release it";
}

TEST(PosixEnvTest, ErrorsNameTheOperationAndPath) {
  TempDir tmp("rankfs-env-err-");
  Status s = Env::Default()->DeleteFile(tmp.Join("absent"));
  ASSERT_EQ(s.code(), ENOENT);
  EXPECT_NE(s.message().find("unlink"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(tmp.Join("absent")), std::string::npos) << s.message();
}

TEST(MemEnvTest, SpaceInfoCountsAllocatedBlocks) {
  std::unique_ptr<Env> env = NewMemEnv();
  Result<SpaceInfo> empty = env->GetSpaceInfo("/");
  ASSERT_TRUE(empty.ok());
  Result<std::unique_ptr<File>> file = env->OpenFile("/f", OpenMode::kCreate);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->PWrite(0, std::string(10000, 'x')).ok());  // 3 blocks
  Result<SpaceInfo> used = env->GetSpaceInfo("/");
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(empty->free_bytes - used->free_bytes, 3 * 4096u);
  Result<FileInfo> info = env->Stat("/f");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->allocated_bytes, 3 * 4096u);
  // A sparse write far out allocates only the block it touches.
  ASSERT_TRUE((*file)->PWrite(100 * 4096, "y").ok());
  info = env->Stat("/f");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->allocated_bytes, 4 * 4096u);
  EXPECT_EQ(info->size, 100 * 4096u + 1);
}

TEST(MemEnvTest, PathsAreNormalized) {
  std::unique_ptr<Env> env = NewMemEnv();
  ASSERT_TRUE(env->CreateDir("/a/").ok());
  Result<std::unique_ptr<File>> file = env->OpenFile("/a//f", OpenMode::kCreate);
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(env->Stat("/a/f").ok());
  Result<std::vector<std::string>> names = env->ListDir("/a");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"f"}));
}

}  // namespace
}  // namespace rankfs
