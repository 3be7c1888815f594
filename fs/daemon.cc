#include "fs/daemon.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "fs/fs_core.h"
#include "fs/fuse_ops.h"
#include "fs/gpu_server.h"
#include "fs/killpriv_io.h"
#include "fs/mountinfo.h"
#include "fs/page_fill.h"
#include "store/logging.h"
#include "store/store.h"
#include "store/store_holder.h"

namespace rankfs {
namespace {

constexpr unsigned kReadaheadKb = kMaxReadaheadBytes >> 10;  // see fuse_ops.h

// strerror is not thread-safe; the GNU strerror_r returns the message in buf or static storage.
std::string ErrnoText(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

void Fail(const std::string& message) { std::fprintf(stderr, "rankfs: %s\n", message.c_str()); }

// The canonical absolute path of an existing directory; nullopt (with a message) otherwise.
std::optional<std::string> CheckMountpoint(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) {
      Fail("mountpoint '" + path + "' does not exist");
    } else if (err == ENOTCONN) {
      Fail("mountpoint '" + path + "' is a dead FUSE mount (" + ErrnoText(err) +
           "); unmount it first: fusermount3 -u " + path);
    } else {
      Fail("mountpoint '" + path + "' is not accessible: " + ErrnoText(err));
    }
    return std::nullopt;
  }
  if (!S_ISDIR(st.st_mode)) {
    Fail("mountpoint '" + path + "' is not a directory");
    return std::nullopt;
  }
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) {
    Fail("mountpoint '" + path + "': " + ErrnoText(errno));
    return std::nullopt;
  }
  return std::string(buf);
}

// The absolute path of the store directory, which need not exist yet but whose parent must.
// Absolute because the daemon changes its working directory to "/".
std::optional<std::string> CheckStoreDir(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::absolute(path, ec).lexically_normal();
  if (ec || path.empty()) {
    Fail("invalid store path '" + path + "'");
    return std::nullopt;
  }
  if (p.has_filename() == false) p = p.parent_path();  // "dir/" -> "dir"
  struct stat st;
  if (stat(p.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      Fail("store '" + path + "' is not a directory");
      return std::nullopt;
    }
    return fs::canonical(p, ec).string();
  }
  const int err = errno;
  const fs::path parent = p.parent_path();
  if (err != ENOENT) {
    Fail("cannot access store '" + path + "': " + ErrnoText(err));
  } else if (stat(parent.c_str(), &st) != 0) {
    Fail("cannot create store '" + path + "': its parent directory '" + parent.string() +
         "' does not exist");
  } else if (!S_ISDIR(st.st_mode)) {
    Fail("cannot create store '" + path + "': '" + parent.string() + "' is not a directory");
  } else {
    fs::path canon_parent = fs::canonical(parent, ec);
    if (!ec) return (canon_parent / p.filename()).string();
    Fail("cannot create store '" + path + "': " + ec.message());
  }
  return std::nullopt;
}

