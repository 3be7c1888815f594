// Writes the seed corpora of the fuzz targets: a few valid encodings (and near-valid ones) per
// target, each well under 4 KiB, into <dir>/<target>/<name>. Usage: fuzz_make_corpus fuzz/corpus
// The input layouts (flags bytes and the like) are those documented in fuzz_targets.h and the
// target bodies.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gpu/protocol.h"
#include "store/compressor.h"
#include "store/crc32c.h"
#include "store/meta_codec.h"
#include "store/pack_format.h"
#include "tests/testutil/arrow_ipc_writer.h"

namespace rankfs {
namespace {

std::filesystem::path g_root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  std::filesystem::path dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

// A compressible chunk of a few hundred bytes.
std::string Text() {
  std::string s;
  for (int i = 0; i < 40; ++i) s += "rank " + std::to_string(i % 7) + " cache line\n";
  return s;
}

// A complete record (header + stored bytes) for `content`, zstd when it shrinks and `zstd`.
std::string Record(const std::string& content, bool zstd) {
  RecordHeader h;
  h.hash = ChunkHash::Of(content);
  h.raw_length = uint32_t(content.size());
  std::string stored = content;
  bool shrunk = false;
  if (zstd && CompressChunk(content, 3, &stored, &shrunk).ok() && shrunk) {
    h.codec = Codec::kZstd;
  } else {
    stored = content;
  }
  h.stored_length = uint32_t(stored.size());
  h.stored_crc = Crc32c(stored.data(), stored.size());
  std::string out;
  EncodeRecordHeader(h, &out);
  return out + stored;
}

std::string Flag(uint8_t f) { return std::string(1, char(f)); }

// Arrow IPC streams for the arrow_ipc target (after its flags byte): a tokenised-dataset
// schema [text: utf8, ids: list<int32>, n: int64, tags: struct<a: fixed_size_list<int16, 2>>],
// and a dictionary-encoded column.
std::string ArrowStream(bool compressed) {
  namespace at = arrow_testing;
  std::string out = at::Frame(
      1, at::Schema({at::Field("text", at::kUtf8, nullptr),
                     at::Field("ids", at::kList, nullptr, {at::Field("item", at::kInt, at::IntType(32))}),
                     at::Field("n", at::kInt, at::IntType(64)),
                     at::Field("tags", at::kStruct, nullptr,
                               {at::Field("a", at::kFixedSizeList,
                                          [] {
                                            auto t = at::NewTable();
                                            t->Scalar<int32_t>(0, 2);
                                            return t;
                                          }(),
                                          {at::Field("x", at::kInt, at::IntType(16))})})}),
      "");
  const std::vector<std::string> texts = {"the first row of text", "second", "", "fourth row"};
  std::vector<int32_t> text_off{0}, ids_off{0}, ids;
  std::string text;
  for (size_t i = 0; i < texts.size(); ++i) {
    text += texts[i];
    text_off.push_back(int32_t(text.size()));
    for (size_t k = 0; k <= i; ++k) ids.push_back(int32_t(100 * i + k));
    ids_off.push_back(int32_t(ids.size()));
  }
  at::BatchBuilder b;
  const int64_t rows = int64_t(texts.size());
  b.Node(rows);
  b.Buffer("");
  b.Buffer(at::Packed(text_off));
  b.Buffer(text);
  b.Node(rows);
  b.Buffer("");
  b.Buffer(at::Packed(ids_off));
  b.Node(int64_t(ids.size()));
  b.Buffer("");
  b.Buffer(at::Packed(ids));
  b.Node(rows);
  b.Buffer("");
  b.Buffer(at::Packed(std::vector<int64_t>{1, 2, 3, 4}));
  b.Node(rows);  // tags
  b.Buffer("");
  b.Node(rows);  // tags.a
  b.Buffer("");
  b.Node(2 * rows);  // tags.a.x
  b.Buffer("");
  b.Buffer(at::Packed(std::vector<int16_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  return out + b.Message(rows, compressed) + b.Message(rows) + at::EndOfStream();
}

std::string ArrowDictionaryStream() {
  namespace at = arrow_testing;
  auto dict = at::NewTable();
  dict->Scalar<int64_t>(0, 7).Child(1, at::IntType(16));
  std::string out = at::Frame(1, at::Schema({at::Field("label", at::kUtf8, nullptr, {}, dict)}), "");
  at::BatchBuilder d;
  d.Node(2);
  d.Buffer("");
  d.Buffer(at::Packed(std::vector<int32_t>{0, 3, 8}));
  d.Buffer("catdoggo");
  auto header = at::NewTable();
  header->Scalar<int64_t>(0, 7).Child(1, d.Header(2));
  at::BatchBuilder idx;
  idx.Node(3);
  idx.Buffer("");
  idx.Buffer(at::Packed(std::vector<int16_t>{1, 0, 1}));
  return out + at::Frame(2, header, d.body()) + idx.Message(3) + at::EndOfStream();
}

void Generate() {
  PackFileHeader ph;
  ph.pack_id = 7;
  for (size_t i = 0; i < ph.store_uuid.size(); ++i) ph.store_uuid[i] = uint8_t(0xa0 + i);
  const std::string pack_header = EncodePackFileHeader(ph);
  Write("pack_header", "valid", pack_header);
  PackFileHeader v2 = ph;
  v2.version = 2;
  Write("pack_header", "future_version", EncodePackFileHeader(v2));

  const std::string raw = Record("hello, rankfs", false);
  const std::string zst = Record(Text(), true);
  Write("record_header", "raw", Flag(0) + raw.substr(0, kRecordHeaderSize));
  Write("record_header", "zstd_crc_repair", Flag(1) + zst.substr(0, kRecordHeaderSize));

  std::string damaged = Record("damaged payload", false);
  damaged.back() ^= 1;
  const std::string pack = pack_header + raw + zst + damaged + "torn" + raw.substr(0, 40);
  Write("scan_pack", "three_records_torn_tail", Flag(0) + pack);
  Write("scan_pack", "garbage_between", Flag(0) + pack_header + "xxRKCHyy" + raw + "zz" + zst);
  Write("scan_pack", "stop_early", Flag(1) + pack_header + raw + zst);
  // A hole over the first record (PunchHole(32, 200)).
  Write("scan_pack", "hole", Flag(2) + std::string("\x20\x00\xc8\x00", 4) + pack_header + raw + zst);

  InodeAttr a;
  a.ino = 42;
  a.mode = 0120777;
  a.nlink = 1;
  a.size = 11;
  a.mtime_ns = 1700000000000000000;
  a.symlink_target = "target/file";
  Write("meta_value", "inode_symlink", Flag(0) + EncodeInodeAttr(a));
  Write("meta_value", "dirent", Flag(1) + EncodeDirEntry(DirEntry{.ino = 42, .type = 8}));
  Extent e{.length = 4096, .chunk = ChunkHash::Of("x"), .chunk_offset = 512};
  Write("meta_value", "extent", Flag(2) + EncodeExtent(e));
  ChunkRecord cr;
  cr.location = {3, 4096, 56 + 300, 1000, 300, Codec::kZstd, 0xdeadbeef};
  cr.refcount = 2;
  Write("meta_value", "chunk_v1", Flag(3) + EncodeChunkRecord(cr));
  cr.scope_uid = 1000;
  Write("meta_value", "chunk_v2_scoped", Flag(3) + EncodeChunkRecord(cr));
  Write("meta_value", "pack", Flag(4) + EncodePackStats(PackStats{100, 20}));
  Write("meta_value", "extent_v3_frame", Flag(2) + EncodeExtent(Extent::Frame(4096, 7, 300)));
  FrameRecord fr{.pack_id = 3, .offset = 4096, .record_length = 40 + 9000, .raw_length = 32768,
                 .stored_length = 9000, .codec = Codec::kZstd, .dictionary_id = 1,
                 .stored_crc = 0xdeadbeef, .refcount = 2};
  Write("meta_value", "frame", Flag(5) + EncodeFrameRecord(fr));
  PieceRecord pr{.frame_id = 7, .offset = 300, .length = 4096, .scope_uid = std::nullopt};
  Write("meta_value", "piece", Flag(6) + EncodePieceRecord(pr));
  pr.scope_uid = 1000;
  Write("meta_value", "piece_v2_scoped", Flag(6) + EncodePieceRecord(pr));

  Write("meta_key", "inode", InodeKey(42));
  Write("meta_key", "dirent", DirentKey(1, "hello.txt"));
  Write("meta_key", "extent", ExtentKey(42, 1 << 20));
  Write("meta_key", "chunk", ChunkKey(ChunkHash::Of("x")));
  Write("meta_key", "pack", PackKey(3));
  Write("meta_key", "frame", FrameKey(7));

  Superblock sb;
  sb.uuid = ph.store_uuid;
  sb.created_ns = 1700000000000000000;
  Write("superblock", "v1_global", EncodeSuperblock(sb));
  sb.dedup_scope = DedupScope::kPerUid;
  Write("superblock", "v2_per_uid", EncodeSuperblock(sb));

  Write("chunk_read", "raw", Flag(0) + raw);
  Write("chunk_read", "zstd", Flag(0) + zst);
  Write("chunk_read", "zstd_crc_repair", Flag(2) + zst);
  ChunkRecord idx;
  idx.location = {1, kPackHeaderSize, uint32_t(zst.size()), uint32_t(Text().size()),
                  uint32_t(zst.size() - kRecordHeaderSize), Codec::kZstd, 0};
  idx.location.stored_crc = Crc32c(zst.data() + kRecordHeaderSize, zst.size() - kRecordHeaderSize);
  idx.refcount = 1;
  Write("chunk_read", "zstd_with_index", Flag(1) + EncodeChunkRecord(idx) + zst);
  Write("chunk_read", "round_trip_raw", Flag(4) + "some chunk content");
  Write("chunk_read", "round_trip_zstd", Flag(12) + Text());

  const std::string arrow = ArrowStream(false);
  Write("arrow_ipc", "dataset_rows", Flag(0x88) + arrow);
  Write("arrow_ipc", "dataset_small_pieces", Flag(0x01) + arrow);
  Write("arrow_ipc", "dataset_truncated", Flag(0x88) + arrow.substr(0, arrow.size() * 2 / 3));
  Write("arrow_ipc", "compressed_body", Flag(0x88) + ArrowStream(true));
  Write("arrow_ipc", "dictionary", Flag(0x42) + ArrowDictionaryStream());
  // Streams written by pyarrow itself (tests/data/arrow_ipc/make_streams.py).
  for (const char* name : {"dataset.arrows", "types.arrows", "compressed.arrows"}) {
    std::ifstream in(std::string(RANKFS_SOURCE_DIR) + "/tests/data/arrow_ipc/" + name,
                     std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Write("arrow_ipc", std::string("pyarrow_") + name, Flag(0x40) + bytes);
  }

  auto wire = [](const gpu::Request& r) {
    const gpu::WireRequest w = gpu::EncodeRequest(r);
    return std::string(reinterpret_cast<const char*>(&w), sizeof w);
  };
  Write("gpu_request", "ring", wire({gpu::Op::kRing, 1, 0, 8, 0, 1 << 20}));
  Write("gpu_request", "register", wire({gpu::Op::kRegister, 2, 0, 0, 0, 0}));
  Write("gpu_request", "read", wire({gpu::Op::kRead, 3, 1, 7, 4096, 65536}));
  Write("gpu_request", "read_past_slots", wire({gpu::Op::kRead, 4, 1, 8, 0, 1 << 21}));
  Write("gpu_request", "unregister", wire({gpu::Op::kUnregister, 5, 1, 0, 0, 0}));
}

}  // namespace
}  // namespace rankfs

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  rankfs::g_root = argv[1];
  rankfs::Generate();
  return 0;
}
