// `rankfs fsck STORE [--repair]`: runs Fsck (store/fsck.h) and prints its report. Exit status
// as e2fsck: 0 clean, 1 errors corrected, 4 errors left uncorrected (1+4 = 5 when both),
// 8 operational error (the store is in use, missing or unreadable), 16 usage error.
#include "mount-helper/cli.h"
#include "mount-helper/cli_util.h"
#include "store/fsck.h"

namespace rankfs {
namespace {

constexpr OfflineCommand kFsck = {
    .name = "fsck",
    .usage = "usage: rankfs fsck STORE [--repair] [--wait SECS]\n",
    .exit_failed = kFsckExitOperational,
    .exit_usage = 16,  // e2fsck: usage or syntax error
};

void PrintFsckHelp(std::ostream& os) {
  os << kFsck.usage
     << "\nChecks a store that no daemon has open (unmount it first):\n"
        "  - every pack file: readable header, and whether it holds any indexed chunk;\n"
        "  - every indexed chunk: read back, CRC32C, decompressed, SHA-256 compared; damaged\n"
        "    chunks are listed with the inodes and file offsets that use them;\n"
        "  - reference counts recounted from the extents; extents naming missing chunks;\n"
        "  - orphan inodes, and records of inodes that do not exist.\n\n"
        "  --repair   rebuild reference counts, drop orphan inodes' data and unused index\n"
        "             entries, delete packs that hold no indexed chunk, and list every change.\n"
        "             Damaged or missing chunks are reported, not hidden: delete or rewrite the\n"
        "             files named (find MOUNTPOINT -inum INODE).\n\n"
        "  --wait SECS  how long to wait for a rankfs daemon whose mount is gone to finish\n"
        "             closing the store (default 60); a mounted store is refused at once\n\n"
        "Exit status (as e2fsck): 0 clean, 1 errors corrected, 4 errors left uncorrected,\n"
        "8 operational error (store in use, missing or unreadable), 16 usage error.\n";
}

void PrintReport(std::ostream& os, const std::string& dir, const FsckReport& r, bool repair) {
  os << "rankfs fsck " << dir << (repair ? " (repair)" : "") << "\n"
     << "  " << r.packs << " pack(s) (" << HumanBytes(r.pack_bytes) << "), " << r.chunks
     << " chunk(s) (" << HumanBytes(r.chunk_bytes) << " verified), " << r.extents << " extent(s), "
     << r.inodes << " inode(s), " << r.orphans << " orphan(s)\n";
  if (r.unindexed_records > 0) {
    os << "  " << r.unindexed_records << " unindexed record(s) (" << HumanBytes(r.unindexed_bytes)
       << ") in packs: leftovers of released chunks, punched out at the next mount\n";
  }
  for (const FsckFinding& f : r.findings) {
    os << FsckIssueName(f.issue) << ": " << f.message << (f.repaired ? "  [repaired]" : "") << "\n";
    for (const std::string& d : f.details) os << "    " << d << "\n";
  }
  if (!r.changes.empty()) {
    os << "changes made:\n";
    for (const std::string& c : r.changes) os << "  " << c << "\n";
  }
  const size_t fixed = r.Repaired(), left = r.Unrepaired();
  if (r.findings.empty()) {
    os << dir << ": clean\n";
    return;
  }
  os << dir << ": " << r.findings.size() << " error(s) found, " << fixed << " corrected, " << left
     << " left uncorrected\n";
  bool repairable = false, lost_data = false;
  for (const FsckFinding& f : r.findings) {
    if (f.repaired) continue;
    const bool data = f.issue == FsckIssue::kDamagedChunk || f.issue == FsckIssue::kMissingChunk ||
                      f.issue == FsckIssue::kExtentOutOfRange;
    (data ? lost_data : repairable) = true;
  }
  if (repairable && !repair) {
    os << "run 'rankfs fsck --repair " << dir << "' to correct what can be corrected\n";
  }
  if (lost_data) {
    os << "damaged or missing chunks cannot be rebuilt: delete or rewrite the files listed "
          "above (find MOUNTPOINT -inum INODE), then run fsck again\n";
  }
}

}  // namespace

int FsckCommand(const std::vector<std::string>& args, const CliIo& io) {
  bool repair = false;
  std::chrono::milliseconds close_wait = kDefaultCloseWait;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      PrintFsckHelp(*io.out);
      return 0;
    } else if (a == "--repair") {
      repair = true;
    } else if (a == "--wait") {
      if (++i == args.size()) return OfflineUsageError(kFsck, io, "--wait needs SECS");
      if (!ParseSeconds(args[i], &close_wait)) {
        return OfflineUsageError(kFsck, io, "--wait '" + args[i] + "' is not a number of seconds");
      }
    } else if (a.size() > 1 && a[0] == '-') {
      return OfflineUsageError(kFsck, io, "unknown flag '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 1) return OfflineUsageError(kFsck, io, "needs one STORE directory");
  const std::string& dir = positional[0];
  FsckOptions options;
  options.repair = repair;
  return RunOfflineCommand(
      kFsck, dir, options, &Fsck, close_wait,
      [&](const FsckReport& report) {
        PrintReport(*io.out, dir, report, repair);
        return report.ExitCode();
      },
      io);
}

}  // namespace rankfs