bool IsInside(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

std::string DescribeStoreError(const std::string& dir, const Status& s) {
  switch (s.code()) {
    case EBUSY:
      return "store '" + dir + "' is already in use by another rankfs process" +
             " (is it mounted already?)";
    case EACCES:
    case EPERM:
      return "cannot open store '" + dir + "': permission denied (" + s.message() + ")";
    default:
      return "cannot open store '" + dir + "': " + s.ToString();
  }
}

// Background mode: the parent waits until the child reports a mount (or fails), so the exit
// status of `rankfs mount` is meaningful. We fork before the store starts any thread.
class Daemonizer {
 public:
  // In the parent, returns the exit status to end with; in the child, nullopt.
  std::optional<int> Fork() {
    if (pipe2(pipe_, O_CLOEXEC) != 0) {
      Fail(std::string("pipe: ") + ErrnoText(errno));
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      Fail(std::string("fork: ") + ErrnoText(errno));
      return 1;
    }
    if (pid == 0) {
      close(pipe_[0]);
      pipe_[0] = -1;
      setsid();
      return std::nullopt;
    }
    close(pipe_[1]);
    char ok = 0;
    ssize_t n = read(pipe_[0], &ok, 1);
    while (n < 0 && errno == EINTR) n = read(pipe_[0], &ok, 1);
    close(pipe_[0]);
    if (n == 1) return 0;  // mounted; the daemon keeps running
    int status = 0;
    pid_t waited = waitpid(pid, &status, 0);
    while (waited < 0 && errno == EINTR) waited = waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1;
  }

  // Child: tells the parent the mount is up and detaches from the terminal. Logging goes to
  // syslog from here on (stderr is /dev/null).
  void Detach() {
    char ok = 1;
    ssize_t written = write(pipe_[1], &ok, 1);  // the parent may be gone: nothing to do then
    (void)written;
    close(pipe_[1]);
    pipe_[1] = -1;
    int chdir_rc = chdir("/");  // "/" always exists
    (void)chdir_rc;
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      dup2(null_fd, 0);
      dup2(null_fd, 1);
      dup2(null_fd, 2);
      if (null_fd > 2) close(null_fd);
    }
  }

 private:
  int pipe_[2] = {-1, -1};
};

void UseSyslog() {
  openlog("rankfs", LOG_PID, LOG_DAEMON);
  SetLogSink([](LogLevel level, const std::string& line) {
    int prio = level == LogLevel::kError     ? LOG_ERR
               : level == LogLevel::kWarning ? LOG_WARNING
               : level == LogLevel::kInfo    ? LOG_INFO
                                             : LOG_DEBUG;
    syslog(prio, "%s", line.c_str());
  });
}

// A libfuse session and what was done to it; undone in reverse order.
class Session {
 public:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (mounted_) fuse_session_unmount(se_);
    if (handlers_) fuse_remove_signal_handlers(se_);
    if (se_ != nullptr) fuse_session_destroy(se_);  // calls the destroy op after init
  }

  bool Create(const std::vector<std::string>& args, FuseContext* ctx) {
    std::vector<char*> argv;
    argv.reserve(args.size());
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    fuse_args fa = FUSE_ARGS_INIT(int(argv.size()), argv.data());
    const fuse_lowlevel_ops& ops = RankfsLowLevelOps();
    se_ = fuse_session_new(&fa, &ops, sizeof ops, ctx);
    fuse_opt_free_args(&fa);
    return se_ != nullptr;
  }
  bool SetSignalHandlers() { return handlers_ = fuse_set_signal_handlers(se_) == 0; }
  bool Mount(const std::string& mountpoint) {
    return mounted_ = fuse_session_mount(se_, mountpoint.c_str()) == 0;
  }
  // Before Loop(): see fs/killpriv_io.h.
  bool UseKillprivTransport() { return InstallKillprivTransport(se_, fuse_session_fd(se_)); }
  fuse_session* get() { return se_; }
  // Serves requests until the filesystem is unmounted or a signal arrives.
  int Loop(unsigned threads) {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 0);
    fuse_loop_cfg_set_max_threads(cfg, threads);
    fuse_loop_cfg_set_idle_threads(cfg, threads);  // no thread churn under load
    int rc = fuse_session_loop_mt(se_, cfg);
    fuse_loop_cfg_destroy(cfg);
    return rc;
  }

 private:
  fuse_session* se_ = nullptr;
  bool handlers_ = false;
  bool mounted_ = false;
};

// The mount's device ("0:38") from /proc/self/mountinfo, or "" when it is not listed. Not
// stat(2), which would wait for a session loop that is not running yet, or not any more.
std::string MountDevice(const std::string& mountpoint) {
  std::optional<MountEntry> mount = FindMount(mountpoint);
  return mount ? mount->device : "";
}

