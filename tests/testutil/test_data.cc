#include "tests/testutil/test_data.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <vector>

namespace rankfs {
namespace {

namespace fs = std::filesystem;

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) (multiply-shift; the bias is < bound / 2^64, irrelevant here).
  uint64_t Uniform(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * bound) >> 64);
  }

 private:
  uint64_t state_;
};

// Fisher-Yates with our own generator: std::shuffle's algorithm is implementation-defined,
// and the data must not change with the standard library.
template <typename T>
void Shuffle(std::vector<T>* v, SplitMix64* rng) {
  for (size_t i = v->size(); i > 1; --i) std::swap((*v)[i - 1], (*v)[rng->Uniform(i)]);
}

struct FilePools {
  std::vector<std::string> binaries;  // ELF executables and shared libraries
  std::vector<std::string> texts;     // headers, docs, Python sources
};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Adds the regular files (symlinks are skipped, so a library is not counted once per alias)
// under `dir` that `keep` accepts. Errors (missing or unreadable directories) just stop the walk
// of that directory.
template <typename Keep>
void Collect(const fs::path& dir, bool recursive, Keep keep, std::vector<std::string>* out) {
  std::error_code ec;
  auto visit = [&](const fs::directory_entry& e) {
    std::error_code sec;
    const auto st = e.symlink_status(sec);
    if (sec || !fs::is_regular_file(st)) return;
    const std::string path = e.path().string();
    if (keep(path)) out->push_back(path);
  };
  if (recursive) {
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) visit(*it);
  } else {
    fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) visit(*it);
  }
}

