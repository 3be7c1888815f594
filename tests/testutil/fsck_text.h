// FsckText: what `Fsck` finds in a closed store, one finding per line ("ISSUE: message"), for
// tests that compare it with what they expect ("" is a clean store). For tests only.
#pragma once

#include <functional>
#include <string>

#include "store/fsck.h"

namespace rankfs {

// The findings `keep` accepts (all of them by default); "fsck failed: ..." when Fsck fails.
// *report, when given, receives the whole report.
inline std::string FsckText(const std::string& store_dir,
                            const std::function<bool(const FsckFinding&)>& keep = nullptr,
                            FsckReport* report = nullptr) {
  auto r = Fsck(store_dir, FsckOptions());
  if (!r.ok()) return "fsck failed: " + r.status().ToString();
  std::string out;
  for (const FsckFinding& f : r->findings) {
    if (!keep || keep(f)) out += std::string(FsckIssueName(f.issue)) + ": " + f.message + "\n";
  }
  if (report != nullptr) *report = std::move(r).value();
  return out;
}

}  // namespace rankfs
