// mount.rankfs: the helper mount(8) runs for fstab entries of type rankfs (and, through the
// mount.fuse.rankfs link, fuse.rankfs). Calling convention (util-linux libmount):
//
//   mount.rankfs SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS] [-t TYPE]
//
// -s sloppy (drop options rankfs refuses, with a warning), -f fake (check everything, mount
// nothing), -n no mtab (nothing to do: rankfs writes none), -v verbose, -t the type when it has
// a subtype. mount(8) runs the helper as the user for a `user` entry; libfuse then mounts
// through fusermount3 by itself.
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "fs/daemon.h"
#include "fs/mount_options.h"
#include "mount-helper/cli.h"

namespace rankfs {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;
constexpr auto kAnswerTimeout = std::chrono::seconds(20);

struct HelperArgs {
  std::string source;
  std::string mountpoint;
  std::string options;  // every -o list, joined with commas
  bool sloppy = false;
  bool fake = false;
  bool verbose = false;
};

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void PrintUsage(std::ostream& os, const std::string& prog) {
  os << "usage: " << prog
     << " SOURCE MOUNTPOINT [-o OPTIONS] [-s] [-f] [-n] [-v] [-t rankfs|fuse.rankfs]\n";
}

void PrintHelp(std::ostream& os, const std::string& prog) {
  os << prog << " " << RANKFS_VERSION
     << ": mounts a rankfs store; run by mount(8) for fstab entries of type rankfs or\n"
        "fuse.rankfs (see docs/fstab.md).\n\n";
  PrintUsage(os, prog);
  os << "\n"
        "  SOURCE       the store directory (created at the first mount; 'rankfs#' prefix "
        "allowed)\n"
        "  -o OPTIONS   rankfs mount options (see rankfs --help); fstab-only words such as\n"
        "               noauto, nofail, _netdev, user, users, defaults, comment=..., x-... are\n"
        "               ignored\n"
        "  -s           sloppy: drop options rankfs refuses (with a warning) instead of failing\n"
        "  -f           fake: check the options, mount nothing\n"
        "  -n           do not write /etc/mtab (rankfs never does)\n"
        "  -v           verbose\n"
        "  -t TYPE      rankfs or fuse.rankfs\n\n"
        "Exits once the mount answers: 0 mounted, 1 bad invocation or options, 32 mount failed.\n"
        "Unmount with: umount MOUNTPOINT (or fusermount3 -u MOUNTPOINT as the mounting user).\n";
}

int UsageError(const CliIo& io, const std::string& prog, const std::string& why) {
  *io.err << prog << ": " << why << "\n";
  PrintUsage(*io.err, prog);
  return kMountExitUsage;
}

// Parses the helper's argv (after the program name). Returns an exit status to end with, or -1
// to go on. Flags may come before, between or after the two paths (mount(8) puts them after).
int ParseArgs(const std::vector<std::string>& args, const CliIo& io, const std::string& prog,
              HelperArgs* h) {
  std::vector<std::string> positional;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      PrintHelp(*io.out, prog);
      return 0;
    } else if (a == "-V" || a == "--version") {
      *io.out << prog << " " << RANKFS_VERSION << "\n";
      return 0;
    } else if (a == "-s") {
      h->sloppy = true;
    } else if (a == "-f") {
      h->fake = true;
    } else if (a == "-n") {
      // No mtab to write: /etc/mtab is the kernel's table on every system rankfs supports.
    } else if (a == "-v") {
      h->verbose = true;
    } else if (a == "-o" || (a.starts_with("-o") && a.size() > 2)) {
      std::string list = a.size() > 2 ? a.substr(2) : "";
      if (list.empty()) {
        if (++i == args.size()) return UsageError(io, prog, "-o needs an option list");
        list = args[i];
      }
      if (!list.empty()) h->options += h->options.empty() ? list : "," + list;
    } else if (a == "-t") {
      if (++i == args.size()) return UsageError(io, prog, "-t needs a type");
      const std::string& type = args[i];
      if (type != "rankfs" && type != "fuse.rankfs") {
        return UsageError(
            io, prog,
            "filesystem type '" + type + "' is not rankfs (expected rankfs or fuse.rankfs)");
      }
    } else if (a == "-N") {
      return UsageError(io, prog, "mounting into another mount namespace (-N) is not supported");
    } else if (a.size() > 1 && a[0] == '-') {
      return UsageError(io, prog, "unknown flag '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) return UsageError(io, prog, "needs SOURCE and MOUNTPOINT");
  h->source = positional[0];
  // The deprecated "type#source" spelling of FUSE fstab entries.
  if (h->source.starts_with("rankfs#")) h->source.erase(0, 7);
  h->mountpoint = positional[1];
  if (h->source.empty()) return UsageError(io, prog, "empty SOURCE (the store directory)");
  return -1;
}

// Sloppy mode: drops each item ParseMountOptions refuses on its own, with a warning naming it.
std::string DropRefusedOptions(const std::string& list, const CliIo& io, const std::string& prog) {
  std::string kept;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    MountConfig scratch;
    Status s = ParseMountOptions(item, &scratch);
    if (!s.ok()) {
      *io.err << prog << ": ignoring (sloppy): " << s.message() << "\n";
      continue;
    }
    kept += kept.empty() ? item : "," + item;
  }
  return kept;
}

// Whether the filesystem on `mountpoint` answers a statfs (which FUSE hands to the daemon) and
// is a FUSE mount. Runs the call in a child process, which can be killed should the daemon
// hang. Fills *why on failure.
bool MountAnswers(const std::string& mountpoint, std::string* why) {
  pid_t pid = fork();
  if (pid < 0) {
    *why = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    struct statfs st;
    if (statfs(mountpoint.c_str(), &st) != 0) _exit(errno > 0 && errno < 255 ? errno : EIO);
    _exit(st.f_type == kFuseSuperMagic ? 0 : 255);
  }
  const auto deadline = std::chrono::steady_clock::now() + kAnswerTimeout;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      *why = std::string("waitpid: ") + std::strerror(errno);
      return false;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      *why = "it did not answer within " + std::to_string(kAnswerTimeout.count()) + " s";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 255) {
    *why = "no FUSE filesystem is mounted there";
  } else if (WIFEXITED(status)) {
    *why = std::string("statfs: ") + std::strerror(WEXITSTATUS(status));
  } else {
    *why = "the statfs probe died";
  }
  return false;
}

