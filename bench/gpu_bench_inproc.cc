// gpu_bench inproc: the staging pipeline with the daemon's read path linked in-process (no
// FUSE, no daemon): for a GPU machine that cannot mount (see gpu_bench.cc for the modes).
#include <fcntl.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "bench/gpu_bench.h"
#include "bench/gpu_bench_device.h"
#include "fs/fs_core.h"
#include "store/store.h"

namespace rankfs::bench {
namespace {

[[noreturn]] void Throw(const std::string& what) { throw std::runtime_error(what); }

// What a FUSE READ does (fs/fuse_ops.cc): ReadPieces' cached chunks (the kernel then copies
// them), holes as zeros; Read where the range has bytes not yet in the store. The read+copy
// baseline's read path, repeated here so that the in-process numbers measure the same calls.
size_t ReadInto(FsCore* core, Ino ino, uint64_t offset, size_t len, char* dst) {
  thread_local std::vector<FsCore::ReadPiece> pieces;
  pieces.clear();
  Result<std::optional<size_t>> direct = core->ReadPieces(ino, offset, len, &pieces);
  if (!direct.ok()) Throw("ReadPieces: " + direct.status().ToString());
  if (*direct) {
    size_t done = 0;
    for (const FsCore::ReadPiece& p : pieces) {
      if (p.data != nullptr) {
        std::memcpy(dst + done, p.data, p.len);
      } else {
        std::memset(dst + done, 0, p.len);
      }
      done += p.len;
    }
    pieces.clear();
    return **direct;
  }
  Result<size_t> n = core->Read(ino, offset, len, dst);
  if (!n.ok()) Throw("Read: " + n.status().ToString());
  return *n;
}

class InProcBench {
 public:
  InProcBench(const BenchOptions& o, BenchDevice* dev) : o_(o), dev_(dev) {}
  ~InProcBench() { Close(); }

  void Open() {
    StoreOptions so;
    auto s = Store::Open(o_.work + "/store", so);
    if (!s.ok()) Throw("store: " + s.status().ToString());
    store_ = std::move(s).value();
    auto fs = FsCore::Create(store_.get(), FsOptions());
    if (!fs.ok()) Throw("FsCore: " + fs.status().ToString());
    core_ = std::move(fs).value();
  }
  void Close() {
    if (core_ && !core_->Shutdown().ok()) std::fprintf(stderr, "gpu_bench: shutdown failed\n");
    core_.reset();
    if (store_ && !store_->Close().ok()) std::fprintf(stderr, "gpu_bench: close failed\n");
    store_.reset();
  }
  // Cold: the store reopened (empty chunk cache) and no page cache.
  void Cold() {
    Close();
    DropCaches();
    Open();
    auto a = core_->Lookup(kRootIno, "copy0.bin");
    if (!a.ok()) Throw("lookup: " + a.status().ToString());
    ino_ = a->ino;
  }

  void Write(const std::string& data) {
    Open();
    auto a = core_->Create(kRootIno, "copy0.bin", 0644, O_RDWR, Caller{});
    if (!a.ok()) Throw("create: " + a.status().ToString());
    for (uint64_t off = 0; off < data.size(); off += 1 << 20) {
      Status s = core_->Write(a->ino, off, std::string_view(data).substr(off, 1 << 20));
      if (!s.ok()) Throw("write: " + s.ToString());
    }
    if (!core_->Fsync(a->ino, false).ok() || !core_->Release(a->ino).ok()) Throw("fsync");
  }

  void Setup() {
    std::string error;
    ring_ = static_cast<char*>(dev_->AllocRing(o_.slots * o_.slot_bytes, o_.slots, &error));
    if (ring_ == nullptr) Throw("ring: " + error);
    dst_ = static_cast<char*>(dev_->Alloc(o_.dst_bytes, &error));
    pinned_ = static_cast<char*>(dev_->AllocPinned(o_.io_bytes, &error));
    if (dst_ == nullptr || pinned_ == nullptr) Throw(error);
    pageable_.assign(o_.io_bytes, '\0');
  }

