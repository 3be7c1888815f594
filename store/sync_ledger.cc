#include "store/sync_ledger.h"

#include <algorithm>

namespace rankfs {

void SyncLedger::File::Wrote(uint64_t end) {
  std::lock_guard<std::mutex> l(mu);
  dirty = true;
  size = std::max(size, end);
}

void SyncLedger::File::Truncated(uint64_t new_size) {
  std::lock_guard<std::mutex> l(mu);
  dirty = true;
  size = new_size;
  synced_size = std::min(synced_size, new_size);
}

uint64_t SyncLedger::File::SizeBeforeSync() {
  std::lock_guard<std::mutex> l(mu);
  return size;
}

void SyncLedger::File::Synced(uint64_t at) {
  std::lock_guard<std::mutex> l(mu);
  synced_size = std::max(synced_size, std::min(at, size));
  ever_synced = true;
}

uint64_t SyncLedger::File::SyncFailed() {
  std::lock_guard<std::mutex> l(mu);
  size = std::min(size, synced_size);
  return synced_size;
}

std::shared_ptr<SyncLedger::File> SyncLedger::Track(const std::string& path, bool created,
                                                    uint64_t size) {
  std::lock_guard<std::mutex> l(mu_);
  std::shared_ptr<File>& f = files_[path];
  if (f == nullptr || created) {
    f = std::make_shared<File>();
    f->created = created;
    f->size = f->synced_size = created ? 0 : size;
  }
  return f;
}

void SyncLedger::Renamed(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(mu_);
  // The file at `to` is replaced: its state goes, and the renamed file's follows it.
  auto node = files_.extract(from);
  files_.erase(to);
  if (!node.empty()) {
    node.key() = to;
    files_.insert(std::move(node));
  }
}

void SyncLedger::Deleted(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  files_.erase(path);
}

Status SyncLedger::DropUnsynced(const FileOps& ops) {
  std::map<std::string, std::shared_ptr<File>> files;
  {
    std::lock_guard<std::mutex> l(mu_);
    files.swap(files_);
  }
  Status first;
  auto note = [&first](const Status& s, const char* op, const std::string& path) {
    if (!s.ok() && s.code() != ENOENT && first.ok()) {
      first = s.Annotate(std::string("dropping unsynced data: ") + op + " " + path);
    }
  };
  for (const auto& [path, f] : files) {
    std::lock_guard<std::mutex> l(f->mu);
    if (f->created && !f->ever_synced) {
      note(ops.remove(path), "delete", path);
      continue;
    }
    if (!f->dirty) continue;
    // The real size, not the tracked one: bytes written behind the wrapper's back go too.
    Result<uint64_t> size = ops.size(path);
    if (!size.ok()) {
      note(size.status(), "size of", path);
    } else if (*size > f->synced_size) {
      note(ops.truncate(path, f->synced_size), "truncate", path);
    }
  }
  return first;
}

}  // namespace rankfs