FilePools ScanFiles() {
  FilePools p;
  auto any = [](const std::string&) { return true; };
  Collect("/usr/bin", false, any, &p.binaries);
  Collect(
      "/usr/lib/x86_64-linux-gnu", false,
      [](const std::string& path) { return path.find(".so") != std::string::npos; }, &p.binaries);
  // Compressed docs (changelog.gz) would make the "text" share incompressible.
  Collect(
      "/usr/share/doc", true, [](const std::string& path) { return !EndsWith(path, ".gz"); },
      &p.texts);
  Collect("/usr/include", true, any, &p.texts);
  std::error_code ec;
  for (fs::directory_iterator it("/usr/lib", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (it->path().filename().string().rfind("python3", 0) == 0) {
      Collect(
          it->path(), true, [](const std::string& path) { return EndsWith(path, ".py"); },
          &p.texts);
    }
  }
  std::sort(p.binaries.begin(), p.binaries.end());
  std::sort(p.texts.begin(), p.texts.end());
  return p;
}

const FilePools& Pools() {
  static const FilePools pools = ScanFiles();
  return pools;
}

// Appends up to `max_bytes` of the file at `path`; returns the number appended (0 when it cannot
// be read).
size_t AppendFile(const std::string& path, size_t max_bytes, std::string* out) {
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return 0;
  }
  // Size the buffer by the file, not by max_bytes: most files are small, and zero-filling
  // max_bytes for each of them would dominate the run time.
  max_bytes = std::min(max_bytes, static_cast<size_t>(st.st_size));
  const size_t start = out->size();
  out->resize(start + max_bytes);
  size_t got = 0;
  while (got < max_bytes) {
    const ssize_t r = read(fd, out->data() + start + got, max_bytes - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  close(fd);
  out->resize(start + got);
  return got;
}

// A Zipf-like token distribution (exponent 1.1 over 50,000 ids), the shape of subword frequencies
// in natural-language corpora. Ranks map to ids through a fixed permutation so that frequent
// tokens are not simply the small ids.
class TokenSampler {
 public:
  static constexpr uint32_t kVocab = 50000;

  TokenSampler() : cdf_(kVocab), ids_(kVocab) {
    double total = 0;
    std::vector<double> w(kVocab);
    for (uint32_t r = 0; r < kVocab; ++r) total += w[r] = 1.0 / std::pow(r + 1.0, 1.1);
    double acc = 0;
    for (uint32_t r = 0; r < kVocab; ++r) {
      acc += w[r];
      cdf_[r] = static_cast<uint32_t>(std::min(acc / total * 4294967296.0, 4294967295.0));
    }
    cdf_.back() = 0xffffffffu;
    // guide_[b]: the first rank whose cdf reaches bucket b's lowest value, so a draw only
    // searches the few ranks of its bucket instead of the whole 200 KB table.
    for (uint32_t b = 0, r = 0; b < kBuckets; ++b) {
      while (cdf_[r] < (b << 16)) ++r;
      guide_[b] = r;
    }
    guide_[kBuckets] = kVocab - 1;
    for (uint32_t r = 0; r < kVocab; ++r) ids_[r] = r;
    SplitMix64 rng(0x746f6b656e697a65ull);  // fixed: the "tokenizer" is the same for every seed
    Shuffle(&ids_, &rng);
  }

  uint32_t Draw(SplitMix64* rng) const {
    const uint32_t u = static_cast<uint32_t>(rng->Next() >> 32);
    const uint32_t b = u >> 16;
    const auto first = cdf_.begin() + guide_[b];
    const auto last = cdf_.begin() + guide_[b + 1] + 1;
    return ids_[std::lower_bound(first, last, u) - cdf_.begin()];
  }

 private:
  static constexpr uint32_t kBuckets = 1 << 16;
  std::vector<uint32_t> cdf_;  // cdf_[r]: P(rank <= r) scaled to 2^32
  std::vector<uint32_t> ids_;  // rank -> token id
  std::vector<uint32_t> guide_ = std::vector<uint32_t>(kBuckets + 1);
};

const TokenSampler& Tokens() {
  static const TokenSampler sampler;
  return sampler;
}

// Hands out a pool's files in a seeded order, reshuffling when it runs out.
class PoolCursor {
 public:
  PoolCursor(const std::vector<std::string>* pool, SplitMix64* rng) : pool_(pool), rng_(rng) {}

  bool empty() const { return pool_->empty(); }
  const std::string& Next() {
    if (next_ == order_.size()) {
      order_.resize(pool_->size());
      for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
      Shuffle(&order_, rng_);
      next_ = 0;
    }
    return (*pool_)[order_[next_++]];
  }

 private:
  const std::vector<std::string>* pool_;
  SplitMix64* rng_;
  std::vector<size_t> order_;
  size_t next_ = 0;
};

}  // namespace

void AppendTokenIds(std::string* out, size_t n, uint64_t seed) {
  SplitMix64 rng(seed);
  const TokenSampler& tokens = Tokens();
  const size_t start = out->size();
  out->resize(start + n);
  char* p = out->data() + start;
  for (size_t i = 0; i < n; i += 4) {
    const uint32_t id = tokens.Draw(&rng);
    const uint8_t le[4] = {uint8_t(id), uint8_t(id >> 8), uint8_t(id >> 16), uint8_t(id >> 24)};
    std::memcpy(p + i, le, std::min<size_t>(4, n - i));
  }
}

std::string MakeRealData(size_t n, uint64_t seed) {
  // The buffer is a run of segments of 64 KiB to 2 MiB. By bytes, 40% of the segments are
  // binaries, 30% text files and 30% token ids. A file segment is whole files in a row, the last
  // one cut at the segment's end (so one big library takes at most one segment).
  constexpr size_t kMinSegment = 64 << 10;
  constexpr size_t kMaxSegment = 2 << 20;
  const FilePools& pools = Pools();
  SplitMix64 rng(seed ^ 0x7265616c64617461ull);
  PoolCursor binaries(&pools.binaries, &rng);
  PoolCursor texts(&pools.texts, &rng);
  std::string out;
  out.reserve(n);
  // Bounds the work when the files of a pool cannot be read (then token ids fill the buffer).
  size_t failures = 0;
  while (out.size() < n) {
    const size_t segment =
        std::min(n - out.size(), kMinSegment + rng.Uniform(kMaxSegment - kMinSegment + 1));
    const uint64_t pick = rng.Uniform(10);
    PoolCursor* pool = pick < 4 ? &binaries : pick < 7 ? &texts : nullptr;
    if (pool != nullptr && !pool->empty() && failures < 10000) {
      const size_t end = out.size() + segment;
      while (out.size() < end && failures < 10000) {
        if (AppendFile(pool->Next(), end - out.size(), &out) == 0) ++failures;
      }
      continue;
    }
    AppendTokenIds(&out, segment, rng.Next());
  }
  return out;
}

std::string MakeRandomData(size_t n, uint64_t seed) {
  SplitMix64 rng(seed);
  std::string out(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = rng.Next();
    std::memcpy(out.data() + i, &v, 8);
  }
  if (i < n) {
    const uint64_t v = rng.Next();
    std::memcpy(out.data() + i, &v, n - i);
  }
  return out;
}

}  // namespace rankfs
