#include "tests/testutil/mount_fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fs/mountinfo.h"

namespace rankfs {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void SleepMs(int ms) { std::this_thread::sleep_for(milliseconds(ms)); }

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> v;
  v.reserve(args.size() + 1);
  for (const std::string& a : args) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  return v;
}

bool LazyUnmount(const std::string& mountpoint) {
  if (umount2(mountpoint.c_str(), MNT_DETACH) == 0) return true;
  auto r = RunCommand({"fusermount3", "-uz", mountpoint}, std::chrono::seconds(10));
  return r.ok() && r->exit_code == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<CommandResult> RunCommand(const std::vector<std::string>& args,
                                 std::chrono::milliseconds timeout) {
  if (args.empty()) return Status(EINVAL, "RunCommand: empty argv");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno("pipe2", "RunCommand");
  std::vector<char*> argv = Argv(args);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return Status::FromErrno("fork", args[0]);
  }
  if (pid == 0) {  // only async-signal-safe calls until exec
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  CommandResult result;
  const auto deadline = Clock::now() + timeout;
  bool killed = false;
  for (;;) {
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      killed = true;
      result.output += "\n[RunCommand: killed after timeout]\n";
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) result.output.append(buf, size_t(n));
    if (n == 0) break;  // EOF: the child (and any grandchild holding the pipe) is done
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

ChildResult RunInChild(const std::function<std::string()>& body) {
  ChildResult result;
  int fds[2];
  if (pipe(fds) != 0) {
    result.output = "pipe failed";
    return result;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const std::string out = body();
    for (size_t done = 0; done < out.size();) {
      ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) _exit(2);
      done += size_t(n);
    }
    _exit(0);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) result.output.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid) {
    result.exited_cleanly = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return result;
}

ChildResult RunAsUser(uid_t id, const std::function<std::string()>& body) {
  return RunInChild([&] {
    if (setgroups(0, nullptr) != 0 || setresgid(id, id, id) != 0 || setresuid(id, id, id) != 0) {
      _exit(3);
    }
    return body();
  });
}

uint64_t StatValue(const std::string& mnt, const std::string& key) {
  std::ifstream in(mnt + "/.rankfs-stats");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + "=", 0) == 0) return std::stoull(line.substr(key.size() + 1));
  }
  return ~0ull;
}

bool IsMountPoint(const std::string& mountpoint) { return FindMount(mountpoint).has_value(); }

bool MountedFs::FuseAvailable() {
  const char* hide = std::getenv("RANKFS_TEST_NO_FUSE");
  if (hide != nullptr && *hide != '\0' && std::strcmp(hide, "0") != 0) return false;
  if (geteuid() != 0) return false;
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  close(fd);
  return true;
}

Result<std::unique_ptr<MountedFs>> MountedFs::Start(const std::string& binary,
                                                    const std::string& store_dir,
                                                    const std::string& mountpoint,
                                                    const std::string& options) {
  char canon[PATH_MAX];
  if (realpath(mountpoint.c_str(), canon) == nullptr) {
    return Status::FromErrno("realpath", mountpoint);
  }
  std::unique_ptr<MountedFs> fs(new MountedFs());
  fs->mountpoint_ = canon;
  if (IsMountPoint(fs->mountpoint_)) {
    return Status(EBUSY, "MountedFs: " + fs->mountpoint_ + " is already a mount point");
  }
  char log_template[] = "/tmp/rankfs-daemon-XXXXXX.log";
  int log_fd = mkostemps(log_template, 4, O_CLOEXEC);
  if (log_fd < 0) return Status::FromErrno("mkostemps", log_template);
  fs->log_path_ = log_template;

  std::vector<std::string> args = {binary, "mount", store_dir, fs->mountpoint_, "-f"};
  if (!options.empty()) {
    args.push_back("-o");
    args.push_back(options);
  }
  std::vector<char*> argv = Argv(args);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return Status::FromErrno("fork", binary);
  }
  if (pid == 0) {  // only async-signal-safe calls until exec
    // If the test binary dies, the daemon unmounts itself (SIGTERM is a clean unmount).
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  fs->pid_ = pid;

  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      fs->pid_ = -1;
      return Status(EIO, "rankfs daemon exited (status " + std::to_string(status) +
                             ") before mounting " + fs->mountpoint_ + "; its log:\n" +
                             fs->DaemonLog());
    }
    // mountinfo first: a statfs on a mount whose daemon is not serving yet would block.
    struct statfs st;
    if (IsMountPoint(fs->mountpoint_) && statfs(fs->mountpoint_.c_str(), &st) == 0 &&
        st.f_type == kFuseSuperMagic) {
      return fs;
    }
    SleepMs(20);
  }
  std::string log = fs->DaemonLog();
  fs.reset();  // kills the daemon and removes any mount
  return Status(ETIMEDOUT, "rankfs did not mount within 20 s; its log:\n" + log);
}