// The kernel caps a FUSE mount's readahead at its 128 KiB default whatever INIT asks for;
// sequential reads and mmap faults then arrive as 256 KiB requests instead of 1 MiB ones.
// Root may raise it through the mount's backing_dev_info in sysfs. Best effort.
void RaiseReadahead(const std::string& mountpoint) {
  const std::string dev = MountDevice(mountpoint);
  if (dev.empty()) return;
  std::ofstream ra("/sys/class/bdi/" + dev + "/read_ahead_kb");
  ra << kReadaheadKb << "\n";
  ra.flush();
  if (!ra) {
    Log(LogLevel::kInfo, "daemon",
        "could not raise readahead of " + mountpoint +
            " (needs root); reads stay at 128 KiB requests");
  }
}

// Fails every pending request of the mount's FUSE connection (/sys/fs/fuse/connections/N/abort,
// N the minor of the mount's device), for a shutdown that finds a request stuck.
void AbortConnection(const std::string& mountpoint) {
  const std::string dev = MountDevice(mountpoint);
  const size_t colon = dev.find(':');
  if (colon == std::string::npos) return;
  std::ofstream abort_file("/sys/fs/fuse/connections/" + dev.substr(colon + 1) + "/abort");
  abort_file << "1\n";
  abort_file.flush();
  if (!abort_file) Log(LogLevel::kWarning, "daemon", "could not abort the FUSE connection");
}

// glibc gives each thread that allocates its own heap arena (up to 8 per CPU). Chunk buffers
// are allocated by the FUSE threads and freed by the pipeline's and cache's threads, and every
// arena keeps its own high-water mark: with 16+ arenas the heap held 410 MB for 173 MB in use
// after a 4 x 1200 MiB N-ranks job. Two arenas per CPU (and the pipeline's periodic
// malloc_trim) brought the peak to ~300 MB; one arena for every 8 CPUs brought it to ~230 MiB
// at 600 MiB per rank and ~260 MiB at 1200 MiB on 2 CPUs, with no change to throughput there
// (docs/design.md, "Memory"). Chunk buffers are 16-256 KiB, one malloc per chunk, so the
// arena lock is taken rarely enough to share between several CPUs' threads.
void LimitHeapArenas() {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  mallopt(M_ARENA_MAX, int(std::max<long>(1, cpus / 8)));
}

DaemonTestEnvs test_envs;  // SetDaemonTestEnvs

// libfuse leaves the kernel mount in place once its connection was aborted: it reads the
// POLLERR on /dev/fuse as "already unmounted" and skips the umount. After the daemon aborted
// its own connection (a page fill stuck at shutdown) it removes the mount itself, lazily,
// since a process may still hold files there; the kernel answers them ENOTCONN meanwhile.
void DetachAbortedMount(const std::string& mountpoint) {
  std::optional<MountEntry> mount = FindMount(mountpoint);
  if (!mount || mount->fstype.rfind("fuse", 0) != 0) return;
  if (umount2(mountpoint.c_str(), MNT_DETACH) == 0) return;
  // Not root: the setuid helper may detach a mount its caller owns.
  const char* argv[] = {"fusermount3", "-uz", "--", mountpoint.c_str(), nullptr};
  pid_t pid = -1;
  int status = 0;
  if (posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char* const*>(argv),
                   environ) != 0 ||
      waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Log(LogLevel::kWarning, "daemon",
        "could not remove the aborted mount on " + mountpoint + "; fusermount3 -uz it by hand");
  }
}

// Once the session loop has ended, the daemon writes back what it buffered and closes the
// store; the kernel mount is usually gone already. libfuse's handlers, which turn SIGTERM into
// the end of the loop, are removed before that write-back, so a SIGTERM then (systemd sends
// one to whatever is left in a mount unit after its umount) would kill the daemon and lose the
// buffered data. Ignored from here on: the write-back ends by itself; SIGKILL still works.
void IgnoreStopSignals() {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &ignore, nullptr);
}

