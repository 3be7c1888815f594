// `rankfs stats MOUNTPOINT [--json | --prometheus]`: reads MOUNTPOINT/.rankfs-stats (key=value
// lines, FsCore::StatsText) and prints it for people, as one JSON object, or in the Prometheus
// text exposition format (for node_exporter's textfile collector or a scrape wrapper).
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "mount-helper/cli.h"

namespace rankfs {
namespace {

constexpr char kStatsUsage[] = "usage: rankfs stats MOUNTPOINT [--json | --prometheus]\n";
constexpr char kStatsFile[] = ".rankfs-stats";

enum class Format { kText, kJson, kPrometheus };

// What the Prometheus output says about each key of the stats file. Keys rankfs adds later
// still come out, as gauges with a generic help text.
struct KeyInfo {
  std::string_view key;
  std::string_view help;
  bool counter;  // monotonic since the mount started: exported as rankfs_<key>_total
};
constexpr KeyInfo kKeys[] = {
    {"logical_bytes", "Sum of the sizes of all files, as applications see them.", false},
    {"files", "Number of regular files.", false},
    {"unique_bytes", "Distinct chunk content, uncompressed.", false},
    {"stored_bytes", "Distinct chunk content as stored (compressed, with record headers).", false},
    {"physical_bytes", "Disk space allocated to the store's pack files.", false},
    {"dirty_bytes", "Written data buffered in memory, not yet in the store.", false},
    {"dirty_peak_bytes", "Highest dirty_bytes since the mount started (the cap is write_buffer plus 16 MiB).", false},
    {"write_buffer_waits", "Writes that waited for room in the write buffer.", true},
    {"chunks", "Distinct chunks in the store.", false},
    {"dedup_ratio", "logical_bytes / unique_bytes.", false},
    {"compression_ratio", "unique_bytes / stored_bytes.", false},
    {"space_saving_ratio", "logical_bytes / physical_bytes.", false},
    {"dedup_hits", "Chunk writes that found the chunk already stored.", true},
    {"reclaim_backlog_bytes", "Released chunk bytes not yet punched out of packs.", false},
    {"read_errors", "Chunk reads that found damaged bytes.", true},
    {"index_reads", "Chunk records read back from the metadata store.", true},
    {"cache_hits", "Chunk cache hits.", true},
    {"cache_misses", "Chunk cache misses.", true},
    {"cache_shared_loads", "Chunk cache misses that waited for another reader's load of the same chunk.", true},
    {"page_fill_bytes", "Bytes of chunks put into the kernel's page cache after small reads.", true},
    {"page_fills_started", "Page-cache fills begun (page_fill=on).", true},
    {"page_fills_done", "Page-cache fills ended, whether they stored anything or not.", true},
    {"getxattr_requests", "GETXATTR requests answered (the kernel asks once per write without KILLPRIV_V2).", true},
    {"lookup_requests", "LOOKUP requests answered (a name not in the kernel's cache, or expired there).", true},
    {"stream_hashed_bytes", "Bytes of file streams cut by FastCDC and hashed.", true},
    {"stream_predicted_bytes", "Bytes of file streams taken as guessed chunks, confirmed by comparing bytes, without hashing.", true},
    {"flush_batches", "Batches of chunks the flush pipeline stored and committed.", true},
    {"commit_rounds", "Group commits of the flush pipeline (one pack sync each).", true},
    {"chunk_cache_bytes", "Decompressed chunk data held by the chunk cache.", false},
    {"chunk_buffer_bytes", "All chunk data in memory (cache, buffered and in-flight writes), each buffer once.", false},
    {"meta_memtable_bytes", "RocksDB memtables, active and awaiting flush.", false},
    {"meta_block_cache_bytes", "RocksDB block cache in use (data, index and filter blocks).", false},
    {"meta_table_reader_bytes", "RocksDB table readers held outside the block cache.", false},
    {"heap_used_bytes", "Daemon heap in use, as malloc counts it.", false},
    {"heap_free_bytes", "Daemon heap free but kept by malloc (fragmentation, not yet trimmed).", false},
    {"heap_trims", "Times free heap was given back to the OS (malloc_trim).", true},
    {"idle_heap_trims", "Heap trims made once the mount went quiet after writing.", true},
    {"gpu_reads", "GPU staging requests served.", true},
    {"gpu_bytes", "Bytes read into GPU staging slots.", true},
    {"gpu_fallback_reads", "GPU staging requests read with buffered bytes laid over the store's.", true},
    {"gpu_chunk_reads", "Chunks read from the store for GPU staging.", true},
    {"gpu_preads", "Store read calls for GPU staging (adjacent records share one).", true},
    {"gpu_direct_chunks", "Chunks decompressed straight into a GPU staging slot.", true},
    {"gpu_cache_hits", "Chunks of GPU staging requests found in the chunk cache.", true},
    {"gpu_repeat_uses", "Repeated uses of a chunk within one GPU staging request (copied).", true},
};

const KeyInfo* FindKey(std::string_view key) {
  for (const KeyInfo& k : kKeys) {
    if (k.key == key) return &k;
  }
  return nullptr;
}

using Stats = std::vector<std::pair<std::string, std::string>>;

// Whether `v` is a plain decimal number (what StatsText writes): digits, at most one dot.
bool IsNumber(std::string_view v) {
  if (v.empty() || v.front() == '.' || v.back() == '.') return false;
  bool dot = false;
  for (char c : v) {
    if (c == '.' && !dot) {
      dot = true;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

Stats ParseStats(const std::string& text) {
  Stats stats;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    size_t eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    stats.emplace_back(line.substr(0, eq), line.substr(eq + 1));
  }
  return stats;
}

std::string HumanBytes(const std::string& value) {
  double v = std::strtod(value.c_str(), nullptr);
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%s B", value.c_str());
  } else {
    std::snprintf(buf, sizeof buf, "%.2f %s (%s bytes)", v, units[u], value.c_str());
  }
  return buf;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (uint8_t(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(uint8_t(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A label value in the Prometheus text format: backslash, double quote and newline escaped.
std::string PromLabel(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// A metric name from a key: [a-zA-Z0-9_] only.
std::string PromName(std::string_view key) {
  std::string out = "rankfs_";
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out += ok ? c : '_';
  }
  return out;
}

void PrintText(std::ostream& os, const std::string& mnt, const Stats& stats) {
  os << "rankfs statistics of " << mnt << "\n";
  size_t column = 23;  // values line up after the longest key and at least one space
  for (const auto& kv : stats) column = std::max(column, kv.first.size() + 1);
  for (const auto& [k, v] : stats) {
    std::string shown = k.ends_with("_bytes") && IsNumber(v) ? HumanBytes(v) : v;
    os << "  " << k << ":" << std::string(column - k.size(), ' ') << shown << "\n";
  }
}

void PrintJson(std::ostream& os, const std::string& mnt, const Stats& stats) {
  os << "{" << JsonString("mountpoint") << ": " << JsonString(mnt);
  for (const auto& [k, v] : stats) {
    os << ", " << JsonString(k) << ": " << (IsNumber(v) ? v : JsonString(v));
  }
  os << "}\n";
}

void PrintPrometheus(std::ostream& os, const std::string& mnt, const Stats& stats) {
  const std::string label = "{mountpoint=\"" + PromLabel(mnt) + "\"}";
  for (const auto& [k, v] : stats) {
    if (!IsNumber(v)) continue;  // nothing a sample can carry
    const KeyInfo* info = FindKey(k);
    const bool counter = info != nullptr && info->counter;
    const std::string name = PromName(k) + (counter ? "_total" : "");
    os << "# HELP " << name << " "
       << (info ? std::string(info->help) : "rankfs statistic " + k + ".") << "\n"
       << "# TYPE " << name << " " << (counter ? "counter" : "gauge") << "\n"
       << name << label << " " << v << "\n";
  }
}

// Reads the stats file of the mount at `mnt`; on failure, *error says why in words.
bool ReadStatsFile(const std::string& mnt, std::string* text, std::string* error) {
  struct stat st;
  if (stat(mnt.c_str(), &st) != 0) {
    int err = errno;
    *error = err == ENOTCONN ? "'" + mnt + "' is a FUSE mount whose daemon is gone; unmount it " +
                                   "with: fusermount3 -u " + mnt
                             : "cannot access '" + mnt + "': " + std::strerror(err);
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    *error = "'" + mnt + "' is not a directory";
    return false;
  }
  const std::string path = mnt + "/" + kStatsFile;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      *error = "'" + mnt + "' is not a rankfs mount (no " + kStatsFile + " at its root)";
    } else if (err == EACCES || err == EPERM) {
      *error = "cannot read " + path + ": " + std::strerror(err) +
               " (a mount without allow_other answers only the user who mounted it)";
    } else {
      *error = "cannot open " + path + ": " + std::strerror(err);
    }
    return false;
  }
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "reading " + path + ": " + std::strerror(errno);
      close(fd);
      return false;
    }
    if (n == 0) break;
    text->append(buf, size_t(n));
  }
  close(fd);
  return true;
}

}  // namespace

int StatsCommand(const std::vector<std::string>& args, const CliIo& io) {
  Format format = Format::kText;
  std::vector<std::string> positional;
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      *io.out
          << kStatsUsage << "\nPrints the statistics of a mounted rankfs (MOUNTPOINT/" << kStatsFile
          << "):\n"
             "  (default)     for people: sizes in KiB/MiB/GiB\n"
             "  --json        one JSON object: {\"mountpoint\": ..., \"logical_bytes\": N, ...}\n"
             "  --prometheus  Prometheus text format, metrics named rankfs_*, labelled with\n"
             "                the mountpoint (e.g. for node_exporter's textfile collector)\n";
      return 0;
    } else if (a == "--json") {
      format = Format::kJson;
    } else if (a == "--prometheus") {
      format = Format::kPrometheus;
    } else if (a.size() > 1 && a[0] == '-') {
      *io.err << "rankfs stats: unknown flag '" << a << "'\n" << kStatsUsage;
      return 2;
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 1) {
    *io.err << "rankfs stats: needs one MOUNTPOINT\n" << kStatsUsage;
    return 2;
  }
  char canon[PATH_MAX];
  const std::string mnt = realpath(positional[0].c_str(), canon) ? canon : positional[0];
  std::string text, error;
  if (!ReadStatsFile(mnt, &text, &error)) {
    *io.err << "rankfs stats: " << error << "\n";
    return 1;
  }
  Stats stats = ParseStats(text);
  if (stats.empty()) {
    *io.err << "rankfs stats: " << mnt << "/" << kStatsFile << " holds no key=value lines\n";
    return 1;
  }
  switch (format) {
    case Format::kText:
      PrintText(*io.out, mnt, stats);
      break;
    case Format::kJson:
      PrintJson(*io.out, mnt, stats);
      break;
    case Format::kPrometheus:
      PrintPrometheus(*io.out, mnt, stats);
      break;
  }
  return 0;
}

}  // namespace rankfs
