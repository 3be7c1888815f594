// fsbench: the workload driver of the filesystem benchmark (bench/fsbench.py runs it against
// ext4, libfuse's passthrough_ll and rankfs side by side). Each subcommand does one workload
// with plain syscalls on the path it is given and prints one JSON object on stdout with what it
// measured, so the orchestrator never times Python code.
//
//   fsbench gen FILE BYTES SEED        real data (tests/testutil/test_data.h), written with 1 MiB
//                                      writes; the input of every write workload
//   fsbench write SRC DST BS [--fsync] copies SRC (mapped, pre-faulted) to DST with BS-byte
//                                      writes, then fsync()s DST if asked
//   fsbench read FILE BS               sequential read with BS-byte reads
//   fsbench mmaprand FILE OPS SEED     OPS random 4 KiB-aligned 4 KiB reads through a read-only
//                                      MAP_SHARED mapping of FILE
//   fsbench meta DIR FILES             create (1 KiB each) + stat + unlink FILES files in DIR
//   fsbench floor STREAM...            the store's own work for a job that writes these
//                                      streams (each FILE, or FILE+FILE+... concatenated, one
//                                      file's bytes): cut with the store's default chunker, its
//                                      unique chunks SHA-256-hashed and zstd-compressed at the
//                                      store's default level, in memory on this one thread;
//                                      prints the thread CPU-seconds of the hashing and of the
//                                      compression (bench/fsbench.py adds fuse_null's CPU)
//   fsbench files create DIR FILES     many files in one directory, one phase per call: create
//   fsbench files list DIR FILES       FILES empty files (mkdir DIR first); `ls -l`'s work:
//   fsbench files rm DIR FILES         readdir + lstat of each; `rm -rf`'s: readdir, unlinkat
//                                      of each, rmdir DIR. list and rm check the count.
//
// Exit status 0 on success, 1 with a message on stderr on any failed syscall.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "store/chunker.h"
#include "store/compressor.h"
#include "store/store.h"
#include "tests/testutil/test_data.h"

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fsbench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

void WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      Die("write " + path);
    }
    p += w;
    n -= size_t(w);
  }
}

int Gen(const std::string& path, uint64_t bytes, uint64_t seed) {
  const std::string data = rankfs::MakeRealData(bytes, seed);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("open " + path);
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    WriteAll(fd, data.data() + off, std::min<size_t>(1 << 20, data.size() - off), path);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) Die("fsync/close " + path);
  std::printf("{\"bytes\": %zu}\n", data.size());
  return 0;
}

int Write(const std::string& src, const std::string& dst, size_t bs, bool do_fsync) {
  int in = ::open(src.c_str(), O_RDONLY);
  if (in < 0) Die("open " + src);
  struct stat st {};
  if (::fstat(in, &st) != 0) Die("stat " + src);
  const size_t size = size_t(st.st_size);
  auto* map = static_cast<const char*>(::mmap(nullptr, size, PROT_READ, MAP_SHARED, in, 0));
  if (map == MAP_FAILED) Die("mmap " + src);
  // Touch every page first: the source's cost must not be part of the timed write.
  volatile uint64_t sink = 0;
  for (size_t off = 0; off < size; off += 4096) sink = sink + uint8_t(map[off]);
  const auto t0 = Clock::now();
  int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) Die("open " + dst);
  for (size_t off = 0; off < size; off += bs) {
    WriteAll(out, map + off, std::min(bs, size - off), dst);
  }
  if (do_fsync && ::fsync(out) != 0) Die("fsync " + dst);
  if (::close(out) != 0) Die("close " + dst);
  const double secs = SecondsSince(t0);
  ::munmap(const_cast<char*>(map), size);
  ::close(in);
  std::printf("{\"bytes\": %zu, \"seconds\": %.6f}\n", size, secs);
  return 0;
}

int Read(const std::string& path, size_t bs) {
  std::vector<char> buf(bs);
  const auto t0 = Clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) Die("open " + path);
  uint64_t total = 0, sum = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf.data(), bs);
    if (r < 0) {
      if (errno == EINTR) continue;
      Die("read " + path);
    }
    if (r == 0) break;
    total += uint64_t(r);
    sum += uint8_t(buf[size_t(r) - 1]);
  }
  ::close(fd);
  const double secs = SecondsSince(t0);
  std::printf("{\"bytes\": %lu, \"seconds\": %.6f, \"checksum\": %lu}\n", total, secs, sum);
  return 0;
}

