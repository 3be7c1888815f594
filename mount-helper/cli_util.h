// Helpers shared by the offline store commands (fsck, gc): byte counts for people, a progress
// bar for terminals, running as the store's owner, and the run of a command from its parsed
// arguments to its exit status.
//
// Thread-safety: none needed; the commands run on one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "mount-helper/cli.h"
#include "mount-helper/daemon_wait.h"
#include "store/offline_options.h"
#include "store/status.h"

namespace rankfs {

// "1.5 MiB", "512 B".
std::string HumanBytes(uint64_t v);

// A one-line progress bar, redrawn at most ten times a second. Commands create one always but
// feed it only when CliIo::interactive, so scripts and tests never see it.
class ProgressBar {
 public:
  explicit ProgressBar(std::ostream& os) : os_(os) {}
  ~ProgressBar() { Clear(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void Update(std::string_view phase, uint64_t done, uint64_t total);
  // A progress callback that updates this bar. REQUIRES: the bar outlives every call of it.
  OfflineProgress Callback();
  // Erases the bar (before the command prints its report).
  void Clear();

 private:
  std::ostream& os_;
  std::string phase_;
  std::chrono::steady_clock::time_point last_;
  bool shown_ = false;
};

// Run as root on a store that belongs to someone else, an offline command becomes that user:
// opening the metadata creates files in meta/ (RocksDB's log and manifest), and gc writes new
// packs; root-owned ones would lock the owner out of their own store. Says so on io.err.
// Returns false (with a message naming `command`) if the switch fails.
bool BecomeStoreOwner(const std::string& dir, std::string_view command, const CliIo& io);

// How an offline store command is named, and how it exits when it cannot do its work.
struct OfflineCommand {
  std::string_view name;   // "fsck": its messages start "rankfs fsck: "
  std::string_view usage;  // "usage: rankfs fsck STORE [--repair]\n"
  int exit_failed;         // the store is in use, missing or unreadable, or the run failed
  int exit_usage;          // bad arguments
};

// How long fsck and gc wait by default for a daemon whose mount is gone to finish closing the
// store (--wait SECS): as long as `rankfs unmount` waits by default.
inline constexpr std::chrono::seconds kDefaultCloseWait{60};

// "60", "2.5" -> that many seconds; false unless a finite number >= 0.
bool ParseSeconds(const std::string& text, std::chrono::milliseconds* out);

// Says "rankfs NAME: why" and the usage on io.err; returns command.exit_usage.
int OfflineUsageError(const OfflineCommand& command, const CliIo& io, std::string_view why);

// Everything an offline command does once its arguments are parsed: becomes the store's owner,
// runs `engine` (Fsck, Gc) on `dir` with a progress bar on io.out when io.interactive (erased
// before anything else is printed), and gives the report to `finish`, which prints it and
// returns the exit status. When the store is locked by a daemon whose mount is gone, waits up
// to `close_wait` for it to finish closing the store (WaitForClosingDaemon), then runs the
// engine again. When the engine fails, says why on io.err and returns command.exit_failed.
template <typename Options, typename Report, typename Finish>
int RunOfflineCommand(const OfflineCommand& command, const std::string& dir, Options options,
                      Result<Report> (*engine)(const std::string&, const Options&),
                      std::chrono::milliseconds close_wait, const Finish& finish, const CliIo& io) {
  if (!BecomeStoreOwner(dir, command.name, io)) return command.exit_failed;
  ProgressBar bar(*io.out);
  if (io.interactive) options.progress = bar.Callback();
  Result<Report> report = engine(dir, options);
  // Once per run: a daemon mounted again in between is refused by the second attempt.
  if (!report.ok() && report.status().code() == EBUSY) {
    bar.Clear();
    if (!WaitForClosingDaemon(dir, close_wait, command.name, io)) return command.exit_failed;
    report = engine(dir, options);
  }
  bar.Clear();
  if (!report.ok()) {
    *io.err << "rankfs " << command.name << ": " << report.status().message() << "\n";
    return command.exit_failed;
  }
  return finish(*report);
}

}  // namespace rankfs
