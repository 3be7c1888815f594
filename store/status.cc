#include "store/status.h"

#include <cstring>

namespace rankfs {

std::string ErrnoString(int err) {
  char buf[128];
  // GNU strerror_r returns the message, in buf or in static storage.
  return std::string(strerror_r(err, buf, sizeof buf));
}

Status Status::FromErrno(std::string_view op, std::string_view what) {
  return FromErrno(errno, op, what);
}

Status Status::FromErrno(int err, std::string_view op, std::string_view what) {
  std::string msg(op);
  if (!what.empty()) {
    msg += " ";
    msg += what;
  }
  msg += ": ";
  msg += ErrnoString(err);
  return Status(err == 0 ? EIO : err, std::move(msg));
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return message_ + " (errno " + std::to_string(code_) + ")";
}

Status Status::Annotate(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

}  // namespace rankfs
