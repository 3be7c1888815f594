#include "tests/testutil/crash_workload.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "store/types.h"

namespace rankfs {

namespace {

const char* KindName(int kind) {
  static const char* const kNames[] = {"fsyncer", "unsynced", "renamer", "deleter"};
  return kNames[kind];
}

std::string Err(int rc) { return rc < 0 ? std::strerror(-rc) : "ok"; }

// Why `got` is not an allowed content for a file with `full` written and its first
// `synced_size` bytes fsync'd; "" when it is allowed.
std::string CheckBytes(const std::string& got, const std::string& full, size_t synced_size,
                       size_t* unsynced_bytes, size_t* unsynced_zero) {
  if (got.size() > full.size()) {
    return "is " + std::to_string(got.size()) + " bytes, longer than the " +
           std::to_string(full.size()) + " written";
  }
  if (got.size() < synced_size) {
    return "is " + std::to_string(got.size()) + " bytes, shorter than the " +
           std::to_string(synced_size) + " fsync'd";
  }
  for (size_t i = 0; i < synced_size; ++i) {
    if (got[i] != full[i]) return "fsync'd byte " + std::to_string(i) + " differs";
  }
  for (size_t i = synced_size; i < got.size(); ++i) {
    if (got[i] == full[i]) continue;
    if (got[i] != '\0') {
      return "unsynced byte " + std::to_string(i) + " is neither the written byte nor zero";
    }
    ++*unsynced_zero;
  }
  *unsynced_bytes += got.size() - synced_size;
  return "";
}

std::string BaseName(const std::string& name) { return name.substr(name.rfind('/') + 1); }

}  // namespace

std::string ContentDigest(std::string_view data) {
  return ChunkHash::Of(data).ToHex() + ":" + std::to_string(data.size());
}

std::vector<std::string> VerifySnapshot(CrashTarget* target, const std::string& dir,
                                        const DirSnapshot& snapshot) {
  std::vector<std::string> bad;
  std::vector<std::string> names;
  int rc = target->ListDir(dir, &names);
  if (rc != 0) return {"listing " + dir + ": " + Err(rc)};
  std::set<std::string> seen(names.begin(), names.end());
  for (const auto& [name, digest] : snapshot) {
    if (!seen.count(BaseName(name))) {
      bad.push_back(name + " vanished");
      continue;
    }
    std::string got;
    rc = target->ReadFile(name, &got);
    if (rc != 0) {
      bad.push_back("reading " + name + ": " + Err(rc));
    } else if (ContentDigest(got) != digest) {
      bad.push_back(name + " changed since it was last checked");
    }
  }
  if (seen.size() != snapshot.size()) {
    bad.push_back(dir + " holds " + std::to_string(seen.size()) + " names, expected " +
                  std::to_string(snapshot.size()));
  }
  return bad;
}

CrashWorkload::CrashWorkload(CrashTarget* target, CrashWorkloadOptions options)
    : target_(target), options_(std::move(options)) {}

CrashWorkload::~CrashWorkload() {
  MarkCrash();
  Join();
}

void CrashWorkload::Start() {
  for (int k = 0; k < kNumKinds; ++k) {
    for (int i = 0; i < options_.writers_per_kind; ++i) {
      auto w = std::make_unique<Writer>();
      w->id = int(writers_.size());
      w->kind = Kind(k);
      writers_.push_back(std::move(w));
    }
  }
  for (auto& w : writers_) w->thread = std::thread([this, p = w.get()] { RunWriter(p); });
}

void CrashWorkload::MarkCrash() { crashed_.store(true); }

void CrashWorkload::Join() {
  for (auto& w : writers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

std::vector<std::string> CrashWorkload::Errors() const {
  std::vector<std::string> all;
  for (const auto& w : writers_) all.insert(all.end(), w->errors.begin(), w->errors.end());
  return all;
}

size_t CrashWorkload::files_created() const {
  size_t n = 0;
  for (const auto& w : writers_) {
    for (const FileRec& f : w->files) n += f.create_done;
  }
  return n;
}

bool CrashWorkload::Ok(Writer* w, int rc, const std::string& what) {
  if (rc >= 0) {
    w->failed_in_a_row = 0;
    return true;
  }
  if (crashed_.load()) return false;
  if (options_.faults && (rc == -EIO || rc == -ENOSPC)) {
    injected_errors_.fetch_add(1);
    ++w->failed_in_a_row;
    return false;
  }
  w->errors.push_back(std::string(KindName(w->kind)) + " " + std::to_string(w->id) + ": " + what +
                      ": " + Err(rc));
  return false;
}

void CrashWorkload::RunWriter(Writer* w) {
  std::mt19937_64 rng(options_.seed * 1000003 + uint64_t(w->id));
  for (int n = 0; !crashed_.load(); ++n) {
    if (!RunFile(w, n, rng)) return;
  }
}

bool CrashWorkload::RunFile(Writer* w, int n, std::mt19937_64& rng) {
  // After a failed call: go on with the next file when faults are injected and no error was
  // recorded, else stop. A filesystem that fails everything (its metadata store stopped after
  // a failed WAL sync) stops the writer too, rather than spin until the crash.
  auto go_on = [&] {
    return options_.faults && w->errors.empty() && !crashed_.load() && w->failed_in_a_row < 64;
  };
  const std::string& pool = *options_.pool;
  const std::string prefix = options_.dir + "/w" + std::to_string(w->id) + "_";
  w->files.emplace_back();
  FileRec& f = w->files.back();
  f.name = prefix + (w->kind == kRenamer ? "tmp" : "f") + std::to_string(n);
  // Mostly up to max_file_bytes, sometimes tiny.
  const size_t size = rng() % 5 == 0 ? rng() % 200 : 1 + rng() % options_.max_file_bytes;
  const size_t from = rng() % (pool.size() - 2 * options_.max_file_bytes);
  const int h = target_->Create(f.name);
  if (!Ok(w, h, "create " + f.name)) {
    // A create that failed may still have made the name (an unknown outcome): it may be there.
    return go_on();
  }
  f.create_done = true;
  f.create_tick = Tick();
  // Writes of 8 KiB mostly, some larger (as the workloads rankfs serves).
  auto write_range = [&](size_t begin, size_t end) {
    for (size_t off = begin; off < end && !crashed_.load();) {
      size_t len = rng() % 4 == 0 ? 1 + rng() % (192 << 10) : 8192;
      len = std::min(len, end - off);
      // The bytes are in the ledger before the call: a failed write may have landed.
      f.full.append(pool, from + off, len);
      if (!Ok(w, target_->Write(h, off, std::string_view(pool).substr(from + off, len)),
              "write " + f.name)) {
        return false;
      }
      off += len;
    }
    return !crashed_.load();
  };
  // A synced write of metadata: every namespace change that completed before it started is
  // durable once it returns.
  auto made_durable = [&](uint64_t start) {
    uint64_t e = durable_epoch_.load();
    while (e < start && !durable_epoch_.compare_exchange_weak(e, start)) {
    }
  };
  auto fsync = [&] {
    // With faults injected, a failed fsync is tried again: the one that returns must cover
    // everything written before it, including what the failed one did not store.
    for (int attempt = 0; attempt < (options_.faults ? 8 : 1); ++attempt) {
      const uint64_t start = Tick();
      const size_t size_now = f.full.size();
      if (!Ok(w, target_->Fsync(h), "fsync " + f.name)) {
        if (go_on()) continue;
        return false;
      }
      f.synced = true;
      f.synced_size = size_now;
      fsyncs_ok_.fetch_add(1);
      made_durable(start);
      return true;
    }
    return false;
  };
  bool ok = write_range(0, size);
  if (ok && w->kind != kUnsynced) ok = fsync();
  if (ok && w->kind == kFsyncer && rng() % 3 == 0) {
    ok = write_range(size, size + 1 + rng() % (options_.max_file_bytes / 2));
  }
  const bool close_first = !ok || w->kind != kDeleter || rng() % 2 == 0;
  if (close_first) {
    const int rc = target_->Close(h);
    if (ok) ok = Ok(w, rc, "close " + f.name);
  }
  if (ok && w->kind == kRenamer) {
    f.final_name = prefix + "final" + std::to_string(n % 3);
    f.rename_issued = true;
    ok = Ok(w, target_->Rename(f.name, f.final_name), "rename " + f.name);
    if (ok) {
      f.rename_done = true;
      f.rename_tick = Tick();
      // The careful program's last step: the directory's entries are durable after this.
      const uint64_t start = Tick();
      ok = Ok(w, target_->FsyncDir(options_.dir), "fsync directory " + options_.dir);
      if (ok) made_durable(start);
    }
  }
  if (ok && w->kind == kDeleter) {
    f.unlink_issued = true;
    ok = Ok(w, target_->Unlink(f.name), "unlink " + f.name);
    if (ok) {
      f.unlink_done = true;
      f.unlink_tick = Tick();
    }
  }
  if (!close_first) {
    const int rc = target_->Close(h);
    if (ok) ok = Ok(w, rc, "close " + f.name);
  }
  return ok || go_on();
}

std::vector<std::string> CrashWorkload::Verify(CrashTarget* after, CrashVerifyStats* stats,
                                               DirSnapshot* snapshot) const {
  std::vector<std::string> bad;
  std::vector<std::string> names;
  int rc = after->ListDir(options_.dir, &names);
  if (rc == -ENOENT && fsyncs_ok_.load() == 0) {
    // The directory was made before the writers started; without a returned fsync its mkdir
    // need not be durable. The rules below still apply (to an empty directory).
    names.clear();
  } else if (rc != 0) {
    return {"listing " + options_.dir + ": " + Err(rc) +
            (rc == -ENOENT ? " (its mkdir preceded a returned fsync)" : "")};
  }
  std::map<std::string, std::string> present;  // DIR/NAME -> content
  for (const std::string& n : names) {
    const std::string name = options_.dir + "/" + n;
    std::string got;
    rc = after->ReadFile(name, &got);
    if (rc != 0) {
      bad.push_back("reading " + name + ": " + Err(rc));
      continue;
    }
    present[name] = std::move(got);
  }
  std::set<std::string> expected_names;
  for (const auto& w : writers_) {
    // The final names of a renamer: the versions renamed onto each, in order.
    std::map<std::string, std::vector<const FileRec*>> finals;
    for (const FileRec& f : w->files) {
      if (f.rename_issued) finals[f.final_name].push_back(&f);
    }
    for (const FileRec& f : w->files) {
      expected_names.insert(f.name);
      const bool gone_issued = f.rename_issued || f.unlink_issued;
      const bool gone_durable =
          Durable(f.rename_done, f.rename_tick) || Durable(f.unlink_done, f.unlink_tick);
      const bool must_exist = !gone_issued && (f.synced || Durable(f.create_done, f.create_tick));
      auto it = present.find(f.name);
      if (it == present.end()) {
        if (must_exist) {
          bad.push_back(f.name + " is missing, but " +
                        (f.synced ? "its fsync returned" : "its create was made durable"));
        } else {
          ++stats->absent_optional;
        }
        continue;
      }
      if (gone_durable) {
        bad.push_back(f.name + " is back, but its " +
                      (f.rename_issued ? "rename" : "unlink") + " was made durable");
        continue;
      }
      ++stats->files;
      // A name being renamed or deleted holds its fsync'd version, if present at all.
      std::string why = CheckBytes(it->second, f.full, f.synced ? f.synced_size : 0,
                                   &stats->unsynced_bytes, &stats->unsynced_zero);
      if (!why.empty()) {
        bad.push_back(f.name + " (" + (f.synced ? "fsync'd" : "never fsync'd") + ") " + why);
      } else if (f.synced) {
        ++stats->synced_exact;
      }
    }
    for (const auto& [final_name, versions] : finals) {
      expected_names.insert(final_name);
      // The last version whose rename was made durable; it or a later one must be there.
      int last_durable = -1;
      for (size_t i = 0; i < versions.size(); ++i) {
        if (Durable(versions[i]->rename_done, versions[i]->rename_tick)) last_durable = int(i);
      }
      auto it = present.find(final_name);
      int holds = -1;  // which version the final name holds
      if (it != present.end()) {
        for (size_t i = 0; i < versions.size(); ++i) {
          if (it->second == versions[i]->full) holds = int(i);
        }
        ++stats->files;
        if (holds < 0) {
          bad.push_back(final_name + " holds none of the " + std::to_string(versions.size()) +
                        " fsync'd versions renamed onto it");
        } else if (holds < last_durable) {
          bad.push_back(final_name + " holds version " + std::to_string(holds) +
                        ", older than the durable rename of version " +
                        std::to_string(last_durable));
        } else {
          ++stats->synced_exact;
        }
      } else if (last_durable >= 0) {
        bad.push_back(final_name + " is missing, but a rename onto it was made durable");
      }
      // No fsync'd version is lost: it is under its tmp name, or the final name holds it (or
      // a later version).
      for (size_t i = 0; i < versions.size(); ++i) {
        if (!present.count(versions[i]->name) && holds < int(i)) {
          bad.push_back("fsync'd " + versions[i]->name + " is neither under its name nor " +
                        final_name);
        }
      }
    }
  }
  for (const auto& [name, content] : present) {
    if (!expected_names.count(name)) bad.push_back(name + " exists, but no writer created it");
    if (snapshot) (*snapshot)[name] = ContentDigest(content);
  }
  return bad;
}

}  // namespace rankfs
