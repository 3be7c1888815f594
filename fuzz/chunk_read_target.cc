// FuzzChunkRead (fuzz_targets.h): stored chunk bytes through the store's real read path,
// PackChunkStore::Get and ::Verify, on an in-memory store (MemEnv packs, RocksDB on its
// in-memory Env), compared against an independent decoding of the same bytes.
//
// Input: a flags byte, then
//   bit 2 set ("round trip"): the rest is chunk content; a valid record is built from it (zstd
//     when bit 3 is set) and Get must return exactly that content.
//   otherwise: [an encoded chunk index entry, when bit 0 is set] then the record bytes written
//     at the indexed location. Without bit 0 the index entry is derived from the record's own
//     header (what a healthy index would hold), so mutations reach the CRC and zstd checks.
//     Bit 1 repairs the header CRC and the stored-bytes CRC, which the fuzzer cannot forge.
#include <rocksdb/env.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "fuzz/fuzz_input.h"
#include "fuzz/fuzz_targets.h"
#include "store/compressor.h"
#include "store/crc32c.h"
#include "store/logging.h"
#include "store/meta_codec.h"
#include "store/meta_store.h"
#include "store/pack_chunk_store.h"
#include "store/pack_format.h"

namespace rankfs::fuzz {
namespace {

// One store for the whole process: opening RocksDB per input would dominate the run time.
// Never destroyed (the process exits with it); every object stays reachable for LeakSanitizer.
struct Fixture {
  std::unique_ptr<Env> env;
  std::unique_ptr<rocksdb::Env> rocks_env;
  std::unique_ptr<MetaStore> meta;
  std::unique_ptr<PackChunkStore> store;
  std::unique_ptr<File> pack;  // pack 1, which every index entry of this target names
};

// The last line the store logged: damage reports are checked to name the chunk. Kept out of
// stderr, where one line per damaged input would swamp the fuzzer's output.
std::string* g_last_log = nullptr;

Fixture* MakeFixture() {
  g_last_log = new std::string;
  SetLogSink([](LogLevel, const std::string& line) { *g_last_log = line; });
  auto* f = new Fixture;
  f->env = NewMemEnv();
  f->rocks_env.reset(rocksdb::NewMemEnv(rocksdb::Env::Default()));
  MetaStoreOptions mo;
  mo.rocks_env = f->rocks_env.get();
  mo.block_cache_bytes = 1 << 20;
  mo.write_buffer_bytes = 4 << 20;
  auto meta = MetaStore::Open("/fuzz/meta", mo, Superblock{});
  FUZZ_CHECK(meta.ok());
  f->meta = std::move(meta).value();
  FUZZ_CHECK(f->env->CreateDir("/fuzz").ok());
  PackChunkStoreOptions po;
  po.background_reclaim = false;
  auto store = PackChunkStore::Open(f->env.get(), "/fuzz/packs", f->meta.get(), po);
  FUZZ_CHECK(store.ok());
  f->store = std::move(store).value();
  // One real chunk makes pack 1 exist; its records are then overwritten input by input.
  const std::string seed = "rankfs chunk read fuzzer";
  FUZZ_CHECK(f->store->Put(ChunkHash::Of(seed), seed).ok());
  FUZZ_CHECK(f->store->Flush().ok());
  auto pack = f->env->OpenFile(f->store->PackPath(1), OpenMode::kReadWrite);
  FUZZ_CHECK(pack.ok());
  f->pack = std::move(pack).value();
  return f;
}

Fixture& GetFixture() {
  static Fixture* f = MakeFixture();
  return *f;
}

void PutCrc(std::string* s, size_t at, uint32_t crc) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = char(crc >> (8 * i));
}

// What Get promises, decoded independently from the public pieces: the record at the indexed
// location is there in full, its header is valid and agrees with the index, the stored bytes
// pass their CRC32C and (zstd) decompress to exactly raw_length bytes.
bool ReferenceDecode(std::string_view pack, const ChunkHash& hash, const ChunkLocation& loc,
                     std::string* out) {
  if (loc.pack_id != 1 || loc.offset > pack.size() ||
      pack.size() - loc.offset < loc.record_length) {
    return false;
  }
  std::string_view rec = pack.substr(loc.offset, loc.record_length);
  Result<RecordHeader> h = DecodeRecordHeader(rec);
  if (!h.ok() || h->hash != hash || h->stored_length != loc.stored_length ||
      h->raw_length != loc.raw_length || h->codec != loc.codec ||
      kRecordHeaderSize + uint64_t(h->stored_length) != loc.record_length) {
    return false;
  }
  std::string_view stored = rec.substr(kRecordHeaderSize);
  if (Crc32c(stored.data(), stored.size()) != h->stored_crc) return false;
  if (h->codec == Codec::kRaw) {
    out->assign(stored);
    return true;
  }
  out->assign(h->raw_length, '\0');
  return DecompressChunk(stored, h->raw_length, out->data()).ok();
}

}  // namespace

