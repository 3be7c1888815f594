// TempDir: a fresh directory under /tmp that is removed, with everything in it, when the
// object is destroyed. For tests only: failures to create it abort the test binary.
// Thread-safety: path() may be read from any thread; the object itself is not shared-mutable.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace rankfs {

class TempDir {
 public:
  // Creates /tmp/<prefix>XXXXXX (mkdtemp; mode 0700).
  explicit TempDir(const std::string& prefix = "rankfs-test-") {
    std::string templ = "/tmp/" + prefix + "XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      std::perror(("TempDir: mkdtemp " + templ).c_str());
      std::abort();
    }
    path_ = std::move(templ);
  }
  ~TempDir() {
    if (path_.empty()) return;  // moved from
    std::error_code ec;         // best effort: a leftover directory must not fail a test
    std::filesystem::remove_all(path_, ec);
  }

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&& other) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace rankfs
