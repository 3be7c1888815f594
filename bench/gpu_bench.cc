// gpu_bench: the staging path's benchmark (issue #21 items 5 and 6; docs/benchmarks.md, "GPU
// staging"). Two modes, each printing medians of --runs interleaved runs, its ratios with their
// targets, and one JSON line at the end (bench/gpujob.py reads it):
//
//   gpu_bench mount  --rankfs BIN --work DIR [--device cpu|cuda] [geometry]
//     Mounts rankfs for real (root, /dev/fuse). Staged reads through librankfs_gpu (the CPU
//     backend with no delay; --device cuda: the library's CUDA backend) against read() through
//     the mount plus a copy to the destination, cold (daemon restarted, caches dropped) and warm;
//     four readers of four identical copies against one; and the bound: zstd decompression of
//     the same chunks from memory on one thread, as many as the daemon serves a client with.
//   gpu_bench inproc --work DIR [--device cpu|cuda] [--workers N] [geometry]
//     No FUSE: opens an FsCore over a fresh store in DIR and runs the daemon's read path
//     in-process: N workers fill the slots of a pinned ring (cudaHostRegister), a copier queues
//     each filled slot with cudaMemcpyAsync (bench/gpu_bench_device.h). Against read()+copy from
//     pageable and from pinned memory, and the bounds: the copy engine alone and the
//     decompression of the same chunks by N threads.
//
// Geometry: --size-mib (per file), --runs, --slots, --slot-mib, --io-mib (bytes per read call),
// --dst-mib (destination: a range lands at offset % dst), --readers, --seed. Mount mode's
// --passes staged runs only the staged passes (no read()+copy, no bound).
// Exit status: 0 done, 77 cannot run here (why on stderr), 1 failed, 2 bad arguments.
#include "bench/gpu_bench.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "store/chunker.h"
#include "store/compressor.h"
#include "store/store.h"
#include "tests/testutil/test_data.h"

