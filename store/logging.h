// Minimal leveled logging: one line per event, "LEVEL component: message". The sink is
// stderr by default; the daemon may install another (syslog) once at start-up.
// Thread-safe: lines from different threads never interleave.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace rankfs {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void Log(LogLevel level, std::string_view component, std::string_view message);
void SetLogLevel(LogLevel min_level);
// Replaces the sink (nullptr restores stderr). Call before starting threads.
void SetLogSink(std::function<void(LogLevel, const std::string& line)> sink);

}  // namespace rankfs
