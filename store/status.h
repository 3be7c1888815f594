// Status and Result<T>: how every fallible call in rankfs reports failure.
//
// A Status is either OK or carries an errno-compatible code (ENOENT, EIO, ENOSPC, ...) and a
// message that says what failed and where. Errors never travel as exceptions across a module
// boundary; the FUSE layer turns a Status into an errno in one place.
//
// Thread-safety: values; safe to copy and move between threads.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace rankfs {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {
    if (code_ == 0) code_ = EIO;  // an error constructed with 0 is a bug; never report OK
  }

  static Status Ok() { return Status(); }
  // Builds an error from the current errno, naming the operation and its object.
  static Status FromErrno(std::string_view op, std::string_view what);
  static Status FromErrno(int err, std::string_view op, std::string_view what);

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }  // errno value; 0 when ok()
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Adds context in front of the message: "opening store: <message>".
  Status Annotate(std::string_view context) const;

  // Marks a Status as intentionally dropped, e.g. a best-effort cleanup.
  void IgnoreError() const {}

 private:
  int code_ = 0;
  std::string message_;
};

// The text of an errno value (strerror_r: safe from any thread).
std::string ErrnoString(int err);

inline Status ErrorStatus(int code, std::string message) { return Status(code, std::move(message)); }

// Result<T>: a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status(EIO, "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace rankfs

// Returns early from the enclosing function when `expr` (a Status) is not OK.
#define RANKFS_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::rankfs::Status _rankfs_s = (expr);      \
    if (!_rankfs_s.ok()) return _rankfs_s;    \
  } while (0)

#define RANKFS_CONCAT_INNER(a, b) a##b
#define RANKFS_CONCAT(a, b) RANKFS_CONCAT_INNER(a, b)
// `RANKFS_ASSIGN_OR_RETURN(auto x, Call());` declares x from a Result or returns its Status.
#define RANKFS_ASSIGN_OR_RETURN(decl, expr) \
  RANKFS_ASSIGN_OR_RETURN_IMPL(RANKFS_CONCAT(_rankfs_r_, __LINE__), decl, expr)
#define RANKFS_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  decl = std::move(tmp).value()
