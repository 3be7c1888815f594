// Helpers shared by the offline store commands (fsck, gc): byte counts for people, a progress
// bar for terminals, and running as the store's owner.
//
// Thread-safety: none needed; the commands run on one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "mount-helper/cli.h"

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

}  // namespace rankfs
