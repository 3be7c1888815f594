// Load and soak: 16 concurrent clients (threads of this process doing real syscalls on the mount)
// run mixed operations for RANKFS_SOAK_SECONDS (default 30; 15 under sanitizers; docs/testing.md
// has the long run): create, append, overwrite, read, mmap read, MAP_SHARED mmap write, rename,
// unlink, readdir. Each client works in its own directory and checks every read against its
// in-memory model of its files, and at the end re-reads all of them.
//
// Meanwhile the daemon is sampled every second (/proc/PID/status VmRSS and VmHWM, /proc/PID/fd):
//   - no client sees an error or a mismatch;
//   - RSS and peak RSS stay under 1 GiB (the write buffer, chunk cache and RocksDB caps together
//     are far below it);
//   - RSS is flat: the second half's highest sample is at most 10% + 64 MiB above the first
//     half's (a leak proportional to the work done would show here);
//   - once the clients have closed everything, the daemon holds no more descriptors outside the
//     store directory than before the clients started, and none to a deleted file.
//
// Needs root and /dev/fuse (skips otherwise).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/mount_fixture.h"
#include "tests/testutil/mount_test.h"
#include "tests/testutil/test_env.h"
#include "tests/testutil/test_data.h"
#include "tests/testutil/wait_until.h"

namespace rankfs {
namespace {

constexpr int kClients = 16;
constexpr size_t kMaxFilesPerClient = 24;
constexpr size_t kMaxFileBytes = 1 << 20;

// VmRSS / VmHWM of `pid` in bytes (0 if unreadable).
uint64_t ProcStatusBytes(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) << 10;
  }
  return 0;
}

// The targets of the daemon's open descriptors.
std::vector<std::string> OpenFds(pid_t pid) {
  std::vector<std::string> targets;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return targets;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char buf[4096];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), buf, sizeof buf - 1);
    targets.push_back(n > 0 ? std::string(buf, size_t(n)) : std::string("?"));
  }
  closedir(d);
  return targets;
}

// One client: its own directory, its model of what every file there holds.
class Client {
 public:
  Client(int id, std::string dir, const std::string* pool)
      : id_(id), dir_(std::move(dir)), pool_(pool), rng_(uint64_t(id) * 7919 + 1) {}

  // Runs random operations until `stop`; returns at the first error or mismatch.
  void Run(const std::atomic<bool>& stop) {
    if (mkdir(dir_.c_str(), 0755) != 0) return Fail("mkdir " + dir_);
    while (!stop.load() && error_.empty()) {
      const int op = int(rng_() % 100);
      if (model_.empty() || (op < 12 && model_.size() < kMaxFilesPerClient)) {
        Create();
      } else if (op < 24) {
        Append();
      } else if (op < 34) {
        Overwrite();
      } else if (op < 54) {
        Read();
      } else if (op < 62) {
        MmapRead();
      } else if (op < 70) {
        MmapWrite();
      } else if (op < 78) {
        Rename();
      } else if (op < 88) {
        Unlink();
      } else {
        ReadDir();
      }
      ++ops_;
    }
  }

  // Re-reads every file and the directory listing against the model.
  void VerifyAll() {
    ReadDir();
    for (const auto& [name, content] : model_) {
      if (!error_.empty()) return;
      CheckContent(name, ReadWhole(name));
    }
  }

  const std::string& error() const { return error_; }
  uint64_t ops() const { return ops_; }
  uint64_t bytes_checked() const { return bytes_checked_; }

