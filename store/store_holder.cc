#include "store/store_holder.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace rankfs {

StoreHolder ThisProcessAsHolder(const std::string& mountpoint, const std::string& device) {
  StoreHolder h;
  h.pid = getpid();
  h.start_ticks = ProcessStartTicks(h.pid);
  h.mountpoint = mountpoint;
  h.device = device;
  return h;
}

Status WriteStoreHolder(const std::string& store_dir, const StoreHolder& holder) {
  const std::string path = store_dir + "/" + kStoreHolderName;
  const std::string tmp = path + ".tmp." + std::to_string(holder.pid);
  std::string text = "pid=" + std::to_string(holder.pid) + "\n" +
                     "start_ticks=" + std::to_string(holder.start_ticks) + "\n" +
                     "device=" + holder.device + "\n" + "mountpoint=" + holder.mountpoint + "\n";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("open", tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = Status::FromErrno("write", tmp);
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    done += size_t(n);
  }
  if (close(fd) != 0) {
    Status s = Status::FromErrno("close", tmp);
    unlink(tmp.c_str());
    return s;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Status::FromErrno("rename", tmp + " -> " + path);
    unlink(tmp.c_str());
    return s;
  }
  return Status::Ok();
}

Result<StoreHolder> ReadStoreHolder(const std::string& store_dir) {
  const std::string path = store_dir + "/" + kStoreHolderName;
  std::ifstream in(path);
  if (!in) return Status::FromErrno(errno == 0 ? ENOENT : errno, "open", path);
  StoreHolder h;
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "pid") {
      h.pid = pid_t(std::strtol(value.c_str(), nullptr, 10));
    } else if (key == "start_ticks") {
      h.start_ticks = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "device") {
      h.device = value;
    } else if (key == "mountpoint") {
      h.mountpoint = value;
    }
  }
  if (h.pid <= 0 || h.start_ticks == 0 || h.device.empty()) {
    return Status(EINVAL, path + ": not a complete holder record");
  }
  return h;
}

uint64_t ProcessStartTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  // "PID (COMM) S PPID ...": COMM may hold spaces and parentheses; it ends at the last ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  // Fields from 3 (state) on; start time is field 22.
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3 && (field == "Z" || field == "X")) return 0;
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return 0;
}

bool HolderAlive(const StoreHolder& holder) {
  return holder.pid > 0 && ProcessStartTicks(holder.pid) == holder.start_ticks;
}

}  // namespace rankfs