int MmapRandom(const std::string& path, uint64_t ops, uint64_t seed) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) Die("open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) Die("stat " + path);
  const uint64_t pages = uint64_t(st.st_size) / 4096;
  if (pages == 0) {
    errno = EINVAL;
    Die("file too small " + path);
  }
  auto* map = static_cast<const char*>(
      ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_SHARED, fd, 0));
  if (map == MAP_FAILED) Die("mmap " + path);
  // Random access: no readahead beyond the page asked for, as a training loader's sampler sees.
  ::madvise(const_cast<char*>(map), size_t(st.st_size), MADV_RANDOM);
  char page[4096];
  uint64_t x = seed | 1, sum = 0;
  const auto t0 = Clock::now();
  for (uint64_t i = 0; i < ops; ++i) {
    x ^= x << 13;  // xorshift64: cheap and good enough to spread the offsets
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(page, map + (x % pages) * 4096, sizeof page);
    sum += uint8_t(page[x % sizeof page]);
  }
  const double secs = SecondsSince(t0);
  ::munmap(const_cast<char*>(map), size_t(st.st_size));
  ::close(fd);
  std::printf("{\"ops\": %lu, \"seconds\": %.6f, \"checksum\": %lu}\n", ops, secs, sum);
  return 0;
}

int Meta(const std::string& dir, uint64_t files) {
  std::string body(1024, 'm');
  auto name = [&](uint64_t i) { return dir + "/f" + std::to_string(i); };
  const auto t0 = Clock::now();
  for (uint64_t i = 0; i < files; ++i) {
    const std::string p = name(i);
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) Die("create " + p);
    body[0] = char(i);
    WriteAll(fd, body.data(), body.size(), p);
    if (::close(fd) != 0) Die("close " + p);
  }
  const double create_s = SecondsSince(t0);
  const auto t1 = Clock::now();
  for (uint64_t i = 0; i < files; ++i) {
    struct stat st {};
    if (::stat(name(i).c_str(), &st) != 0) Die("stat " + name(i));
    if (st.st_size != off_t(body.size())) {
      errno = EIO;
      Die("wrong size " + name(i));
    }
  }
  const double stat_s = SecondsSince(t1);
  const auto t2 = Clock::now();
  for (uint64_t i = 0; i < files; ++i) {
    if (::unlink(name(i).c_str()) != 0) Die("unlink " + name(i));
  }
  const double unlink_s = SecondsSince(t2);
  std::printf(
      "{\"files\": %lu, \"seconds\": %.6f, \"create_seconds\": %.6f, \"stat_seconds\": %.6f, "
      "\"unlink_seconds\": %.6f}\n",
      files, create_s + stat_s + unlink_s, create_s, stat_s, unlink_s);
  return 0;
}

double ThreadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

std::string ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) Die("open " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) Die("stat " + path);
  std::string data(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t r = ::read(fd, data.data() + got, data.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) Die("read " + path);
    got += size_t(r);
  }
  ::close(fd);
  return data;
}

// The floor's store part: untimed, every stream is cut and its chunks deduplicated across the
// job as the store would (global scope); timed, each unique chunk is hashed once and
// compressed once, the work no store can skip for a byte it keeps.
int Floor(const std::vector<std::string>& streams) {
  const rankfs::StoreOptions defaults;
  const rankfs::FastCdc cdc(defaults.chunker);
  std::unordered_set<rankfs::ChunkHash, rankfs::ChunkHashHasher> seen;
  std::vector<std::string> unique;
  uint64_t total = 0, unique_bytes = 0;
  for (const std::string& spec : streams) {
    std::string data;
    for (size_t from = 0; from <= spec.size();) {
      size_t plus = spec.find('+', from);
      if (plus == std::string::npos) plus = spec.size();
      data += ReadFile(spec.substr(from, plus - from));
      from = plus + 1;
    }
    total += data.size();
    size_t off = 0;
    for (size_t len : cdc.Split(reinterpret_cast<const uint8_t*>(data.data()), data.size())) {
      std::string_view piece(data.data() + off, len);
      off += len;
      if (!seen.insert(rankfs::ChunkHash::Of(piece)).second) continue;
      unique.emplace_back(piece);
      unique_bytes += len;
    }
  }
  const double t0 = ThreadCpuSeconds();
  uint8_t sink = 0;
  for (const std::string& c : unique) sink ^= rankfs::ChunkHash::Of(c).bytes[0];
  const double t1 = ThreadCpuSeconds();
  std::string frame;
  uint64_t compressed = 0;
  for (const std::string& c : unique) {
    bool shrunk = false;
    rankfs::Status st = rankfs::CompressChunk(c, defaults.compression_level, &frame, &shrunk);
    if (!st.ok()) {
      std::fprintf(stderr, "fsbench: compressing: %s\n", st.ToString().c_str());
      return 1;
    }
    compressed += shrunk ? frame.size() : c.size();
  }
  const double t2 = ThreadCpuSeconds();
  std::printf(
      "{\"bytes\": %lu, \"unique_chunks\": %zu, \"unique_bytes\": %lu, "
      "\"compressed_bytes\": %lu, \"sha256_cpu_s\": %.6f, \"zstd_cpu_s\": %.6f, "
      "\"sink\": %u}\n",
      total, unique.size(), unique_bytes, compressed, t1 - t0, t2 - t1, unsigned(sink));
  return 0;
}

