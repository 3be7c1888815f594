// `rankfs`: dispatches to its commands and implements `rankfs mount`. The mount daemon is in
// fs/daemon.cc, the other commands in cli_stats.cc, cli_fsck.cc and cli_gc.cc.
#include <unistd.h>

#include <iostream>

#include "fs/daemon.h"
#include "fs/mount_options.h"
#include "mount-helper/cli.h"

namespace rankfs {
namespace {

constexpr char kUsage[] =
    "usage: rankfs mount STORE MOUNTPOINT [-o OPTIONS] [-f] [-d]\n"
    "       rankfs stats MOUNTPOINT [--json | --prometheus]\n"
    "       rankfs unmount MOUNTPOINT [--timeout SECS] [--store STORE]\n"
    "       rankfs fsck STORE [--repair] [--wait SECS]\n"
    "       rankfs gc STORE [--threshold PCT] [--dry-run] [--wait SECS]\n"
    "       rankfs --version | --help\n";

void PrintHelp(std::ostream& os) {
  os << "rankfs " << RANKFS_VERSION
     << ": a deduplicating FUSE filesystem for per-rank training caches\n\n"
     << kUsage
     << "\n"
        "commands (each takes --help):\n"
        "  mount   serve STORE (created at the first mount) on MOUNTPOINT\n"
        "  unmount unmount, and return once the daemon has released the store\n"
        "  stats   print a mount's statistics, as text, JSON or Prometheus metrics\n"
        "  fsck    check a store that is not mounted; --repair fixes what it can\n"
        "  gc      compact the packs of a store that is not mounted\n\n"
        "rankfs /STORE MOUNTPOINT -o OPTIONS is what mount.fuse3 runs for fstab entries of type\n"
        "fuse.rankfs; it works like mount.rankfs (see mount.rankfs --help, docs/fstab.md).\n";
}

void PrintMountHelp(std::ostream& os) {
  os << "usage: rankfs mount STORE MOUNTPOINT [-o OPTIONS]... [-f] [-d]\n\n"
        "  -f           stay in the foreground (default: run as a daemon, exit once mounted)\n"
        "  -d           debug: foreground, log every FUSE request\n"
        "  -o OPTIONS   comma-separated mount options:\n"
        "     compress=N (0..19), chunk_min=, chunk_avg=, chunk_max= (new store only)\n"
        "     cache_size=SIZE, write_buffer=SIZE, lazy_close=S, entry_timeout=S, attr_timeout=S\n"
        "     xattr=on|off, writeback_cache=on|off, page_fill=on|off, uid=N, gid=N,\n"
        "     umask=OOO, fsname=NAME, fuse_threads=N (2..64)\n"
        "     allow_other, default_permissions, debug, ro, rw, nosuid, nodev, noexec,\n"
        "     suid, dev, exec, noatime, atime, relatime, auto_unmount\n"
        "  SIZE takes a K, M or G suffix. uid=, gid=, umask= and the chunk and compress\n"
        "  settings apply to a new store only; its root directory belongs to the mounting\n"
        "  user unless uid=/gid= say otherwise. Unmount with: rankfs unmount MOUNTPOINT\n";
}

int UsageError(const CliIo& io, const std::string& why) {
  *io.err << "rankfs: " << why << "\n" << kUsage;
  return 2;
}

int MountCommand(const std::vector<std::string>& args, const CliIo& io) {
  std::vector<std::string> positional;
  std::string options;
  bool foreground = false, debug = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      PrintMountHelp(*io.out);
      return 0;
    } else if (arg == "-f") {
      foreground = true;
    } else if (arg == "-d") {
      debug = true;
    } else if (arg.starts_with("-o")) {
      std::string list = arg.substr(2);
      if (list.empty()) {
        if (++i == args.size()) return UsageError(io, "-o needs an option list");
        list = args[i];
      }
      options += options.empty() ? list : "," + list;
    } else if (arg.starts_with("-") && arg != "-") {
      return UsageError(io, "unknown flag '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) return UsageError(io, "mount needs STORE and MOUNTPOINT");
  MountConfig cfg = DefaultMountConfig();
  // All -o lists are parsed as one, so chunk sizes given in different lists are checked together.
  if (Status s = ParseMountOptions(options, &cfg); !s.ok()) return UsageError(io, s.message());
  cfg.debug = cfg.debug || debug;
  io.out->flush();
  io.err->flush();
  return RunMount(positional[0], positional[1], cfg, foreground);
}

}  // namespace

MountConfig DefaultMountConfig() {
  MountConfig cfg;
  cfg.fs.root_uid = getuid();
  cfg.fs.root_gid = getgid();
  return cfg;
}

CliIo StandardIo() { return CliIo{&std::cout, &std::cerr, isatty(STDOUT_FILENO) == 1}; }

int RankfsMain(const std::vector<std::string>& args, const CliIo& io) {
  if (args.size() < 2) return UsageError(io, "missing command");
  const std::string& cmd = args[1];
  const std::vector<std::string> rest(args.begin() + 2, args.end());
  if (cmd == "--version" || cmd == "-V") {
    *io.out << "rankfs " << RANKFS_VERSION << "\n";
    return 0;
  }
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    PrintHelp(*io.out);
    return 0;
  }
  if (cmd == "mount") return MountCommand(rest, io);
  if (cmd == "stats") return StatsCommand(rest, io);
  if (cmd == "fsck") return FsckCommand(rest, io);
  if (cmd == "gc") return GcCommand(rest, io);
  if (cmd == "unmount") return UnmountCommand(rest, io);
  // mount.fuse3 runs "rankfs SOURCE MOUNTPOINT -o OPTIONS" for type fuse.rankfs (and for
  // rankfs#SOURCE of type fuse) when no mount.fuse.rankfs is installed. No command starts with
  // '/', so an absolute store path is unambiguous.
  if (cmd.starts_with("/")) return MountHelperMain(args, io);
  return UsageError(io, "unknown command '" + cmd + "'");
}

}  // namespace rankfs
