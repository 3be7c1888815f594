#include "store/logging.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace rankfs {
namespace {

std::atomic<int> g_min_level{int(LogLevel::kInfo)};
std::mutex g_mu;  // guards g_sink and serializes writes to stderr
std::function<void(LogLevel, const std::string&)> g_sink;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}

}  // namespace

void Log(LogLevel level, std::string_view component, std::string_view message) {
  if (int(level) < g_min_level.load(std::memory_order_relaxed)) return;
  std::string line = LevelName(level);
  line += ' ';
  line += component;
  line += ": ";
  line += message;
  std::lock_guard<std::mutex> l(g_mu);
  if (g_sink) {
    g_sink(level, line);
    return;
  }
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tmv;
  localtime_r(&ts.tv_sec, &tmv);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tmv);
  std::fprintf(stderr, "%s.%03ld rankfs %s\n", stamp, ts.tv_nsec / 1000000, line.c_str());
}

void SetLogLevel(LogLevel min_level) { g_min_level.store(int(min_level)); }

void SetLogSink(std::function<void(LogLevel, const std::string&)> sink) {
  std::lock_guard<std::mutex> l(g_mu);
  g_sink = std::move(sink);
}

}  // namespace rankfs
