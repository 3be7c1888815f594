#include "fs/mountinfo.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace rankfs {
namespace {

// Undoes mountinfo's octal escapes ("\040" for a space, "\012" for a newline).
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(char(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::vector<MountEntry> ReadMountinfo(const std::string& path) {
  std::vector<MountEntry> entries;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    // "36 35 0:38 / /mnt rw,relatime shared:1 - fuse.rankfs /store rw,...": optional fields
    // run up to "-"; the filesystem type and source follow it.
    std::istringstream fields(line);
    std::string id, parent, device, root, point, options, field, fstype, source;
    if (!(fields >> id >> parent >> device >> root >> point >> options)) continue;
    while (fields >> field && field != "-") {
    }
    if (field != "-" || !(fields >> fstype >> source)) continue;
    entries.push_back(MountEntry{device, Unescape(point), fstype, Unescape(source)});
  }
  return entries;
}

std::optional<MountEntry> FindMount(const std::string& mountpoint) {
  std::optional<MountEntry> found;
  for (MountEntry& e : ReadMountinfo("/proc/self/mountinfo")) {
    if (e.mountpoint == mountpoint) found = std::move(e);
  }
  return found;
}

}  // namespace rankfs
