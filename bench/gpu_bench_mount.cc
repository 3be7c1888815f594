// gpu_bench mount: the staging path through a real mount (see gpu_bench.cc for the modes).
// Errors inside this program are exceptions caught in RunMountMode, so that the mount's
// owner (MountedFs) always unmounts on the way out.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "bench/gpu_bench.h"
#include "bench/gpu_bench_device.h"
#include "fs/gpu_server.h"
#include "rankfs_gpu.h"
#include "tests/testutil/mount_fixture.h"

namespace rankfs::bench {
namespace {

[[noreturn]] void Throw(const std::string& what) { throw std::runtime_error(what); }

std::string ErrnoText() { return std::strerror(errno); }

// user + system CPU-seconds of a process so far (/proc/PID/stat fields 14 and 15).
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(text.substr(paren + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i >= 14) ticks += std::strtod(field.c_str(), nullptr);
  }
  return ticks / double(sysconf(_SC_CLK_TCK));
}

// user + system CPU-seconds of this process (all its threads) so far.
double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

class MountBench {
 public:
  MountBench(const BenchOptions& o, const Corpus& corpus, BenchDevice* dev)
      : o_(o), corpus_(corpus), dev_(dev), store_(o.work + "/store"), mnt_(o.work + "/mnt") {}

  void Mount() {
    fs_.reset();
    auto m = MountedFs::Start(o_.rankfs, store_, mnt_);
    if (!m.ok()) Throw("mount: " + m.status().ToString());
    fs_ = std::move(m).value();
  }
  // Cold: a fresh daemon (empty chunk cache) and no page cache.
  void Cold() {
    if (fs_ && !fs_->Unmount().ok()) Throw("unmount failed: " + fs_->DaemonLog());
    Mount();
    DropCaches();
  }
  void Unmount() {
    if (fs_ && !fs_->Unmount().ok()) Throw("unmount failed: " + fs_->DaemonLog());
    fs_.reset();
  }
  pid_t daemon_pid() const { return fs_->pid(); }

  std::string Path(int copy) const { return mnt_ + "/copy" + std::to_string(copy) + ".bin"; }

  // The copies the readers read: the same bytes, written as ranks write them (1 MiB writes).
  void WriteCopies() {
    for (int i = 0; i < o_.readers; ++i) {
      int fd = open(Path(i).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) Throw("create " + Path(i) + ": " + ErrnoText());
      for (uint64_t off = 0; off < o_.size; off += 1 << 20) {
        const size_t n = std::min<uint64_t>(1 << 20, o_.size - off);
        if (pwrite(fd, corpus_.data.data() + off, n, off_t(off)) != ssize_t(n))
          Throw("write " + Path(i) + ": " + ErrnoText());
      }
      if (fsync(fd) != 0 || close(fd) != 0) Throw("fsync " + Path(i) + ": " + ErrnoText());
    }
  }

