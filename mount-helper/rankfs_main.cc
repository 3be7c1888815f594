// rankfs: the command-line tool. Only parses the command line; the work is in fs/daemon.cc.
//
//   rankfs --version | --help
//   rankfs mount STORE MOUNTPOINT [-o OPTIONS]... [-f] [-d]
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fs/daemon.h"
#include "fs/mount_options.h"

namespace {

constexpr char kUsage[] = "usage: rankfs mount STORE MOUNTPOINT [-o OPTIONS] [-f] [-d]\n";

void PrintHelp() {
  std::printf(
      "rankfs %s: a deduplicating FUSE filesystem for per-rank training caches\n\n"
      "%s"
      "       rankfs --version | --help\n\n"
      "  -f           stay in the foreground (default: run as a daemon)\n"
      "  -d           debug: foreground, log every FUSE request\n"
      "  -o OPTIONS   comma-separated mount options:\n"
      "     compress=N (0..19), chunk_min=, chunk_avg=, chunk_max= (new store only)\n"
      "     cache_size=SIZE, write_buffer=SIZE, entry_timeout=S, attr_timeout=S\n"
      "     xattr=on|off, writeback_cache=on|off, uid=N, gid=N, umask=OOO, fsname=NAME\n"
      "     allow_other, default_permissions, debug, ro, rw, nosuid, nodev, noexec,\n"
      "     suid, dev, exec, noatime, atime, relatime, auto_unmount\n"
      "  SIZE takes a K, M or G suffix. Unmount with: fusermount3 -u MOUNTPOINT\n",
      RANKFS_VERSION, kUsage);
}

int UsageError(const std::string& why) {
  std::fprintf(stderr, "rankfs: %s\n%s", why.c_str(), kUsage);
  return 2;
}

int Mount(int argc, char** argv) {
  std::vector<std::string> positional;
  std::string options;
  bool foreground = false, debug = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-f") {
      foreground = true;
    } else if (arg == "-d") {
      debug = true;
    } else if (arg == "-o" || arg.starts_with("-o")) {
      std::string list = arg.size() > 2 ? arg.substr(2) : "";
      if (list.empty()) {
        if (++i == argc) return UsageError("-o needs an option list");
        list = argv[i];
      }
      options += options.empty() ? list : "," + list;
    } else if (arg.starts_with("-") && arg != "-") {
      return UsageError("unknown flag '" + arg + "'");
    } else {
      positional.push_back(std::move(arg));
    }
  }
  if (positional.size() != 2) return UsageError("mount needs STORE and MOUNTPOINT");
  rankfs::MountConfig cfg;
  // All -o lists are parsed as one, so chunk sizes given in different lists are checked together.
  rankfs::Status s = rankfs::ParseMountOptions(options, &cfg);
  if (!s.ok()) return UsageError(s.message());
  cfg.debug = cfg.debug || debug;
  return rankfs::RunMount(positional[0], positional[1], cfg, foreground);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return UsageError("missing command");
  std::string cmd = argv[1];
  if (cmd == "--version" || cmd == "-V") {
    std::printf("rankfs %s\n", RANKFS_VERSION);
    return 0;
  }
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    PrintHelp();
    return 0;
  }
  if (cmd == "mount") return Mount(argc - 2, argv + 2);
  return UsageError("unknown command '" + cmd + "'");
}
