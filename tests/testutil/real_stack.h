// The real training stack (Hugging Face datasets, ms-swift, torch) driven against a mount, for
// the tests in tests/realstack/. The Python environment is the one `scripts/deps.sh --python`
// builds outside the clone (RANKFS_PYENV names it; otherwise `scripts/deps.sh --pyenv-path`
// finds it). A test that needs it starts with RANKFS_REQUIRE_REAL_STACK(): without the
// environment it skips saying why, and in CI (where it must exist) it fails.
//
// Jobs run as a process group of their own with a private HOME and every hub offline, so
// that nothing comes from or goes to the network or the machine's real caches, and a timeout
// kills the whole group (a hung rank must not hang CI).
//
// Thread-safety: RunJob may run on any thread (it forks; call it before starting threads
// that hold locks the child would need, or from the test's main thread). PeakSampler's
// methods may be called from the owning thread while it samples on its own.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil/skip.h"

namespace rankfs {

// The real-stack environment's python interpreter, or "" with the reason in *why.
std::string RealStackPython(std::string* why);

// The directory of the project's real-stack scripts (tests/realstack/).
std::string RealStackScripts();

// The environment every real-stack job runs with: a private `home` (HOME, XDG_CACHE_HOME
// under it), hubs offline (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE, TRANSFORMERS_OFFLINE), no
// telemetry, one thread per op library (OMP/MKL), PATH with the environment's bin first.
// Entries of `extra` ("K=V") are added or replace those.
std::vector<std::string> RealStackEnv(const std::string& python, const std::string& home,
                                      const std::vector<std::string>& extra = {});

struct JobResult {
  int exit_code = -1;      // exit status, or -1 when killed by a signal or the timeout
  int term_signal = 0;     // the signal that ended it, when one did
  bool timed_out = false;  // killed (the whole group) after the timeout
  double seconds = 0;      // wall time
  std::string log;         // stdout and stderr together (also in log_path when given)
};

// Runs argv (argv[0] searched in the PATH of `env`) with exactly `env` (plus an entry
// RANKFS_JOB_TAG that marks the job's processes), in `cwd`, as the leader of a new process
// group; kills the group with SIGKILL after `timeout`. When the leader has ended, every process
// still carrying the job's tag is killed too: processes that left the group (torch.distributed.run
// puts each rank in a session of its own) and their orphans must not outlive the job and hold
// files on a mount the test is about to unmount. `on_start` (when set)
// gets the leader's pid once it runs, for tests that signal it.
JobResult RunJob(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                 const std::string& cwd, std::chrono::seconds timeout,
                 const std::string& log_path = "",
                 const std::function<void(pid_t)>& on_start = nullptr);

// Bytes allocated on disk by everything under `dir` (st_blocks * 512, recursively; hard links
// counted once). 0 for a missing directory.
uint64_t AllocatedBytes(const std::string& dir);

// Bytes the store's chunk data takes on disk: AllocatedBytes of STORE/packs.
uint64_t StoreDataBytes(const std::string& store);

// Calls `sample` every `period` on a thread of its own and keeps the largest value.
class PeakSampler {
 public:
  explicit PeakSampler(std::function<uint64_t()> sample,
                       std::chrono::milliseconds period = std::chrono::milliseconds(20));
  ~PeakSampler();  // stops
  PeakSampler(const PeakSampler&) = delete;
  PeakSampler& operator=(const PeakSampler&) = delete;

  void Stop();  // idempotent; takes one last sample
  uint64_t peak() const { return peak_.load(); }

 private:
  std::function<uint64_t()> sample_;
  std::chrono::milliseconds period_;
  std::atomic<uint64_t> peak_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Lines "key=value" that a script printed (e.g. "digest=..."), last one wins.
std::map<std::string, std::string> KeyValues(const std::string& log);

}  // namespace rankfs

// In a test body or SetUp: sets `python` (a std::string declared by the caller) to the
// environment's interpreter, or skips (fails in CI) saying why there is none.
#define RANKFS_REQUIRE_REAL_STACK(python)                                            \
  do {                                                                               \
    std::string rankfs_real_stack_why_;                                              \
    python = ::rankfs::RealStackPython(&rankfs_real_stack_why_);                     \
    if (python.empty()) RANKFS_SKIP("real-stack tests: " << rankfs_real_stack_why_); \
  } while (0)
