#include "mount-helper/cli_util.h"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rankfs {

std::string HumanBytes(uint64_t v) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double d = double(v);
  int u = 0;
  while (d >= 1024 && u < 5) {
    d /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", d, units[u]);
  return buf;
}

void ProgressBar::Update(std::string_view phase, uint64_t done, uint64_t total) {
  auto now = std::chrono::steady_clock::now();
  if (shown_ && phase == phase_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  phase_ = phase;
  std::string line = "\r" + std::string(phase) + " ";
  if (total > 0) {
    const int width = 30;
    int filled = int(double(std::min(done, total)) / double(total) * width);
    line += "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] " +
            std::to_string(int(double(std::min(done, total)) * 100 / double(total))) + "%";
  } else {
    line += std::to_string(done);
  }
  os_ << line << "\033[K" << std::flush;
  shown_ = true;
}

OfflineProgress ProgressBar::Callback() {
  return
      [this](std::string_view phase, uint64_t done, uint64_t total) { Update(phase, done, total); };
}

void ProgressBar::Clear() {
  if (shown_) os_ << "\r\033[K" << std::flush;
  shown_ = false;
}

bool BecomeStoreOwner(const std::string& dir, std::string_view command, const CliIo& io) {
  struct stat st;
  if (geteuid() != 0 || stat(dir.c_str(), &st) != 0 || st.st_uid == 0) return true;
  if (setgroups(0, nullptr) != 0 || setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) {
    *io.err << "rankfs " << command << ": cannot switch to the store's owner (uid " << st.st_uid
            << "): " << std::strerror(errno) << "\n";
    return false;
  }
  *io.err << "rankfs " << command << ": running as the store's owner (uid " << st.st_uid << ", gid "
          << st.st_gid << ")\n";
  return true;
}

bool ParseSeconds(const std::string& text, std::chrono::milliseconds* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v) || v < 0 || v > 1e9) return false;
  *out = std::chrono::milliseconds(int64_t(v * 1000));
  return true;
}

int OfflineUsageError(const OfflineCommand& command, const CliIo& io, std::string_view why) {
  *io.err << "rankfs " << command.name << ": " << why << "\n" << command.usage;
  return command.exit_usage;
}

}  // namespace rankfs