// `fusermount3 -uz MOUNTPOINT`: the lazy unmount a non-root user may do. Best effort.
void LazyUnmountAsUser(const std::string& mountpoint) {
  pid_t pid = fork();
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      dup2(null_fd, 1);
      dup2(null_fd, 2);
    }
    execlp("fusermount3", "fusermount3", "-uz", mountpoint.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status;
  while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

int MountHelperMain(const std::vector<std::string>& args, const CliIo& io) {
  const std::string prog = args.empty() ? "mount.rankfs" : BaseName(args[0]);
  HelperArgs h;
  if (int rc = ParseArgs(args, io, prog, &h); rc >= 0) return rc;

  FstabOptionSplit split = StripFstabOptions(h.options);
  if (h.verbose && !split.fstab_only.empty()) {
    *io.out << prog << ": ignoring fstab-only options:";
    for (const std::string& o : split.fstab_only) *io.out << " " << o;
    *io.out << "\n";
  }
  std::string options = split.mount_options;
  if (h.sloppy) options = DropRefusedOptions(options, io, prog);
  MountConfig cfg = DefaultMountConfig();
  if (Status s = ParseMountOptions(options, &cfg); !s.ok()) {
    *io.err << prog << ": " << s.message() << "\n";
    return kMountExitUsage;
  }
  if (cfg.debug) {
    // RunMount keeps a debug daemon in the foreground, which would block mount(8) forever.
    *io.err << prog << ": mount option 'debug' keeps the daemon in the foreground; run "
            << "'rankfs mount -d " << h.source << " " << h.mountpoint << "' instead\n";
    return kMountExitUsage;
  }
  struct stat st;
  if (stat(h.mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *io.err << prog << ": mountpoint '" << h.mountpoint << "' is not an existing directory\n";
    return kMountExitFailure;
  }
  if (h.fake) {
    if (h.verbose) {
      *io.out << prog << ": would mount " << h.source << " on " << h.mountpoint << " -o "
              << (options.empty() ? "(none)" : options) << " (fake: nothing done)\n";
    }
    return 0;
  }
  io.out->flush();
  io.err->flush();
  if (RunMount(h.source, h.mountpoint, cfg, /*foreground=*/false) != 0) {
    return kMountExitFailure;  // RunMount said why on stderr
  }
  char canon[PATH_MAX];
  std::string mnt = realpath(h.mountpoint.c_str(), canon) ? canon : h.mountpoint;
  std::string why;
  if (!MountAnswers(mnt, &why)) {
    *io.err << prog << ": " << h.source << " was mounted on " << mnt
            << " but the mount does not answer (" << why << "); detaching it\n";
    if (umount2(mnt.c_str(), MNT_DETACH) != 0) LazyUnmountAsUser(mnt);
    return kMountExitFailure;
  }
  if (h.verbose) *io.out << prog << ": mounted " << h.source << " on " << mnt << "\n";
  return 0;
}

}  // namespace rankfs