// Calls fn(name) for each of the directory's names other than "." and "..", as readdir
// returns them.
template <typename Fn>
void ForEachName(DIR* d, const std::string& dir, Fn fn) {
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0) Die("readdir " + dir);
      return;
    }
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    fn(e->d_name);
  }
}

void CheckCount(size_t got, uint64_t want, const std::string& dir) {
  if (got == want) return;
  errno = EIO;
  Die(dir + " holds " + std::to_string(got) + " files, not " + std::to_string(want));
}

// One phase of the many-files workload (see the header); prints the files and seconds.
int Files(const std::string& phase, const std::string& dir, uint64_t files) {
  const auto t0 = Clock::now();
  if (phase == "create") {
    if (::mkdir(dir.c_str(), 0755) != 0) Die("mkdir " + dir);
    for (uint64_t i = 0; i < files; ++i) {
      const std::string p = dir + "/f" + std::to_string(i);
      int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
      if (fd < 0) Die("create " + p);
      if (::close(fd) != 0) Die("close " + p);
    }
  } else if (phase == "list" || phase == "rm") {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) Die("opendir " + dir);
    const int dfd = ::dirfd(d);
    if (phase == "list") {  // as ls -l: stat each name as it comes
      size_t n = 0;
      ForEachName(d, dir, [&](const char* name) {
        struct stat st {};
        if (::fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
          Die("lstat " + dir + "/" + name);
        }
        if (!S_ISREG(st.st_mode) || st.st_size != 0) {
          errno = EIO;
          Die("unexpected attributes of " + dir + "/" + name);
        }
        ++n;
      });
      CheckCount(n, files, dir);
    } else {  // as rm -rf: the names first, then unlink each, then the directory
      std::vector<std::string> names;
      ForEachName(d, dir, [&](const char* name) { names.emplace_back(name); });
      CheckCount(names.size(), files, dir);
      for (const std::string& n : names) {
        if (::unlinkat(dfd, n.c_str(), 0) != 0) Die("unlink " + dir + "/" + n);
      }
    }
    ::closedir(d);
    if (phase == "rm" && ::rmdir(dir.c_str()) != 0) Die("rmdir " + dir);
  } else {
    errno = EINVAL;
    Die("unknown files phase '" + phase + "'");
  }
  std::printf("{\"files\": %lu, \"seconds\": %.6f}\n", files, SecondsSince(t0));
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: fsbench gen FILE BYTES SEED | write SRC DST BS [--fsync] | read FILE BS |\n"
               "       mmaprand FILE OPS SEED | meta DIR FILES | floor STREAM... |\n"
               "       files create|list|rm DIR FILES\n");
  return 2;
}

uint64_t Num(const char* s) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') {
    std::fprintf(stderr, "fsbench: not a number: '%s'\n", s);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string cmd = argv[1];
  if (cmd == "gen" && argc == 5) return Gen(argv[2], Num(argv[3]), Num(argv[4]));
  if (cmd == "write" && (argc == 5 || (argc == 6 && std::string(argv[5]) == "--fsync"))) {
    const uint64_t bs = Num(argv[4]);
    if (bs == 0) return Usage();
    return Write(argv[2], argv[3], bs, argc == 6);
  }
  if (cmd == "read" && argc == 4 && Num(argv[3]) > 0) return Read(argv[2], Num(argv[3]));
  if (cmd == "mmaprand" && argc == 5) return MmapRandom(argv[2], Num(argv[3]), Num(argv[4]));
  if (cmd == "meta" && argc == 4) return Meta(argv[2], Num(argv[3]));
  if (cmd == "floor" && argc >= 3) return Floor(std::vector<std::string>(argv + 2, argv + argc));
  if (cmd == "files" && argc == 5) return Files(argv[2], argv[3], Num(argv[4]));
  return Usage();
}
