// OfflineOptions: what every offline tool (Fsck, Gc) is given, whatever it does to the store.
// Each tool's options extend it (FsckOptions, GcOptions).
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace rocksdb {
class Env;
}

namespace rankfs {

class Env;

// Called during a tool's long phases with the phase's name, the work done so far and the
// phase's total (0: unknown). It runs on the thread that runs the tool; each tool's header says
// which phases it reports.
using OfflineProgress = std::function<void(std::string_view phase, uint64_t done, uint64_t total)>;

struct OfflineOptions {
  Env* env = nullptr;                 // the pack files; nullptr: Env::Default(). Not owned.
  rocksdb::Env* rocks_env = nullptr;  // the metadata; nullptr: RocksDB's default. Not owned.
  OfflineProgress progress;           // may be empty
};

}  // namespace rankfs