  // The pipeline: o_.workers threads read slot-sized pieces in file order into the ring (piece
  // i in slot i % slots, once the copy of piece i - slots has completed); this thread queues
  // each filled slot's copy in order. `dev`/`dst` default to the bench's own.
  double Staged(BenchDevice* dev = nullptr, char* dst = nullptr, uint64_t dst_bytes = 0) {
    if (dev == nullptr) dev = dev_, dst = dst_, dst_bytes = o_.dst_bytes;
    const uint64_t sb = o_.slot_bytes, pieces = o_.size / sb;
    std::mutex mu;  // guards filled, issued, error
    std::condition_variable cv;
    std::vector<int64_t> filled(o_.slots, -1);  // the piece each slot holds, ready to copy
    uint64_t issued = 0;                        // pieces whose copy is queued
    std::string error;
    std::atomic<uint64_t> next{0};
    const auto t0 = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < o_.workers; ++w) {
      workers.emplace_back([&] {
        std::string e;
        try {
          for (uint64_t i = next++; i < pieces; i = next++) {
            const uint32_t slot = uint32_t(i % o_.slots);
            if (i >= o_.slots) {
              std::unique_lock<std::mutex> l(mu);
              cv.wait(l, [&] { return issued > i - o_.slots || !error.empty(); });
              if (!error.empty()) return;
              l.unlock();
              if (!dev->WaitSlot(slot, &e)) Throw(e);
            }
            // The daemon's read of a staging request (fs/gpu_server.cc).
            Result<size_t> n = core_->StageRead(ino_, i * sb, sb, ring_ + slot * sb);
            if (!n.ok()) Throw("StageRead: " + n.status().ToString());
            if (*n != sb) Throw("short read at piece " + std::to_string(i));
            std::lock_guard<std::mutex> l(mu);
            filled[slot] = int64_t(i);
            cv.notify_all();
          }
        } catch (const std::exception& ex) {
          std::lock_guard<std::mutex> l(mu);
          error = ex.what();
          cv.notify_all();
        }
      });
    }
    for (uint64_t i = 0; i < pieces; ++i) {
      const uint32_t slot = uint32_t(i % o_.slots);
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return filled[slot] == int64_t(i) || !error.empty(); });
        if (!error.empty()) break;
      }
      std::string e;
      if (!dev->CopyAsync(dst + (i * sb) % dst_bytes, ring_ + slot * sb, sb, &e) ||
          !dev->RecordSlot(slot, &e)) {
        std::lock_guard<std::mutex> l(mu);
        error = e;
        cv.notify_all();
        break;
      }
      std::lock_guard<std::mutex> l(mu);
      issued = i + 1;
      cv.notify_all();
    }
    std::string e;
    if (!dev->Synchronize(&e) && error.empty()) error = e;
    for (std::thread& t : workers) t.join();
    const double s = SecondsSince(t0);
    if (!error.empty()) Throw("staged: " + error);
    return MBps(o_.size, s);
  }

  // The read path into a host buffer (pageable or pinned), then a synchronous copy to the
  // destination: read() + cudaMemcpy.
  double ReadCopy(bool pinned) {
    char* buf = pinned ? pinned_ : pageable_.data();
    const auto t0 = Clock::now();
    for (uint64_t off = 0; off < o_.size; off += o_.io_bytes) {
      const size_t n = ReadInto(core_.get(), ino_, off, o_.io_bytes, buf);
      std::string e;
      if (n != o_.io_bytes || !dev_->CopySync(dst_ + off % o_.dst_bytes, buf, n, &e))
        Throw("read+copy: " + (e.empty() ? "short read" : e));
    }
    return MBps(o_.size, SecondsSince(t0));
  }

  // The copy engine alone: the same slot-sized copies from the pinned ring, nothing read.
  double CopyEngine() {
    std::string e;
    const auto t0 = Clock::now();
    for (uint64_t i = 0; i < o_.size / o_.slot_bytes; ++i) {
      const char* src = ring_ + (i % o_.slots) * o_.slot_bytes;
      if (!dev_->CopyAsync(dst_ + (i * o_.slot_bytes) % o_.dst_bytes, src, o_.slot_bytes, &e))
        Throw(e);
    }
    if (!dev_->Synchronize(&e)) Throw(e);
    return MBps(o_.size, SecondsSince(t0));
  }

 private:
  const BenchOptions& o_;
  BenchDevice* dev_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<FsCore> core_;
  Ino ino_ = 0;
  char* ring_ = nullptr;    // these three are owned by dev_
  char* dst_ = nullptr;
  char* pinned_ = nullptr;
  std::string pageable_;  // read()'s buffer in plain memory
};

}  // namespace