namespace rankfs::bench {

Corpus MakeCorpus(const BenchOptions& o) {
  Corpus c;
  c.data = MakeRealData(o.size, o.seed);
  FastCdc cdc(ChunkerParams{});
  const int level = StoreOptions{}.compression_level;
  uint64_t off = 0;
  for (size_t len : cdc.Split(reinterpret_cast<const uint8_t*>(c.data.data()), c.data.size())) {
    Corpus::Frame f{off, uint32_t(len), {}};
    bool shrunk = false;
    Status s = CompressChunk(std::string_view(c.data).substr(off, len), level, &f.frame, &shrunk);
    if (!s.ok() || !shrunk) f.frame.clear();
    c.frames.push_back(std::move(f));
    off += len;
  }
  return c;
}

double DecompressBound(const Corpus& corpus, int threads, char* out) {
  const size_t n = corpus.frames.size();
  std::vector<std::thread> pool;
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (size_t i = n * t / threads; i < n * (t + 1) / threads; ++i) {
        const Corpus::Frame& f = corpus.frames[i];
        if (f.frame.empty()) {
          std::memcpy(out + f.offset, corpus.data.data() + f.offset, f.raw_length);
        } else if (!DecompressChunk(f.frame, f.raw_length, out + f.offset).ok()) {
          std::fprintf(stderr, "gpu_bench: a frame of the corpus does not decompress\n");
          std::abort();
        }
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return MBps(corpus.data.size(), SecondsSince(t0));
}

bool DropCaches() {
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  bool ok = fd >= 0 && write(fd, "3\n", 2) == 2;
  if (fd >= 0) close(fd);
  if (!ok) std::fprintf(stderr, "gpu_bench: cannot drop caches (%s)\n", std::strerror(errno));
  return ok;
}

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (uint8_t(ch) < 0x20) {
      out += ' ';
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

}  // namespace

void Report::Print(const BenchOptions& o) const {
  std::map<std::string, double> med;
  for (const auto& [key, _] : runs.at(0)) {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(r.at(key));
    med[key] = Median(v);
  }
  std::printf("\ngpu_bench %s on %s: medians of %zu runs, %.0f MiB per file\n", mode.c_str(),
              device_name.c_str(), runs.size(), double(o.size) / (1 << 20));
  for (const auto& [k, v] : notes) std::printf("  %-22s %s\n", k.c_str(), v.c_str());
  for (const auto& [k, v] : med) std::printf("  %-26s %10.1f  [%s, %s]\n", k.c_str(), v,
                                             device_name.c_str(), mode.c_str());
  std::string json = "{\"mode\": " + JsonString(mode) + ", \"device\": " + JsonString(device_name) +
                     ", \"device_kind\": " + JsonString(device_kind) +
                     ", \"size_bytes\": " + std::to_string(o.size) + ", \"notes\": {";
  const char* sep = "";
  for (const auto& [k, v] : notes) {
    json += sep + JsonString(k) + ": " + JsonString(v);
    sep = ", ";
  }
  json += "}, \"runs\": [";
  sep = "";
  for (const auto& r : runs) {
    json += sep;
    json += "{";
    const char* s2 = "";
    for (const auto& [k, v] : r) {
      json += s2 + JsonString(k) + ": " + std::to_string(v);
      s2 = ", ";
    }
    json += "}";
    sep = ", ";
  }
  json += "], \"medians\": {";
  sep = "";
  for (const auto& [k, v] : med) {
    json += sep + JsonString(k) + ": " + std::to_string(v);
    sep = ", ";
  }
  json += "}, \"ratios\": [";
  sep = "";
  std::printf("ratios (medians) [%s, %s]:\n", device_name.c_str(), mode.c_str());
  for (const RatioSpec& r : ratios) {
    if (med.count(r.value) == 0 || med.count(r.base) == 0 || med.at(r.base) <= 0) {
      std::printf("  %-34s    -     (no %s or %s)\n", r.name.c_str(), r.value.c_str(),
                  r.base.c_str());
      continue;
    }
    const double value = med.at(r.value) / med.at(r.base);
    std::string verdict = "no target";
    if (r.target > 0) {
      verdict = std::string(value >= r.target ? "met" : "MISSED") + " (target >= " +
                std::to_string(r.target).substr(0, 4) + ")";
    }
    std::printf("  %-34s %7.3f  %s\n", r.name.c_str(), value, verdict.c_str());
    json += sep + std::string("{\"name\": ") + JsonString(r.name) +
            ", \"value\": " + std::to_string(value) + ", \"target\": " + std::to_string(r.target) +
            ", \"verdict\": " + JsonString(verdict) + "}";
    sep = ", ";
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
}

}  // namespace rankfs::bench

namespace {

int Usage(const char* why) {
  std::fprintf(stderr,
               "gpu_bench: %s\nusage: gpu_bench mount --rankfs BIN --work DIR [options]\n"
               "       gpu_bench inproc --work DIR [options]\n"
               "options: --device cpu|cuda --size-mib N --runs N --slots N --slot-mib N "
               "--io-mib N --dst-mib N --readers N --workers N --seed N --passes all|staged\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using rankfs::bench::BenchOptions;
  if (argc < 2) return Usage("no mode");
  BenchOptions o;
  o.mode = argv[1];
  if (o.mode != "mount" && o.mode != "inproc") return Usage("mode must be mount or inproc");
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Usage(("no value for " + flag).c_str());
    const std::string value = argv[++i];
    char* end = nullptr;
    const uint64_t n = std::strtoull(value.c_str(), &end, 10);
    const bool number = !value.empty() && *end == '\0';
    const uint64_t mib = 1ull << 20;
    if (flag == "--device") {
      o.device = value;
    } else if (flag == "--rankfs") {
      o.rankfs = value;
    } else if (flag == "--work") {
      o.work = value;
    } else if (flag == "--passes") {
      if (value != "all" && value != "staged") return Usage("--passes must be all or staged");
      o.passes = value;
    } else if (!number || n == 0) {
      return Usage((flag + " needs a positive number").c_str());
    } else if (flag == "--size-mib") {
      o.size = n * mib;
    } else if (flag == "--runs") {
      o.runs = int(n);
    } else if (flag == "--slots") {
      o.slots = uint32_t(n);
    } else if (flag == "--slot-mib") {
      o.slot_bytes = n * mib;
    } else if (flag == "--io-mib") {
      o.io_bytes = n * mib;
    } else if (flag == "--dst-mib") {
      o.dst_bytes = n * mib;
    } else if (flag == "--readers") {
      o.readers = int(n);
    } else if (flag == "--workers") {
      o.workers = int(n);
    } else if (flag == "--seed") {
      o.seed = n;
    } else {
      return Usage(("unknown option " + flag).c_str());
    }
  }
  if (o.device != "cpu" && o.device != "cuda") return Usage("--device must be cpu or cuda");
  if (o.work.empty()) return Usage("--work is required");
  if (o.mode == "mount" && o.rankfs.empty()) return Usage("mount mode needs --rankfs");
  if (o.size % o.io_bytes != 0 || o.size % o.slot_bytes != 0 || o.dst_bytes < o.io_bytes ||
      o.dst_bytes % o.io_bytes != 0 || o.dst_bytes % o.slot_bytes != 0) {
    return Usage("--size-mib and --dst-mib must be multiples of --io-mib and --slot-mib, and "
                 "--dst-mib >= --io-mib");
  }
  rankfs::bench::Report report;
  report.mode = o.mode;
  const int rc = o.mode == "mount" ? rankfs::bench::RunMountMode(o, &report)
                                   : rankfs::bench::RunInProcessMode(o, &report);
  if (rc != 0) return rc;
  report.Print(o);
  return 0;
}