  // read() through the mount into a pageable (or pinned) buffer, then a copy to the
  // destination: read() + cudaMemcpy on a GPU.
  double ReadCopy(bool pinned, char* check = nullptr) {
    char* const buf = pinned ? pinned_ : pageable_.data();
    int fd = open(Path(0).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Throw("open " + Path(0) + ": " + ErrnoText());
    const auto t0 = Clock::now();
    for (uint64_t off = 0; off < o_.size; off += o_.io_bytes) {
      size_t got = 0;
      while (got < o_.io_bytes) {
        ssize_t n = pread(fd, buf + got, o_.io_bytes - got, off_t(off + got));
        if (n <= 0) Throw("read " + Path(0) + " came short: " + ErrnoText());
        got += size_t(n);
      }
      std::string error;
      char* dst = check != nullptr ? check + off : dst_.at(0) + off % o_.dst_bytes;
      if (check != nullptr) {
        std::memcpy(dst, buf, got);
      } else if (!dev_->CopySync(dst, buf, got, &error)) {
        Throw(error);
      }
    }
    const double s = SecondsSince(t0);
    close(fd);
    return MBps(o_.size, s);
  }

  // `readers` threads, each with its own context and file (copy i), read the whole file through
  // the staging ring; returns the aggregate MB/s from the moment all were set up.
  double Staged(int readers, char* check = nullptr) {
    std::latch ready(readers + 1), go(1);
    std::vector<std::string> errors(readers);
    std::vector<std::thread> threads;
    for (int i = 0; i < readers; ++i) {
      threads.emplace_back([&, i] {
        errors[i] = StagedReader(i, check, &ready, &go);
      });
    }
    ready.arrive_and_wait();
    const auto t0 = Clock::now();
    go.count_down();
    for (std::thread& t : threads) t.join();
    const double s = SecondsSince(t0);
    for (const std::string& e : errors) {
      if (!e.empty()) Throw(e);
    }
    return MBps(uint64_t(readers) * o_.size, s);
  }

  void AllocBuffers() {
    std::string error;
    pageable_.assign(o_.io_bytes, '\0');
    pinned_ = static_cast<char*>(dev_->AllocPinned(o_.io_bytes, &error));
    if (pinned_ == nullptr) Throw("buffers: " + error);
    for (int i = 0; i < o_.readers; ++i) {
      char* p = static_cast<char*>(dev_->Alloc(o_.dst_bytes, &error));
      if (p == nullptr) Throw("destination: " + error);
      dst_.push_back(p);
    }
  }

 private:
  // One reader: returns "" or what failed. The daemon's time and the copies are timed; the
  // connection, the ring and the registration (once per file and job) are not.
  std::string StagedReader(int copy, char* check, std::latch* ready, std::latch* go) {
    rankfs_gpu_options opt{o_.slots, o_.slot_bytes,
                           check == nullptr && dev_->IsGpu() ? RANKFS_GPU_BACKEND_CUDA
                                                             : RANKFS_GPU_BACKEND_CPU,
                           0};
    rankfs_gpu_ctx* ctx = nullptr;
    rankfs_gpu_stream* stream = nullptr;
    int fd = open(Path(copy).c_str(), O_RDONLY | O_CLOEXEC);
    std::string error;
    int rc = fd < 0 ? -errno : rankfs_gpu_open(mnt_.c_str(), &opt, &ctx);
    if (rc == 0) rc = rankfs_gpu_stream_create(ctx, &stream);
    const int file = rc == 0 ? rankfs_gpu_register(ctx, fd) : rc;
    if (file < 0) error = "staging setup: " + std::string(std::strerror(-file)) + " " +
                          rankfs_gpu_last_error();
    ready->arrive_and_wait();
    go->wait();
    for (uint64_t off = 0; error.empty() && off < o_.size; off += o_.io_bytes) {
      char* dst = check != nullptr ? check + off : dst_.at(copy) + off % o_.dst_bytes;
      const int64_t n = rankfs_gpu_read(ctx, file, off, o_.io_bytes, dst, stream);
      if (n != int64_t(o_.io_bytes)) {
        error = "rankfs_gpu_read at " + std::to_string(off) + ": " + std::to_string(n) + " " +
                rankfs_gpu_last_error();
      }
    }
    if (stream != nullptr && rankfs_gpu_stream_synchronize(stream) != 0 && error.empty())
      error = std::string("synchronize: ") + rankfs_gpu_last_error();
    if (stream != nullptr) rankfs_gpu_stream_destroy(stream);
    if (ctx != nullptr) rankfs_gpu_close(ctx);
    if (fd >= 0) close(fd);
    return error;
  }

  const BenchOptions& o_;
  const Corpus& corpus_;
  BenchDevice* dev_;
  const std::string store_, mnt_;
  std::unique_ptr<MountedFs> fs_;
  std::vector<char*> dst_;  // one per reader, on the device
  std::string pageable_;     // read()'s buffer in plain memory
  char* pinned_ = nullptr;  // owned by dev_
};

}  // namespace

int RunMountMode(const BenchOptions& o, Report* report) {
  if (!MountedFs::FuseAvailable()) {
    std::fprintf(stderr, "gpu_bench mount: needs root and /dev/fuse (try inproc)\n");
    return 77;
  }
  std::unique_ptr<BenchDevice> dev = MakeDevice(o.device, "gpu_bench mount");
  if (!dev) return 77;
  report->device_name = dev->Name();
  report->device_kind = o.device;
  report->notes["geometry"] = std::to_string(o.slots) + " slots x " +
                              std::to_string(o.slot_bytes >> 20) + " MiB, reads of " +
                              std::to_string(o.io_bytes >> 20) + " MiB into a " +
                              std::to_string(o.dst_bytes >> 20) + " MiB destination";
  report->notes["backend"] = dev->IsGpu() ? "librankfs_gpu CUDA" : "librankfs_gpu CPU, no delay";
  // The daemon stages one client's reads on this many threads (fs/gpu_server.h): the bound
  // decompresses with as many. The one-thread bound is kept beside it for comparison.
  const int bound_threads = int(GpuServer::StageThreads(o.slots));
  report->notes["bound_threads"] =
      std::to_string(bound_threads) + " (the daemon's staging threads for one client)";
  std::fprintf(stderr, "gpu_bench: making %.0f MiB of data and its chunks\n",
               double(o.size) / (1 << 20));
  const Corpus corpus = MakeCorpus(o);
  std::unique_ptr<char[]> out(new char[o.size]);
  std::memset(out.get(), 0, o.size);
  try {
    std::filesystem::remove_all(o.work + "/store");
    std::filesystem::create_directories(o.work + "/store");
    std::filesystem::create_directories(o.work + "/mnt");
    MountBench b(o, corpus, dev.get());
    b.AllocBuffers();
    b.Cold();
    b.WriteCopies();
    // Both paths once, compared byte for byte with the data (not timed).
    b.Cold();
    for (int pass = 0; pass < 2; ++pass) {
      std::memset(out.get(), 0, o.size);
      if (pass == 0) b.ReadCopy(false, out.get()); else b.Staged(1, out.get());
      if (std::memcmp(out.get(), corpus.data.data(), o.size) != 0)
        Throw(pass == 0 ? "read() gave other bytes" : "the staged read gave other bytes");
    }
    for (int r = 0; r < o.runs; ++r) {
      std::map<std::string, double> m;
      const bool only_staged = o.passes == "staged";
      for (int k = 0; k < 2; ++k) {  // the order alternates between runs
        const bool staged = (k + r) % 2 == 0;
        if (only_staged && !staged) continue;
        const std::string name = staged ? "staged" : "readcopy";
        b.Cold();
        double c0 = ProcessCpuSeconds(b.daemon_pid()), s0 = SelfCpuSeconds();
        m[name + "_cold_MBps"] = staged ? b.Staged(1) : b.ReadCopy(false);
        const double daemon = ProcessCpuSeconds(b.daemon_pid()) - c0;
        m[name + "_cold_daemon_cpu_s"] = daemon;
        m[name + "_cold_cpu_s"] = daemon + SelfCpuSeconds() - s0;
        c0 = ProcessCpuSeconds(b.daemon_pid());
        m[name + "_warm_MBps"] = staged ? b.Staged(1) : b.ReadCopy(false);
        m[name + "_warm_daemon_cpu_s"] = ProcessCpuSeconds(b.daemon_pid()) - c0;
      }
      if (only_staged) {
        b.Cold();
        const double c0 = ProcessCpuSeconds(b.daemon_pid());
        m["staged_readers_cold_MBps"] = b.Staged(o.readers);
        m["staged_readers_cold_daemon_cpu_s"] = ProcessCpuSeconds(b.daemon_pid()) - c0;
        std::fprintf(stderr, "gpu_bench: run %d/%d:", r + 1, o.runs);
        for (const auto& [k, v] : m) std::fprintf(stderr, " %s=%.2f", k.c_str(), v);
        std::fprintf(stderr, "\n");
        report->runs.push_back(std::move(m));
        continue;
      }
      if (dev->IsGpu()) {  // read() + cudaMemcpy from pinned memory (on the CPU: the same)
        b.Cold();
        m["readcopy_pinned_cold_MBps"] = b.ReadCopy(true);
        m["readcopy_pinned_warm_MBps"] = b.ReadCopy(true);
      }
      b.Cold();
      m["staged_readers_cold_MBps"] = b.Staged(o.readers);
      // Whichever runs first is slower (the 1-thread bound measured after the 2-thread one
      // gave 1017 MB/s, measured first 741), so each is measured twice, in the order 1, N,
      // N, 1, and the faster of its two kept.
      const double one_a = DecompressBound(corpus, 1, out.get());
      const double n_a = DecompressBound(corpus, bound_threads, out.get());
      const double n_b = DecompressBound(corpus, bound_threads, out.get());
      const double one_b = DecompressBound(corpus, 1, out.get());
      m["bound_MBps"] = std::max(n_a, n_b);
      m["bound_1thread_MBps"] = std::max(one_a, one_b);
      std::fprintf(stderr, "gpu_bench: run %d/%d:", r + 1, o.runs);
      for (const auto& [k, v] : m) std::fprintf(stderr, " %s=%.1f", k.c_str(), v);
      std::fprintf(stderr, "\n");
      report->runs.push_back(std::move(m));
    }
    b.Unmount();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench mount: %s\n", e.what());
    return 1;
  }
  const std::string n = std::to_string(o.readers);
  report->ratios = {
      {"staged / read+copy, cold", "staged_cold_MBps", "readcopy_cold_MBps", 2.0},
      {"staged / read+copy, warm", "staged_warm_MBps", "readcopy_warm_MBps", 0},
      {"staged warm / decompression bound", "staged_warm_MBps", "bound_MBps", 0.8},
      {"staged cold / decompression bound", "staged_cold_MBps", "bound_MBps", 0},
      {n + " readers / 1 reader, cold", "staged_readers_cold_MBps", "staged_cold_MBps", 2.5},
      {"read+copy CPU-s / staged CPU-s, cold", "readcopy_cold_cpu_s", "staged_cold_cpu_s", 0},
  };
  if (dev->IsGpu()) {
    report->ratios.push_back({"staged / read+pinned copy, cold", "staged_cold_MBps",
                              "readcopy_pinned_cold_MBps", 0});
    report->ratios.push_back({"staged / read+pinned copy, warm", "staged_warm_MBps",
                              "readcopy_pinned_warm_MBps", 0});
  }
  return 0;
}

}  // namespace rankfs::bench