int RunInProcessMode(const BenchOptions& o, Report* report) {
  std::unique_ptr<BenchDevice> dev = MakeDevice(o.device, "gpu_bench inproc");
  if (!dev) return 77;
  report->device_name = dev->Name();
  report->device_kind = o.device;
  report->notes["geometry"] = std::to_string(o.slots) + " slots x " +
                              std::to_string(o.slot_bytes >> 20) + " MiB, " +
                              std::to_string(o.workers) + " workers; read+copy: reads of " +
                              std::to_string(o.io_bytes >> 20) + " MiB into a " +
                              std::to_string(o.dst_bytes >> 20) + " MiB destination";
  report->notes["read_path"] =
      "FsCore in-process, no FUSE: staged StageRead; read+copy ReadPieces, else Read";
  report->notes["bound_threads"] = std::to_string(o.workers) + " (as many as the workers)";
  std::fprintf(stderr, "gpu_bench: making %.0f MiB of data and its chunks\n",
               double(o.size) / (1 << 20));
  const Corpus corpus = MakeCorpus(o);
  std::unique_ptr<char[]> out(new char[o.size]);
  std::memset(out.get(), 0, o.size);
  try {
    std::filesystem::remove_all(o.work + "/store");
    std::filesystem::create_directories(o.work);
    InProcBench b(o, dev.get());
    b.Write(corpus.data);
    b.Setup();
    b.Cold();
    {  // The pipeline once into host memory, compared with the data (not timed).
      std::unique_ptr<BenchDevice> cpu = MakeCpuDevice();
      b.Staged(cpu.get(), out.get(), o.size);
      if (std::memcmp(out.get(), corpus.data.data(), o.size) != 0)
        Throw("the staged pipeline gave other bytes");
    }
    for (int r = 0; r < o.runs; ++r) {
      std::map<std::string, double> m;
      const char* order[] = {"staged", "readcopy_pageable", "readcopy_pinned"};
      for (int k = 0; k < 3; ++k) {
        const std::string name = order[(k + r) % 3];
        if (name == "readcopy_pinned" && !dev->IsGpu()) continue;  // the same as pageable
        auto once = [&] {
          return name == "staged" ? b.Staged() : b.ReadCopy(name == "readcopy_pinned");
        };
        b.Cold();
        m[name + "_cold_MBps"] = once();
        m[name + "_warm_MBps"] = once();
      }
      m["copy_engine_MBps"] = b.CopyEngine();
      m["bound_MBps"] = DecompressBound(corpus, o.workers, out.get());
      m["slower_bound_MBps"] = std::min(m["copy_engine_MBps"], m["bound_MBps"]);
      std::fprintf(stderr, "gpu_bench: run %d/%d [%s]:", r + 1, o.runs, dev->Name().c_str());
      for (const auto& [k, v] : m) std::fprintf(stderr, " %s=%.1f", k.c_str(), v);
      std::fprintf(stderr, "\n");
      report->runs.push_back(std::move(m));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench inproc: %s\n", e.what());
    return 1;
  }
  report->ratios = {
      {"staged warm / slower bound", "staged_warm_MBps", "slower_bound_MBps", 0.8},
      {"staged cold / slower bound", "staged_cold_MBps", "slower_bound_MBps", 0},
      {"staged / read+copy pageable, cold", "staged_cold_MBps", "readcopy_pageable_cold_MBps", 0},
      {"staged / read+copy pageable, warm", "staged_warm_MBps", "readcopy_pageable_warm_MBps", 0},
  };
  if (dev->IsGpu()) {
    report->ratios.push_back({"staged / read+copy pinned, cold", "staged_cold_MBps",
                              "readcopy_pinned_cold_MBps", 0});
    report->ratios.push_back({"staged / read+copy pinned, warm", "staged_warm_MBps",
                              "readcopy_pinned_warm_MBps", 0});
  }
  return 0;
}

}  // namespace rankfs::bench
