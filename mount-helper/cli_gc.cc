// `rankfs gc STORE [--threshold PCT] [--dry-run]`: runs Gc (store/gc.h) and prints what it did,
// pack by pack. Exit status: 0 done (or nothing to do), 1 the store could not be compacted (in
// use, missing, an I/O error) or a pack was left alone because it holds a damaged chunk (run
// fsck), 2 usage error.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "mount-helper/cli.h"
#include "mount-helper/cli_util.h"
#include "store/gc.h"

namespace rankfs {
namespace {

constexpr OfflineCommand kGc = {
    .name = "gc",
    .usage = "usage: rankfs gc STORE [--threshold PCT] [--dry-run] [--wait SECS]\n",
    .exit_failed = 1,
    .exit_usage = 2,
};

void PrintGcHelp(std::ostream& os) {
  os << kGc.usage
     << "\nCompacts the pack files of a store that no daemon has open (unmount it first).\n"
        "A pack's dead space is its size minus its 32-byte header and the records of the\n"
        "chunks still in use; holes the daemon punched count as dead. Every pack whose dead\n"
        "share reaches the threshold has its live records copied (and checked) into a new\n"
        "pack, the chunk index is pointed at the copies, and the old pack is deleted. Packs\n"
        "that hold no live chunk are deleted. An interrupted gc leaves at worst packs that\n"
        "hold no indexed chunk; the next mount, fsck --repair or gc deletes them.\n\n"
        "  --threshold PCT  dead share that makes a pack worth compacting, 0..100 (default 50)\n"
        "  --dry-run        print what would be done, change nothing\n"
        "  --wait SECS      how long to wait for a rankfs daemon whose mount is gone to finish\n"
        "                   closing the store (default 60); a mounted store is refused at once\n\n"
        "Exit status: 0 done (or nothing to do), 1 failed, or a pack was left alone because\n"
        "it holds a damaged chunk (run rankfs fsck), 2 usage error.\n";
}

int UsageError(const CliIo& io, std::string_view why) { return OfflineUsageError(kGc, io, why); }

// "50", "12.5", "50%" -> percent; false unless a number in [0, 100].
bool ParsePercent(std::string text, double* out) {
  if (text.ends_with("%")) text.pop_back();
  if (text.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v) || v < 0 || v > 100) return false;
  *out = v;
  return true;
}

std::string Percent(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.0f%%", std::floor(v));
  return buf;
}

void PrintReport(std::ostream& os, const std::string& dir, const GcReport& r, double threshold) {
  os << "rankfs gc " << dir << " (" << (r.dry_run ? "dry run, " : "") << "threshold "
     << Percent(threshold) << ")\n"
     << "  " << r.packs << " pack(s): " << HumanBytes(r.pack_bytes) << " in files, "
     << HumanBytes(r.allocated_bytes) << " on disk, " << HumanBytes(r.live_bytes) << " live\n";
  if (r.candidates.empty()) {
    os << "no pack has " << Percent(threshold) << " or more dead space: nothing to do\n";
    return;
  }
  for (const GcPack& c : r.candidates) {
    os << "  pack " << c.pack_id << ": " << HumanBytes(c.file_bytes) << ", ";
    if (c.live_chunks == 0) {
      os << "no live chunk";
    } else {
      os << Percent(c.dead_percent) << " dead, " << c.live_chunks << " live chunk(s) ("
         << HumanBytes(c.live_bytes) << ")";
    }
    if (!c.compacted) {
      os << ": left alone: " << (c.skipped.empty() ? "not reached" : c.skipped) << "\n";
    } else if (c.new_pack_id == 0) {
      os << (r.dry_run ? " -> would be deleted\n" : " -> deleted\n");
    } else {
      os << (r.dry_run ? " -> would move to pack " : " -> moved to pack ") << c.new_pack_id << "\n";
    }
  }
  for (const GcNewPack& n : r.new_packs) {
    os << "  new pack " << n.pack_id << ": " << n.chunks << " chunk(s), " << n.file_bytes
       << " bytes\n";
  }
  os << (r.dry_run ? "would compact " : "compacted ") << r.Compacted() << " pack(s) into "
     << r.new_packs.size() << " new pack(s), " << r.chunks_moved << " chunk(s) "
     << (r.dry_run ? "to move" : "moved") << "\n"
     << "  before: " << r.bytes_before << " bytes in files (" << HumanBytes(r.bytes_before) << "), "
     << r.allocated_before << " bytes on disk (" << HumanBytes(r.allocated_before) << ")\n"
     << "  after:  " << r.bytes_after << " bytes (" << HumanBytes(r.bytes_after) << ")\n";
  if (r.Skipped() > 0) {
    os << r.Skipped() << " pack(s) left alone: run 'rankfs fsck " << dir << "'\n";
  }
  if (r.dry_run) os << "dry run: nothing was changed\n";
}

}  // namespace

int GcCommand(const std::vector<std::string>& args, const CliIo& io) {
  GcOptions options;
  std::chrono::milliseconds close_wait = kDefaultCloseWait;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      PrintGcHelp(*io.out);
      return 0;
    } else if (a == "--dry-run" || a == "-n") {
      options.dry_run = true;
    } else if (a == "--wait") {
      if (++i == args.size()) return UsageError(io, "--wait needs SECS");
      if (!ParseSeconds(args[i], &close_wait)) {
        return UsageError(io, "--wait '" + args[i] + "' is not a number of seconds");
      }
    } else if (a == "--threshold" || a.starts_with("--threshold=")) {
      std::string value;
      if (a == "--threshold") {
        if (++i == args.size()) return UsageError(io, "--threshold needs a percentage");
        value = args[i];
      } else {
        value = a.substr(sizeof("--threshold=") - 1);
      }
      if (!ParsePercent(value, &options.threshold_percent)) {
        return UsageError(io, "--threshold '" + value + "' is not a percentage from 0 to 100");
      }
    } else if (a.size() > 1 && a[0] == '-') {
      return UsageError(io, "unknown flag '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 1) return UsageError(io, "needs one STORE directory");
  const std::string& dir = positional[0];
  return RunOfflineCommand(
      kGc, dir, options, &Gc, close_wait,
      [&](const GcReport& report) {
        PrintReport(*io.out, dir, report, options.threshold_percent);
        // A pack left alone holds damage: the run did not finish its job.
        return report.Skipped() > 0 ? kGc.exit_failed : 0;
      },
      io);
}

}  // namespace rankfs