MountedFs::~MountedFs() {
  if (pid_ < 0) {
    // Unmount() or Kill9() already ran and cleaned up; whatever is mounted at the mountpoint
    // now belongs to someone else (a test's next MountedFs), and must not be unmounted here.
    if (!log_path_.empty()) unlink(log_path_.c_str());
    return;
  }
  try {
    Unmount().IgnoreError();
  } catch (...) {
  }
  try {
    ForceUnmount();
  } catch (...) {
    umount2(mountpoint_.c_str(), MNT_DETACH);  // last resort, without allocating
  }
  if (!log_path_.empty()) unlink(log_path_.c_str());
}

bool MountedFs::IsMounted() const { return pid_ > 0 && IsMountPoint(mountpoint_); }

std::string MountedFs::DaemonLog() const { return log_path_.empty() ? "" : ReadFile(log_path_); }

int MountedFs::WaitDaemon(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) break;
    if (Clock::now() > deadline) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      status = -1;
      break;
    }
    SleepMs(10);
  }
  pid_ = -1;
  return status;
}

void MountedFs::ForceUnmount() {
  if (!mountpoint_.empty() && IsMountPoint(mountpoint_)) LazyUnmount(mountpoint_);
}

Status MountedFs::Unmount() {
  if (pid_ < 0) return Status::Ok();
  std::string errors;
  for (int attempt = 0; attempt < 5 && IsMountPoint(mountpoint_); ++attempt) {
    auto r = RunCommand({"fusermount3", "-u", mountpoint_}, std::chrono::seconds(30));
    if (r.ok() && r->exit_code == 0) break;
    errors += r.ok() ? r->output : r.status().ToString() + "\n";
    SleepMs(200);
  }
  if (IsMountPoint(mountpoint_)) {
    errors += "falling back to a lazy unmount\n";
    LazyUnmount(mountpoint_);
  }
  const int status = WaitDaemon(std::chrono::seconds(10));
  ForceUnmount();
  if (status == -1) {
    return Status(ETIMEDOUT, "rankfs daemon did not exit within 10 s of the unmount; killed. " +
                                 errors + "log:\n" + DaemonLog());
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status(EIO, "rankfs daemon ended with wait status " + std::to_string(status) + ". " +
                           errors + "log:\n" + DaemonLog());
  }
  return Status::Ok();
}

Status MountedFs::Kill9() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    WaitDaemon(std::chrono::seconds(10));
  }
  ForceUnmount();
  if (IsMountPoint(mountpoint_)) return Status(EBUSY, "mount left at " + mountpoint_);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------

TestTimeout::TestTimeout(std::chrono::seconds limit, const std::string& mountpoint) {
  if (!mountpoint.empty()) mountpoints_.push_back(mountpoint);
  thread_ = std::thread([this, limit] {
    std::unique_lock<std::mutex> l(mu_);
    if (cv_.wait_for(l, limit, [this] { return done_; })) return;
    std::fprintf(stderr, "\nTestTimeout: the test ran past %lld s; unmounting and aborting\n",
                 static_cast<long long>(limit.count()));
    for (const std::string& m : mountpoints_) {
      std::fprintf(stderr, "TestTimeout: lazy unmount of %s\n", m.c_str());
      LazyUnmount(m);
    }
    std::fflush(stderr);
    std::abort();
  });
}

TestTimeout::~TestTimeout() {
  {
    std::lock_guard<std::mutex> l(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void TestTimeout::Watch(const std::string& mountpoint) {
  std::lock_guard<std::mutex> l(mu_);
  mountpoints_.push_back(mountpoint);
}

}  // namespace rankfs
