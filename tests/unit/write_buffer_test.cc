// The write buffer (FsOptions::write_buffer_bytes, fs/write_room.h): buffered bytes stay under
// the cap plus one write per writing thread however many files hold some, because idle files'
// bytes are pushed to the store to make room; a failing store fails the waiting writes
// instead of hanging them and loses nothing it acknowledged; freed heap goes back to the OS
// once the mount is quiet.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "store/fault_injection_env.h"
#include "tests/testutil/fs_core_fixture.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

using Clock = std::chrono::steady_clock;

class WriteBufferTest : public FsCoreFixture {};

// kThreads threads each write a piece to each of their share of kFiles open files in turn, so
// that every file holds a stream's uncut tail at once: together far more than the cap.
TEST_F(WriteBufferTest, AThousandOpenFilesStayUnderTheCap) {
  FsOptions fo;
  fo.write_buffer_bytes = 16 << 20;
  Reopen(fo);
  constexpr int kFiles = 1000, kThreads = 4;
  constexpr size_t kPiece = 64 << 10, kRounds = 3, kFileBytes = kPiece * kRounds;
  const std::string pool = MakeRealData(8 << 20, 31);
  auto content = [&](int i) {
    return std::string_view(pool).substr(size_t(i) * 7919 % (pool.size() - kFileBytes), kFileBytes);
  };
  std::vector<Ino> files;
  for (int i = 0; i < kFiles; ++i) files.push_back(CreateFile(kRootIno, "f" + std::to_string(i)));
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t r = 0; r < kRounds; ++r) {
        for (int i = t; i < kFiles; i += kThreads) {
          if (!fs_->Write(files[i], r * kPiece, content(i).substr(r * kPiece, kPiece)).ok()) {
            ++failed;
          }
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ASSERT_EQ(failed.load(), 0);
  const FsStats s = fs_->Stats();
  // The constant over the cap: what the writes admitted at one time add, one piece a thread.
  EXPECT_LE(s.dirty_peak_bytes, fo.write_buffer_bytes + kThreads * kPiece);
  EXPECT_GT(s.write_buffer_waits, 0u) << "the files never held more than the cap";
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_TRUE(fs_->Release(files[i]).ok());
    ASSERT_TRUE(ReadAll(files[i]) == content(i)) << "file " << i;
  }
  EXPECT_EQ(SettledStats().dirty_bytes, 0u);
}

TEST_F(WriteBufferTest, FreedHeapGoesBackOnceTheMountIsQuiet) {
  FsOptions fo;
  fo.idle_trim_ms = 50;
  Reopen(fo);
  Ino ino = CreateFile(kRootIno, "f");
  WriteAll(ino, MakeRealData(8 << 20, 32), 1 << 20);
  ASSERT_TRUE(fs_->Release(ino).ok());
  // Every batch has finished: the pipeline's own trims (while batches flow) are over.
  const FsStats before = SettledStats();
  ASSERT_GT(before.batches, 0u);
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  FsStats now = fs_->Stats();
  while (now.heap_trims == before.heap_trims && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the condition
    now = fs_->Stats();
  }
  EXPECT_GT(now.heap_trims, before.heap_trims) << "no trim after the last batch";
  EXPECT_GE(now.idle_heap_trims, 1u);
  EXPECT_EQ(now.batches, before.batches);
}

// Pack writes fail: batches fail, pushes fail, and the bytes stay buffered. A writer over the
// cap must then get the error, not wait forever; once the store works again every
// acknowledged byte reaches it.
TEST(WriteBufferFaultTest, AFailingStoreFailsTheWaitingWriteAndLosesNothingAcknowledged) {
  TempDir dir;
  FaultInjectionEnv env(Env::Default());
  StoreOptions so;
  so.env = &env;
  so.packs.background_reclaim = false;
  auto store = Store::Open(dir.Join("store"), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  FsOptions fo;
  fo.write_buffer_bytes = 4 << 20;
  fo.lazy_close_ms = 0;
  auto fs = FsCore::Create(store->get(), fo);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  env.controller().FailAfter(kFaultWrite, 0, EIO, "/packs/");

  constexpr size_t kPiece = 64 << 10, kFileBytes = 256 << 10;
  const std::string data = MakeRealData(64 * kFileBytes, 33);
  const Caller caller{1000, 1000, 1};
  std::vector<std::pair<Ino, size_t>> acked;  // each file and its bytes acknowledged
  Status failed;
  for (int i = 0; i < 64 && failed.ok(); ++i) {
    auto a = (*fs)->Create(kRootIno, "f" + std::to_string(i), 0644, O_RDWR, caller);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    acked.emplace_back(a->ino, 0);
    for (size_t off = 0; off < kFileBytes && failed.ok(); off += kPiece) {
      const std::string_view piece = std::string_view(data).substr(i * kFileBytes + off, kPiece);
      failed = (*fs)->Write(a->ino, off, piece);
      if (failed.ok()) acked.back().second += kPiece;
    }
  }
  ASSERT_FALSE(failed.ok()) << "16 MiB went into a 4 MiB buffer over a failing store";
  EXPECT_EQ(failed.code(), EIO) << failed.ToString();

  env.controller().ClearFaults();
  for (size_t i = 0; i < acked.size(); ++i) {
    const auto [ino, n] = acked[i];
    Status st = (*fs)->Fsync(ino, false);
    ASSERT_TRUE(st.ok()) << st.ToString();
    std::string back(n, '\0');
    auto got = (*fs)->Read(ino, 0, n, back.data());
    ASSERT_TRUE(got.ok() && *got == n);
    ASSERT_TRUE(back == std::string_view(data).substr(i * kFileBytes, n)) << "file " << i;
  }
  EXPECT_EQ((*fs)->Stats().dirty_bytes, 0u);
  ASSERT_TRUE((*fs)->Shutdown().ok());
}

}  // namespace
}  // namespace rankfs