int FuzzChunkRead(const uint8_t* data, size_t size) {
  Fixture& f = GetFixture();
  Input in(data, size);
  const uint8_t flags = in.U8();
  ChunkHash hash;
  ChunkRecord entry;
  ChunkLocation& loc = entry.location;
  std::string record;
  std::string content;  // round trip mode: what Get must return
  const bool round_trip = flags & 4;

  if (round_trip) {
    content = std::string(in.Rest());
    hash = ChunkHash::Of(content);
    RecordHeader h;
    h.hash = hash;
    h.raw_length = uint32_t(content.size());
    std::string stored = content;
    bool shrunk = false;
    if ((flags & 8) && CompressChunk(content, 1, &stored, &shrunk).ok() && shrunk) {
      h.codec = Codec::kZstd;
    } else {
      stored = content;
    }
    h.stored_length = uint32_t(stored.size());
    h.stored_crc = Crc32c(stored.data(), stored.size());
    EncodeRecordHeader(h, &record);
    record += stored;
    loc = {1, kPackHeaderSize, uint32_t(record.size()), h.raw_length, h.stored_length, h.codec,
           h.stored_crc};
  } else {
    const size_t entry_size = EncodeChunkRecord(ChunkRecord{}).size();
    if (flags & 1) {
      Result<ChunkRecord> r = DecodeChunkRecord(in.Bytes(entry_size));
      if (!r.ok()) return 0;  // the read path only ever sees entries the codec accepted
      entry = *r;
    }
    record = std::string(in.Rest());
    if ((flags & 2) && record.size() >= kRecordHeaderSize) {
      uint32_t stored_crc = Crc32c(record.data() + kRecordHeaderSize,
                                   record.size() - kRecordHeaderSize);
      PutCrc(&record, 48, stored_crc);
      PutCrc(&record, 52, Crc32c(record.data(), 52));
    }
    if (record.size() >= 40) std::memcpy(hash.bytes.data(), record.data() + 8, 32);
    if (!(flags & 1)) {
      Result<RecordHeader> h = DecodeRecordHeader(record);
      loc.pack_id = 1;
      loc.offset = kPackHeaderSize;
      if (h.ok()) {
        loc.record_length = uint32_t(kRecordHeaderSize + h->stored_length);
        loc.raw_length = h->raw_length;
        loc.stored_length = h->stored_length;
        loc.codec = h->codec;
        loc.stored_crc = h->stored_crc;
      } else {
        loc.record_length = uint32_t(record.size());
        loc.stored_length = loc.raw_length =
            record.size() > kRecordHeaderSize ? uint32_t(record.size() - kRecordHeaderSize) : 0;
      }
      entry.refcount = 1;
    }
  }

  FUZZ_CHECK(f.pack->Truncate(kPackHeaderSize).ok());
  FUZZ_CHECK(f.pack->PWrite(kPackHeaderSize, record).ok());
  MetaStore::Batch put;
  put.PutChunk(hash, entry);
  FUZZ_CHECK(f.meta->Write(put, false).ok());

  std::string pack_bytes(kPackHeaderSize + record.size(), '\0');
  size_t got = 0;
  FUZZ_CHECK(f.pack->PRead(0, pack_bytes.size(), pack_bytes.data(), &got).ok());
  std::string expected;
  const bool expect_ok = ReferenceDecode(pack_bytes, hash, loc, &expected);

  std::string out;
  Status g = f.store->Get(hash, &out);
  if (g.ok()) {
    FUZZ_CHECK(out.size() == loc.raw_length);
  } else {
    FUZZ_CHECK(g.code() == EIO);  // damage is EIO, never another error or a crash
  }
  // A damaged chunk that the index places in an existing pack is logged, by hash.
  if (!g.ok() && loc.pack_id == 1) {
    FUZZ_CHECK(g_last_log->find(hash.ToHex()) != std::string::npos);
  }
  g_last_log->clear();
  FUZZ_CHECK(g.ok() == expect_ok);
  if (g.ok()) FUZZ_CHECK(out == expected);
  if (round_trip) FUZZ_CHECK(g.ok() && out == content);

  Status v = f.store->Verify(hash);
  FUZZ_CHECK(v.ok() == (g.ok() && ChunkHash::ForScope(entry.scope_uid, out) == hash));
  if (!v.ok()) FUZZ_CHECK(v.code() == EIO);

  MetaStore::Batch del;
  del.DeleteChunk(hash);
  FUZZ_CHECK(f.meta->Write(del, false).ok());
  return 0;
}

}  // namespace rankfs::fuzz