 private:
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Fail(const std::string& what) {
    if (error_.empty()) {
      error_ = "client " + std::to_string(id_) + ": " + what + ": " + std::strerror(errno);
    }
  }
  void Mismatch(const std::string& what) {
    if (error_.empty()) error_ = "client " + std::to_string(id_) + ": " + what;
  }
  std::string Pick() {
    auto it = model_.begin();
    std::advance(it, rng_() % model_.size());
    return it->first;
  }
  std::string NewBytes(size_t n) {
    if (rng_() % 4 == 0) return MakeRandomData(n, rng_());
    return pool_->substr(rng_() % (pool_->size() - n), n);
  }
  bool WriteAt(int fd, const std::string& data, uint64_t off) {
    for (size_t done = 0; done < data.size();) {
      ssize_t n = pwrite(fd, data.data() + done, data.size() - done, off_t(off + done));
      if (n <= 0) return false;
      done += size_t(n);
    }
    return true;
  }
  std::string ReadWhole(const std::string& name) {
    std::string out;
    int fd = open(Path(name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      Fail("open " + name);
      return out;
    }
    char buf[1 << 16];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0) Fail("read " + name);
      if (n <= 0) break;
      out.append(buf, size_t(n));
    }
    if (close(fd) != 0) Fail("close " + name);
    return out;
  }
  void CheckContent(const std::string& name, const std::string& got) {
    const std::string& want = model_[name];
    bytes_checked_ += got.size();
    if (got.size() != want.size()) {
      Mismatch(name + " reads " + std::to_string(got.size()) + " bytes, expected " +
               std::to_string(want.size()));
    } else if (got != want) {
      size_t i = 0;
      while (got[i] == want[i]) ++i;
      Mismatch(name + " differs from the model at byte " + std::to_string(i));
    }
  }

  void Create() {
    const std::string name = "f" + std::to_string(next_name_++);
    const std::string data = NewBytes(rng_() % 5 == 0 ? rng_() % 4096 : rng_() % (256 << 10));
    int fd = open(Path(name).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return Fail("create " + name);
    if (!WriteAt(fd, data, 0)) Fail("write " + name);
    if (close(fd) != 0) Fail("close " + name);
    model_[name] = data;
  }
  void Append() {
    const std::string name = Pick();
    std::string& m = model_[name];
    if (m.size() > kMaxFileBytes) return Overwrite();
    const std::string data = NewBytes(1 + rng_() % (64 << 10));
    int fd = open(Path(name).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return Fail("open for append " + name);
    if (write(fd, data.data(), data.size()) != ssize_t(data.size())) Fail("append " + name);
    if (rng_() % 8 == 0 && fsync(fd) != 0) Fail("fsync " + name);
    if (close(fd) != 0) Fail("close " + name);
    m += data;
  }
  void Overwrite() {
    const std::string name = Pick();
    std::string& m = model_[name];
    const size_t off = m.empty() ? 0 : rng_() % m.size();
    const std::string data = NewBytes(1 + rng_() % (48 << 10));
    int fd = open(Path(name).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Fail("open for overwrite " + name);
    if (!WriteAt(fd, data, off)) Fail("overwrite " + name);
    if (close(fd) != 0) Fail("close " + name);
    if (m.size() < off + data.size()) m.resize(off + data.size());
    m.replace(off, data.size(), data);
  }
  void Read() {
    const std::string name = Pick();
    if (rng_() % 2 == 0) return CheckContent(name, ReadWhole(name));
    // A random range with pread.
    const std::string& m = model_[name];
    const size_t off = m.empty() ? 0 : rng_() % m.size(), len = 1 + rng_() % (128 << 10);
    int fd = open(Path(name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Fail("open " + name);
    std::string buf(len, '\0');
    ssize_t n = pread(fd, buf.data(), len, off_t(off));
    if (n < 0) Fail("pread " + name);
    close(fd);
    if (n >= 0 && buf.compare(0, size_t(n), m, off, std::min(len, m.size() - off)) != 0) {
      Mismatch(name + " pread at " + std::to_string(off) + " differs from the model");
    }
  }
  void MmapRead() {
    const std::string name = Pick();
    const std::string& m = model_[name];
    if (m.empty()) return;
    int fd = open(Path(name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Fail("open " + name);
    void* p = mmap(nullptr, m.size(), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return Fail("mmap " + name);
    bytes_checked_ += m.size();
    if (std::memcmp(p, m.data(), m.size()) != 0) Mismatch(name + " mmap read differs");
    munmap(p, m.size());
  }
  void MmapWrite() {
    const std::string name = Pick();
    std::string& m = model_[name];
    if (m.empty()) return;
    const size_t off = rng_() % m.size();
    const std::string data = NewBytes(std::min<size_t>(1 + rng_() % (32 << 10), m.size() - off));
    int fd = open(Path(name).c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return Fail("open rw " + name);
    void* p = mmap(nullptr, m.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      Fail("mmap shared rw " + name);
      close(fd);
      return;
    }
    std::memcpy(static_cast<char*>(p) + off, data.data(), data.size());
    if (rng_() % 2 == 0 && msync(p, m.size(), MS_SYNC) != 0) Fail("msync " + name);
    munmap(p, m.size());
    if (close(fd) != 0) Fail("close " + name);
    m.replace(off, data.size(), data);
  }
  void Rename() {
    const std::string from = Pick();
    // Half the time over an existing file of this client.
    const std::string to =
        rng_() % 2 == 0 ? Pick() : "r" + std::to_string(next_name_++);
    if (to == from) return;
    if (rename(Path(from).c_str(), Path(to).c_str()) != 0) return Fail("rename " + from);
    model_[to] = std::move(model_[from]);
    model_.erase(from);
  }
  void Unlink() {
    const std::string name = Pick();
    if (unlink(Path(name).c_str()) != 0) return Fail("unlink " + name);
    model_.erase(name);
  }
  void ReadDir() {
    std::set<std::string> names;
    DIR* d = opendir(dir_.c_str());
    if (d == nullptr) return Fail("opendir " + dir_);
    while (dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        names.insert(e->d_name);
      }
    }
    closedir(d);
    std::set<std::string> want;
    for (const auto& [name, content] : model_) want.insert(name);
    if (names != want) {
      Mismatch("readdir lists " + std::to_string(names.size()) + " names, the model has " +
               std::to_string(want.size()));
    }
  }

  const int id_;
  const std::string dir_;
  const std::string* const pool_;
  std::mt19937_64 rng_;
  std::map<std::string, std::string> model_;  // name -> content
  uint64_t next_name_ = 0;
  uint64_t ops_ = 0;
  uint64_t bytes_checked_ = 0;
  std::string error_;
};

int SoakSeconds() { return int(EnvNumber("RANKFS_SOAK_SECONDS", kSanitized ? 15 : 30)); }

class SoakTest : public MountTest {
 protected:
  SoakTest() : MountTest(std::chrono::seconds(SoakSeconds() + 180)) {}
};

TEST_F(SoakTest, SixteenClientsMixedOpsNoErrorsFlatMemoryNoFdGrowth) {
  const int seconds = SoakSeconds();
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string& store = store_;
  const std::string& mnt = mnt_;
  const pid_t pid = fs_->pid();
  const std::string pool = MakeRealData(16 << 20, 5);

  auto outside_store = [&](const std::vector<std::string>& fds) {
    size_t n = 0;
    for (const std::string& t : fds) n += t.rfind(store, 0) != 0;
    return n;
  };
  const std::vector<std::string> fds_before = OpenFds(pid);
  std::printf("soak: %d clients, %d s; daemon pid %d, %zu fds at start\n", kClients, seconds,
              int(pid), fds_before.size());

  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(i, mnt + "/c" + std::to_string(i), &pool));
    threads.emplace_back([c = clients.back().get(), &stop] { c->Run(stop); });
  }
  std::vector<uint64_t> rss;
  uint64_t max_fds = 0;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(seconds)) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    rss.push_back(ProcStatusBytes(pid, "VmRSS"));
    max_fds = std::max<uint64_t>(max_fds, OpenFds(pid).size());
    bool failed = false;
    for (const auto& c : clients) failed |= !c->error().empty();
    if (failed) break;
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  uint64_t ops = 0, checked = 0;
  for (const auto& c : clients) {
    if (c->error().empty()) c->VerifyAll();
    EXPECT_EQ(c->error(), "");
    ops += c->ops();
    checked += c->bytes_checked();
  }
  const uint64_t hwm = ProcStatusBytes(pid, "VmHWM");
  std::printf("%llu operations, %.1f MiB read back and compared; RSS samples (MiB):",
              (unsigned long long)ops, double(checked) / (1 << 20));
  for (uint64_t r : rss) std::printf(" %llu", (unsigned long long)(r >> 20));
  std::printf("\npeak RSS %llu MiB, at most %llu fds during the run\n",
              (unsigned long long)(hwm >> 20), (unsigned long long)max_fds);
  EXPECT_GT(ops, uint64_t(kClients) * 10);

  // Memory: under the cap, and flat.
  constexpr uint64_t kCap = 1ull << 30;
  ASSERT_GE(rss.size(), 4u);
  const size_t half = rss.size() / 2;
  const uint64_t first = *std::max_element(rss.begin(), rss.begin() + half);
  const uint64_t second = *std::max_element(rss.begin() + half, rss.end());
  std::printf("RSS max: first half %llu MiB, second half %llu MiB\n",
              (unsigned long long)(first >> 20), (unsigned long long)(second >> 20));
  if (!kSanitized) {  // ASan's shadow memory and quarantine do not obey the daemon's caps
    EXPECT_LT(hwm, kCap);
    EXPECT_LE(second, first + first / 10 + (64 << 20)) << "daemon RSS keeps growing";
  }

  // Descriptors: back to the baseline once everything is closed (releases reach the daemon
  // asynchronously, so poll for a while).
  std::vector<std::string> fds_after;
  WaitUntil([&] {
    fds_after = OpenFds(pid);
    return outside_store(fds_after) <= outside_store(fds_before);
  });
  std::printf("fds: %zu at start (%zu outside the store), %zu at the end (%zu outside)\n",
              fds_before.size(), outside_store(fds_before), fds_after.size(),
              outside_store(fds_after));
  EXPECT_LE(outside_store(fds_after), outside_store(fds_before));
  for (const std::string& t : fds_after) {
    EXPECT_EQ(t.find("(deleted)"), std::string::npos) << "the daemon holds a deleted file: " << t;
  }
  // The store's own files are bounded by what exists in it (packs, RocksDB files).
  EXPECT_LE(fds_after.size(), fds_before.size() + 64);

  Status s = fs_->Unmount();
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << fs_->DaemonLog();
}

}  // namespace
}  // namespace rankfs