// Records in STORE/HOLDER that this process serves the store on `mountpoint`, so that
// `rankfs unmount`, fsck and gc can tell a mounted store from one still being closed after its
// unmount (store/store_holder.h). Best effort: without the record they refuse a held store at
// once, as they did before there was one.
void RecordHolder(const std::string& store_dir, const std::string& mountpoint) {
  const std::string dev = MountDevice(mountpoint);
  if (dev.empty()) return;
  Status s = WriteStoreHolder(store_dir, ThisProcessAsHolder(mountpoint, dev));
  if (!s.ok()) {
    Log(LogLevel::kInfo, "daemon",
        "cannot record the daemon in the store (" + s.ToString() +
            "); rankfs unmount, fsck and gc will not recognise it");
  }
}

// Everything after the (optional) fork. Returns the exit status.
int Serve(const std::string& store_dir, const std::string& mountpoint, const MountConfig& cfg,
          Daemonizer* daemonizer) {
  LimitHeapArenas();  // before any thread starts
  StoreOptions so = cfg.store;
  if (test_envs.env != nullptr) so.env = test_envs.env;
  if (test_envs.rocks_env != nullptr) so.rocks_env = test_envs.rocks_env;
  if (test_envs.meta_write_hook != nullptr) so.meta.write_hook = test_envs.meta_write_hook;
  Result<std::unique_ptr<Store>> store = Store::Open(store_dir, so);
  if (!store.ok()) {
    Fail(DescribeStoreError(store_dir, store.status()));
    return 1;
  }
  // The GPU staging socket (fs/gpu_server.h) listens from here on; clients are served once the
  // mount is up. Without it the mount works as before, only without the staging path.
  FsOptions fs_options = cfg.fs;
  std::unique_ptr<GpuServer> gpu_server;
  if (Result<std::unique_ptr<GpuServer>> g = GpuServer::Create(); g.ok()) {
    gpu_server = std::move(g).value();
    fs_options.gpu_socket = gpu_server->name();
  } else {
    Log(LogLevel::kWarning, "daemon", "no GPU staging socket: " + g.status().ToString());
  }
  Result<std::unique_ptr<FsCore>> core = FsCore::Create(store->get(), fs_options);
  if (!core.ok()) {
    Fail("cannot start the filesystem on store '" + store_dir + "': " + core.status().ToString());
    return 1;
  }
  FuseContext ctx;
  ctx.core = core->get();
  ctx.writeback_cache = cfg.writeback_cache;

  int exit_code = 0;
  bool aborted = false;  // the daemon aborted its own FUSE connection
  {
    Session session;
    if (!session.Create(BuildFuseArgs(cfg, store_dir), &ctx)) {
      Fail("libfuse rejected the mount options (see above)");
      return 1;
    }
    if (!session.SetSignalHandlers()) {
      Fail("cannot install signal handlers");
      return 1;
    }
    if (!session.Mount(mountpoint)) {
      Fail("cannot mount on '" + mountpoint + "' (see the message above)");
      return 1;
    }
    if (!session.UseKillprivTransport()) {
      Log(LogLevel::kInfo, "daemon",
          "libfuse refused the custom transport; every write() costs a security.capability "
          "lookup");
    }
    RaiseReadahead(mountpoint);
    // A read-only mount changes nothing in the store, not even this record; rankfs unmount,
    // fsck and gc find it through the lock it holds (mount-helper/daemon_wait.h).
    if (!cfg.read_only) RecordHolder(store_dir, mountpoint);
    if (gpu_server != nullptr) {
      std::optional<MountEntry> mount = FindMount(mountpoint);
      unsigned major = 0, minor = 0;
      if (mount && std::sscanf(mount->device.c_str(), "%u:%u", &major, &minor) == 2) {
        // RANKFS_TEST_STAGE_DELAY_US: a test knob (tests/integration/gpu_staging_test.cc).
        const char* delay = std::getenv("RANKFS_TEST_STAGE_DELAY_US");
        gpu_server->Start(
            core->get(), makedev(major, minor), fuse_session_fd(session.get()),
            std::chrono::microseconds(delay != nullptr ? std::strtoul(delay, nullptr, 10) : 0));
      } else {
        Log(LogLevel::kWarning, "daemon", "mount device unknown; GPU staging socket not served");
      }
    }
    // Lives while the session loop runs; gone before the session is unmounted and destroyed.
    std::unique_ptr<PageFiller> filler;
    if (cfg.page_fill) {
      // RANKFS_TEST_FILL_DELAY_US: a test knob (tests/integration/page_fill_test.cc).
      const char* delay = std::getenv("RANKFS_TEST_FILL_DELAY_US");
      filler = std::make_unique<PageFiller>(
          core->get(), session.get(),
          std::chrono::microseconds(delay != nullptr ? std::strtoul(delay, nullptr, 10) : 0));
      ctx.filler = filler.get();
    }
    Log(LogLevel::kInfo, "daemon",
        "mounted " + store_dir + " on " + mountpoint +
            (cfg.read_only ? " read-only (the store is not changed; recovery is left for a "
                             "read-write mount)"
                           : ""));
    if (daemonizer != nullptr) daemonizer->Detach();
    int rc = session.Loop(cfg.fuse_threads);
    IgnoreStopSignals();
    // Hang up on GPU clients now; their threads are joined once the unmount below has failed
    // any request to this mount they still wait on (a write-back of dirty pages).
    if (gpu_server != nullptr) gpu_server->Disconnect();
    if (filler != nullptr) {
      filler->Shutdown(std::chrono::seconds(2), [&] {
        AbortConnection(mountpoint);
        aborted = true;
      });
      ctx.filler = nullptr;
      filler.reset();
    }
    if (rc < 0) {
      Log(LogLevel::kError, "daemon", std::string("session loop: ") + ErrnoText(-rc));
      Fail(std::string("FUSE session failed: ") + ErrnoText(-rc));
      exit_code = 1;
    }
  }  // unmounts; the destroy op runs FsCore::Shutdown
  if (aborted) DetachAbortedMount(mountpoint);
  gpu_server.reset();
  Status s = ctx.shutdown_status;
  Status again = (*core)->Shutdown();  // no-op after destroy; needed if init never ran
  if (s.ok()) s = again;
  core->reset();
  Status closed = (*store)->Close();
  if (s.ok()) s = closed;
  if (!s.ok()) {
    Log(LogLevel::kError, "daemon", "shutdown: " + s.ToString());
    Fail("error while writing buffered data at unmount: " + s.ToString());
    return 1;
  }
  Log(LogLevel::kInfo, "daemon", "unmounted " + mountpoint);
  return exit_code;
}

}  // namespace

void SetDaemonTestEnvs(const DaemonTestEnvs& envs) { test_envs = envs; }

int RunMount(const std::string& store_dir, const std::string& mountpoint, const MountConfig& cfg,
             bool foreground) {
  std::optional<std::string> mnt = CheckMountpoint(mountpoint);
  if (!mnt) return 1;
  std::optional<std::string> store = CheckStoreDir(store_dir);
  if (!store) return 1;
  if (IsInside(*store, *mnt)) {
    // The daemon would reach its own files through its own mount and deadlock.
    Fail("store '" + *store + "' must not be inside the mountpoint '" + *mnt + "'");
    return 1;
  }
  if (cfg.debug) SetLogLevel(LogLevel::kDebug);
  if (foreground || cfg.debug) return Serve(*store, *mnt, cfg, nullptr);

  Daemonizer daemonizer;
  if (std::optional<int> parent_exit = daemonizer.Fork()) return *parent_exit;
  UseSyslog();
  return Serve(*store, *mnt, cfg, &daemonizer);
}

}  // namespace rankfs
