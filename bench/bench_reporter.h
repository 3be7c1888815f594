// Shared by the micro-benchmarks: a console reporter that also records each benchmark's
// throughput, so a benchmark binary can print ratios against raw bounds measured in the same
// run (the only numbers worth comparing on a shared, noisy machine).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

namespace rankfs {

// Prints the normal console output and keeps each benchmark's bytes/s: the median aggregate
// when repetitions were asked for, else the last run.
// It always prints the console format (colored on a terminal); --benchmark_out still writes a
// JSON or CSV file next to it.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  RecordingReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Color : OO_None) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      const auto it = run.counters.find("bytes_per_second");
      if (run.error_occurred || it == run.counters.end()) continue;
      const std::string& name = run.run_name.function_name;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (median || (run.run_type == Run::RT_Iteration && !has_median_[name])) {
        gbps_[name] = it->second.value / 1e9;
        has_median_[name] = has_median_[name] || median;
      }
    }
  }

  // GB/s of `name`, or 0 when it did not run (filtered out).
  double Gbps(const std::string& name) const {
    const auto it = gbps_.find(name);
    return it == gbps_.end() ? 0 : it->second;
  }

 private:
  std::map<std::string, double> gbps_;
  std::map<std::string, bool> has_median_;
};

inline void PrintRatio(const char* name, double num, double den, const char* note) {
  if (num <= 0 || den <= 0) return;  // a benchmark it needs was filtered out
  std::printf("%s=%.3f%s\n", name, num / den, note);
}

}  // namespace rankfs
