// What the training libraries do to a filesystem (issue #25 item 4): each case of
// tests/realstack/library_io.py -- save_to_disk / load_from_disk of a sharded dataset,
// cleanup_cache_files(), datasets' FileLock taken by four processes at once,
// Dataset.from_generator, torch.save + torch.load(mmap=True), transformers' Trainer checkpointing
// every N steps with save_total_limit -- runs on the mount and in a plain directory (ext4 under the
// test's temp dir). A case must pass on both; one that passes on ext4 and fails on rankfs is a
// rankfs bug. The script runs once per directory (all cases in one interpreter: importing torch and
// transformers costs seconds on 2 cores), and the test checks each case's line.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/realstack/datasets_fixture.h"

namespace rankfs {
namespace {

const char* const kCases[] = {"save_load_sharded", "cleanup_cache_files", "filelock",
                              "from_generator",    "torch_save_mmap",     "trainer_checkpoints"};

class LibraryIoTest : public DatasetsMountTest {
 protected:
  std::map<std::string, std::string> RunCases(const std::string& name, const std::string& dir,
                                              const std::string& data) {
    JobResult r =
        RunJob({python_, RealStackScripts() + "/library_io.py", "--dir", dir, "--data", data},
               JobEnv(), home_, std::chrono::seconds(600), tmp_.Join(name + ".log"));
    std::printf("%s: exit %d, %.1f s\n", name.c_str(), r.exit_code, r.seconds);
    EXPECT_EQ(r.exit_code, 0) << r.log;
    auto kv = KeyValues(r.log);
    EXPECT_EQ(kv["cases_done"], std::to_string(std::size(kCases))) << r.log;
    if (HasFailure()) std::printf("%s log:\n%s\n", name.c_str(), r.log.c_str());
    return kv;
  }
};

TEST_F(LibraryIoTest, EveryCaseThatWorksInAPlainDirectoryWorksOnTheMount) {
  const std::string data = Corpus(8);
  ASSERT_FALSE(data.empty());
  const std::string plain = tmp_.Join("plain");
  ASSERT_TRUE(std::filesystem::create_directories(plain));
  const auto on_plain = RunCases("plain", plain, data);

  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_TRUE(std::filesystem::create_directories(mnt_ + "/cases"));
  const auto on_mount = RunCases("rankfs", mnt_ + "/cases", data);
  for (const char* name : kCases) {
    const std::string key = std::string("case_") + name;
    ASSERT_EQ(on_plain.count(key), 1u) << name << " did not run in the plain directory";
    EXPECT_EQ(on_plain.at(key), "ok") << name << " fails in a plain directory: the case is wrong";
    EXPECT_EQ(on_mount.count(key) ? on_mount.at(key) : "missing", "ok") << name << " on rankfs";
  }

  // Everything the cases left is removable, and the store checks clean.
  std::error_code ec;
  std::filesystem::remove_all(mnt_ + "/cases", ec);
  EXPECT_FALSE(ec) << ec.message();
  ASSERT_NO_FATAL_FAILURE(Unmount());
  const CommandResult fsck = Fsck(store_);
  EXPECT_EQ(fsck.exit_code, 0) << fsck.output;
}

}  // namespace
}  // namespace rankfs
