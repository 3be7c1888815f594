// Shared parts of the staging-path benchmark (bench/gpu_bench.cc, docs/benchmarks.md "GPU
// staging"): options, the data and its chunks, the decompression bound, and the report that
// each mode fills with one set of measurements per run.
// Thread-safety: DecompressBound runs its own threads; everything else is single-threaded.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rankfs::bench {

struct BenchOptions {
  std::string mode;          // "mount" or "inproc"
  std::string device = "cpu";  // "cpu" or "cuda"
  std::string rankfs;        // mount mode: the rankfs binary
  std::string work;          // scratch directory (store, mountpoint)
  uint64_t size = 1ull << 30;  // bytes per file
  int runs = 3;
  uint32_t slots = 8;
  uint64_t slot_bytes = 4ull << 20;
  uint64_t io_bytes = 16ull << 20;   // bytes per read call (a loader's batch)
  uint64_t dst_bytes = 64ull << 20;  // destination buffer; ranges land at offset % dst_bytes
  int readers = 4;
  int workers = 4;  // in-process mode: threads filling slots (the daemon has 1 per client)
  uint64_t seed = 21;
  // mount mode: "all", or "staged": only the staged passes (one reader cold and warm, the
  // readers cold), for profiling the daemon and its CPU-s per GiB before/after a change.
  std::string passes = "all";
};

// The file's bytes and the same bytes cut and compressed as the store does (FastCDC with the
// default parameters, zstd at the store's default level).
struct Corpus {
  std::string data;
  struct Frame {
    uint64_t offset;
    uint32_t raw_length;
    std::string frame;  // empty: stored raw (zstd did not shrink it)
  };
  std::vector<Frame> frames;
};
Corpus MakeCorpus(const BenchOptions& o);

// Decompresses every frame into out[offset, ...) with `threads` threads (contiguous shares);
// returns MB/s of raw bytes. `out` holds corpus.data.size() bytes.
double DecompressBound(const Corpus& corpus, int threads, char* out);

using Clock = std::chrono::steady_clock;
inline double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
inline double MBps(uint64_t bytes, double seconds) { return double(bytes) / seconds / 1e6; }

// Writes 3 to /proc/sys/vm/drop_caches after a sync; false (and a note) when not allowed.
bool DropCaches();

// One ratio with its target: name -> value / base (medians), checked against `target`.
struct RatioSpec {
  std::string name, value, base;
  double target;  // 0: reported, no target
};

struct Report {
  std::string mode, device_name, device_kind;
  std::vector<std::map<std::string, double>> runs;  // metric -> value, one map per run
  std::vector<RatioSpec> ratios;
  std::map<std::string, std::string> notes;  // geometry and anything a reader must know
  // Prints the medians and ratios for people (stdout), then the whole as one JSON line.
  void Print(const BenchOptions& o) const;
};

// The modes. Return 0, 77 (cannot run here: the reason is on stderr) or 1 (failed).
int RunMountMode(const BenchOptions& o, Report* report);
int RunInProcessMode(const BenchOptions& o, Report* report);

}  // namespace rankfs::bench
