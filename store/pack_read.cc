// PackChunkStore: reading and verifying records, and what counts as damage.
//
// Damage is what the bytes say: a record header that does not match the index, a checksum
// mismatch, a frame that does not decompress, a record cut short, content that does not hash to
// its address, or a pack that is gone. Only damage marks a chunk bad (so that the next Put of the
// same content stores a fresh copy). An error on the way to the bytes (EMFILE, EINTR, an I/O
// error) says nothing about them: it is returned and counted, and the next read tries again.
#include <algorithm>
#include <cstring>
#include <tuple>

#include "store/compressor.h"
#include "store/crc32c.h"
#include "store/logging.h"
#include "store/pack_chunk_store.h"
#include "store/pack_format.h"

namespace rankfs {
namespace {

std::string LocationString(const ChunkLocation& loc) {
  return "pack " + std::to_string(loc.pack_id) + " offset " + std::to_string(loc.offset);
}

// Room for a record read from a pack: a per-thread buffer, reused and never zeroed (a
// zero-filled string per read was part of a tenth of a cold read's CPU spent in memset).
// Records over 1 MiB, which FastCDC's 256 KiB chunks never make, get their own buffer, so
// that no thread keeps a large one. *owned holds it while the caller reads.
char* RecordBuffer(size_t n, std::unique_ptr<char[]>* owned) {
  constexpr size_t kKeep = 1u << 20;
  if (n > kKeep) {
    *owned = std::make_unique_for_overwrite<char[]>(n);
    return owned->get();
  }
  thread_local std::unique_ptr<char[]> buf = std::make_unique_for_overwrite<char[]>(kKeep);
  return buf.get();
}

// The index entry is on-disk input too: a damaged length must not make a read allocate (and
// zero) up to 4 GiB. A record is a header plus at most kMaxChunkBytes.
bool PlausibleLocation(const ChunkLocation& loc) {
  return loc.stored_length <= kMaxChunkBytes && loc.raw_length <= kMaxChunkBytes &&
         loc.record_length == kRecordHeaderSize + uint64_t(loc.stored_length);
}

}  // namespace

bool PackChunkStore::IsBad(const ChunkHash& h) {
  std::lock_guard<std::mutex> l(bad_mu_);
  return bad_.count(h) != 0;
}

void PackChunkStore::ClearBad(const ChunkHash& h) {
  std::lock_guard<std::mutex> l(bad_mu_);
  bad_.erase(h);
}

Result<ChunkLocation> PackChunkStore::Locate(const ChunkHash& hash, uint64_t* refcount) {
  Stripe& s = StripeFor(hash);
  std::unique_lock<std::mutex> l(s.mu);
  RANKFS_ASSIGN_OR_RETURN(Found found, FindLocked(s, l, hash));
  if (found.pending != nullptr) {
    if (found.pending->lost) {
      return Status(EIO, "chunk " + hash.ToHex() + " was lost by a failed sync of its pack");
    }
    if (refcount != nullptr) *refcount = found.pending->refcount;
    return found.pending->location;
  }
  if (!found.committed) return Status(ENOENT, "chunk " + hash.ToHex() + " is not stored");
  if (refcount != nullptr) *refcount = found.committed->refcount;
  return found.committed->location;
}

Status PackChunkStore::Get(const ChunkHash& hash, std::string* out) {
  // Two tries: a record that fails its checks is damage only if the chunk still lives there.
  // A read racing a reclaim (or a healing) finds the range punched under it: it then reads the
  // chunk where it is now, or learns that it is gone, and marks nothing bad.
  for (int attempt = 0;; ++attempt) {
    RANKFS_ASSIGN_OR_RETURN(ChunkLocation loc, Locate(hash));
    std::string damage;
    Status st = ReadChunk(hash, loc, out, &damage);
    if (st.ok()) return st;
    if (damage.empty()) {
      ++stat_read_errors_;
      Log(LogLevel::kError, "chunkstore",
          "reading chunk " + hash.ToHex() + " in " + LocationString(loc) + ": " + st.ToString());
      return st;
    }
    RANKFS_ASSIGN_OR_RETURN(ChunkLocation now, Locate(hash));
    if (now == loc || attempt == 1) return Damaged(hash, LocationString(loc), damage);
  }
}

Status PackChunkStore::Damaged(const ChunkHash& hash, const std::string& where,
                               const std::string& why) {
  ++stat_read_errors_;
  {
    std::lock_guard<std::mutex> l(bad_mu_);
    bad_.insert(hash);
  }
  std::string msg = "chunk " + hash.ToHex() + " in " + where + " is damaged: " + why;
  Log(LogLevel::kError, "chunkstore", msg);
  return Status(EIO, msg);
}

Status PackChunkStore::ReadChunk(const ChunkHash& hash, const ChunkLocation& loc,
                                 std::string* out, std::string* damage) {
  auto damaged = [&](std::string why) {
    *damage = std::move(why);
    return Status(EIO, "chunk " + hash.ToHex() + ": " + *damage);
  };
  Result<std::shared_ptr<File>> file_or = PackFile(loc.pack_id);
  if (!file_or.ok()) {
    // A pack that is gone is damage; one that cannot be opened now (EMFILE, ...) is not.
    if (file_or.status().code() == ENOENT) return damaged(file_or.status().message());
    return file_or.status();
  }
  std::shared_ptr<File> file = std::move(file_or).value();
  if (!PlausibleLocation(loc)) return damaged("index entry has inconsistent lengths");
  std::unique_ptr<char[]> owned;
  char* const buf = RecordBuffer(loc.record_length, &owned);
  const std::string_view rec(buf, loc.record_length);
  size_t got = 0;
  RANKFS_RETURN_IF_ERROR(file->PRead(loc.offset, rec.size(), buf, &got));
  if (got != rec.size()) return damaged("record cut short");
  out->resize(loc.raw_length);
  return DecodeRecordInto(hash, loc, rec, out->data(), damage);
}

Status PackChunkStore::DecodeRecordInto(const ChunkHash& hash, const ChunkLocation& loc,
                                        std::string_view rec, char* dst, std::string* damage) {
  auto damaged = [&](std::string why) {
    *damage = std::move(why);
    return Status(EIO, "chunk " + hash.ToHex() + ": " + *damage);
  };
  auto h = DecodeRecordHeader(rec);
  if (!h.ok()) return damaged(h.status().message());
  if (h->hash != hash || h->stored_length != loc.stored_length ||
      h->raw_length != loc.raw_length || h->codec != loc.codec ||
      kRecordHeaderSize + h->stored_length != loc.record_length ||
      rec.size() != loc.record_length) {
    return damaged("record header does not match the index");
  }
  std::string_view stored(rec.data() + kRecordHeaderSize, h->stored_length);
  if (Crc32c(stored.data(), stored.size()) != h->stored_crc) return damaged("checksum mismatch");
  if (h->codec == Codec::kRaw) {
    std::memcpy(dst, stored.data(), stored.size());
    return Status::Ok();
  }
  Status st = DecompressChunk(stored, h->raw_length, dst);
  if (!st.ok()) return damaged(st.message());
  return Status::Ok();
}

void PackChunkStore::GetMany(std::span<ChunkRead> reads, GetManyStats* stats) {
  // Where each chunk is; those that cannot be located (or whose index entry is implausible)
  // get Get's answer, which says why.
  struct Located {
    ChunkRead* read;
    ChunkLocation loc;
  };
  std::vector<Located> located;
  located.reserve(reads.size());
  auto one_by_one = [&](ChunkRead& r) {
    ChunkStore::GetMany(std::span<ChunkRead>(&r, 1), stats);
  };
  for (ChunkRead& r : reads) {
    r.wrote_direct = false;
    uint64_t refs = 0;
    Result<ChunkLocation> loc = Locate(r.hash, &refs);
    r.shared = refs != 1;
    if (loc.ok() && PlausibleLocation(*loc)) {
      located.push_back({&r, *loc});
    } else {
      one_by_one(r);
    }
  }
  std::sort(located.begin(), located.end(), [](const Located& a, const Located& b) {
    return std::tie(a.loc.pack_id, a.loc.offset) < std::tie(b.loc.pack_id, b.loc.offset);
  });
  std::unique_ptr<char[]> buf;
  size_t buf_size = 0;
  for (size_t i = 0; i < located.size();) {
    // A run: records of one pack, each starting where the one before ends.
    const ChunkLocation& first = located[i].loc;
    size_t j = i + 1;
    uint64_t end = first.offset + first.record_length;
    while (j < located.size() && located[j].loc.pack_id == first.pack_id &&
           located[j].loc.offset == end &&
           end + located[j].loc.record_length - first.offset <= kMaxReadRun) {
      end += located[j].loc.record_length;
      ++j;
    }
    const size_t run = size_t(end - first.offset);
    if (run > buf_size) {
      buf = std::make_unique_for_overwrite<char[]>(run);
      buf_size = run;
    }
    size_t got = 0;
    Result<std::shared_ptr<File>> file = PackFile(first.pack_id);
    Status st = file.ok() ? (*file)->PRead(first.offset, run, buf.get(), &got) : file.status();
    if (st.ok()) ++stats->reads;
    for (size_t k = i; k < j; ++k) {
      ChunkRead& r = *located[k].read;
      const ChunkLocation& loc = located[k].loc;
      const uint64_t at = loc.offset - first.offset;
      // A failed read, a short one, or bytes that fail their checks: Get reads the chunk
      // again and decides (damage only if it still lives there; EIO, logged and counted).
      if (!st.ok() || at + loc.record_length > got) {
        one_by_one(r);
        continue;
      }
      const bool direct = r.direct != nullptr && r.direct_len == loc.raw_length;
      if (!direct) r.out->resize(loc.raw_length);
      std::string damage;
      r.status = DecodeRecordInto(r.hash, loc, std::string_view(buf.get() + at, loc.record_length),
                                  direct ? r.direct : r.out->data(), &damage);
      if (!r.status.ok()) {
        one_by_one(r);
        continue;
      }
      r.wrote_direct = direct;
      ++stats->decompressions;
    }
    i = j;
  }
}

Status PackChunkStore::Verify(const ChunkHash& hash) {
  std::optional<uint32_t> scope;
  {
    Stripe& s = StripeFor(hash);
    std::unique_lock<std::mutex> l(s.mu);
    RANKFS_ASSIGN_OR_RETURN(Found found, FindLocked(s, l, hash));
    if (found.pending != nullptr) {
      scope = found.pending->scope_uid;
    } else if (found.committed) {
      scope = found.committed->scope_uid;
    }
  }
  std::string data;
  RANKFS_RETURN_IF_ERROR(Get(hash, &data));
  if (ChunkHash::ForScope(scope, data) != hash) {
    return Damaged(hash, "the store", "content does not match its hash");
  }
  return Status::Ok();
}

}  // namespace rankfs
