#include "tests/testutil/real_stack.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "tests/testutil/mount_fixture.h"

namespace rankfs {
namespace {

using Clock = std::chrono::steady_clock;

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void AddAllocated(const std::string& path, std::set<std::pair<dev_t, ino_t>>* seen,
                  uint64_t* total) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen->insert({st.st_dev, st.st_ino}).second) {
    return;
  }
  *total += uint64_t(st.st_blocks) * 512;
  if (!S_ISDIR(st.st_mode)) return;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") AddAllocated(path + "/" + name, seen, total);
  }
  closedir(d);
}

// The pids of the processes whose environment holds the entry `tag` ("K=V"), ours excepted.
std::vector<pid_t> TaggedProcesses(const std::string& tag) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    const pid_t pid = pid_t(std::atoi(e->d_name));
    if (pid <= 0 || pid == getpid()) continue;
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    for (std::string entry; std::getline(in, entry, '\0');) {
      if (entry == tag) {
        out.push_back(pid);
        break;
      }
    }
  }
  closedir(proc);
  return out;
}

// SIGKILLs every process of the job: they all inherited `tag` in their environment, including
// those that left its process group (torch.distributed.run starts each rank in a session of
// its own) and their orphans (a killed rank's multiprocessing workers). Repeats until a scan
// finds none, since one may fork while we kill (a zombie's environ reads empty).
void KillTagged(const std::string& tag) {
  for (int round = 0; round < 500; ++round) {
    const std::vector<pid_t> left = TaggedProcesses(tag);
    if (left.empty()) return;
    for (pid_t pid : left) kill(pid, SIGKILL);
    usleep(10000);
  }
}

}  // namespace

std::string RealStackPython(std::string* why) {
  std::string dir;
  if (const char* env = std::getenv("RANKFS_PYENV"); env != nullptr && *env != '\0') {
    dir = env;
  } else {
    auto r = RunCommand({std::string(RANKFS_SOURCE_DIR) + "/scripts/deps.sh", "--pyenv-path"});
    if (r.ok() && r.value().exit_code == 0) dir = Trim(r.value().output);
    if (dir.empty()) {
      *why = "no Python environment (build it with `scripts/deps.sh --python`; it needs PyPI)";
      return "";
    }
  }
  const std::string python = dir + "/bin/python";
  if (!IsExecutable(python)) {
    *why = "RANKFS_PYENV=" + dir + " holds no bin/python";
    return "";
  }
  return python;
}

std::string RealStackScripts() { return std::string(RANKFS_SOURCE_DIR) + "/tests/realstack"; }

std::vector<std::string> RealStackEnv(const std::string& python, const std::string& home,
                                      const std::vector<std::string>& extra) {
  const std::string bin = python.substr(0, python.rfind('/'));
  std::vector<std::string> env = {
      "HOME=" + home,
      "XDG_CACHE_HOME=" + home + "/.cache",
      "PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "VIRTUAL_ENV=" + bin.substr(0, bin.rfind('/')),
      "LANG=C.UTF-8",
      "PYTHONUNBUFFERED=1",
      "PYTHONDONTWRITEBYTECODE=1",
      "PYTHONPATH=" + RealStackScripts(),
      "HF_HUB_OFFLINE=1",
      "HF_DATASETS_OFFLINE=1",
      "TRANSFORMERS_OFFLINE=1",
      "HF_HUB_DISABLE_TELEMETRY=1",
      "DO_NOT_TRACK=1",
      "TOKENIZERS_PARALLELISM=false",
      "OMP_NUM_THREADS=1",
      "MKL_NUM_THREADS=1",
      "TMPDIR=" + home + "/tmp",
  };
  for (const std::string& kv : extra) {
    const std::string key = kv.substr(0, kv.find('=') + 1);
    bool replaced = false;
    for (std::string& e : env) {
      if (e.compare(0, key.size(), key) == 0) {
        e = kv;
        replaced = true;
      }
    }
    if (!replaced) env.push_back(kv);
  }
  return env;
}

JobResult RunJob(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                 const std::string& cwd, std::chrono::seconds timeout, const std::string& log_path,
                 const std::function<void(pid_t)>& on_start) {
  JobResult result;
  const std::string log =
      log_path.empty() ? "/tmp/rankfs-job-" + std::to_string(getpid()) + ".log" : log_path;
  // Every process of the job inherits this entry, so that all of them can be found at the end.
  static std::atomic<int> jobs{0};
  const std::string tag = "RANKFS_JOB_TAG=" + std::to_string(getpid()) + "-" +
                          std::to_string(jobs.fetch_add(1)) + "-" +
                          std::to_string(Clock::now().time_since_epoch().count());
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  envp.push_back(const_cast<char*>(tag.c_str()));
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  // argv[0] is looked up in env's PATH before the fork (execvpe would use ours).
  std::string program = argv.at(0);
  if (program.find('/') == std::string::npos) {
    for (const std::string& e : env) {
      if (e.rfind("PATH=", 0) != 0) continue;
      std::stringstream dirs(e.substr(5));
      for (std::string d; std::getline(dirs, d, ':');) {
        if (IsExecutable(d + "/" + program)) {
          program = d + "/" + program;
          break;
        }
      }
    }
  }
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    result.log = "RunJob: cannot open " + log + ": " + strerror(errno);
    return result;
  }
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls until exec
    setpgid(0, 0);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (chdir(cwd.c_str()) != 0) _exit(126);
    execve(program.c_str(), args.data(), envp.data());
    _exit(127);
  }
  close(log_fd);
  if (pid < 0) {
    result.log = std::string("RunJob: fork: ") + strerror(errno);
    return result;
  }
  setpgid(pid, pid);  // also here, so the group exists before anyone signals it
  if (on_start) on_start(pid);
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (Clock::now() - start > timeout) {
      kill(-pid, SIGKILL);
      result.timed_out = true;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    usleep(20000);
  }
  kill(-pid, SIGKILL);  // what is left of the group (a rank orphaned by its launcher)
  KillTagged(tag);      // and of the job outside the group
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  result.log = text.str();
  if (log_path.empty()) unlink(log.c_str());
  return result;
}

uint64_t AllocatedBytes(const std::string& dir) {
  std::set<std::pair<dev_t, ino_t>> seen;
  uint64_t total = 0;
  AddAllocated(dir, &seen, &total);
  return total;
}

uint64_t StoreDataBytes(const std::string& store) { return AllocatedBytes(store + "/packs"); }

PeakSampler::PeakSampler(std::function<uint64_t()> sample, std::chrono::milliseconds period)
    : sample_(std::move(sample)), period_(period) {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      const uint64_t v = sample_();
      uint64_t old = peak_.load();
      while (v > old && !peak_.compare_exchange_weak(old, v)) {
      }
      std::this_thread::sleep_for(period_);
    }
  });
}

PeakSampler::~PeakSampler() { Stop(); }

void PeakSampler::Stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
  const uint64_t v = sample_();
  if (v > peak_.load()) peak_ = v;
}

std::map<std::string, std::string> KeyValues(const std::string& log) {
  std::map<std::string, std::string> out;
  std::stringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    const std::string key = line.substr(0, eq);
    if (key.find_first_of(" \t:/") != std::string::npos) continue;
    out[key] = line.substr(eq + 1);
  }
  return out;
}

}  // namespace rankfs
