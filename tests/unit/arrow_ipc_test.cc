// FindArrowCuts (store/arrow_ipc.h) on streams written by tests/testutil/arrow_ipc_writer.h:
// rows become pieces, permuted rows deduplicate, and everything it does not fully understand
// (truncation at every byte, compressed bodies, big-endian schemas, bad offsets, garbage) stops
// it at the last message it understood. ArrowStreamCutter, fed the same bytes in any split,
// gives exactly FindArrowCuts's result.
#include "store/arrow_ipc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/testutil/arrow_ipc_writer.h"

namespace rankfs {
namespace {

namespace at = arrow_testing;

struct Row {
  std::string text;
  std::vector<int32_t> ids;
};

// Rows like a tokenised dataset's: a text and its token ids, `len` bytes of text.
std::vector<Row> MakeRows(size_t count, size_t len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Row> rows(count);
  for (Row& r : rows) {
    for (size_t i = 0; i < len; ++i) r.text.push_back(char('a' + rng() % 26));
    for (size_t i = 0; i < len / 4; ++i) r.ids.push_back(int32_t(rng() % 50000));
  }
  return rows;
}

at::FbTablePtr DatasetSchema(bool big_endian = false) {
  return at::Schema(
      {at::Field("text", at::kUtf8, nullptr),
       at::Field("ids", at::kList, nullptr, {at::Field("item", at::kInt, at::IntType(32))}),
       at::Field("n", at::kInt, at::IntType(64))},
      big_endian);
}

struct Options {
  bool compressed = false;
  bool big_endian = false;
  bool decreasing_offsets = false;
  size_t batch_rows = 100;
};

// A stream of schema [text: utf8, ids: list<int32>, n: int64] holding `rows`, and the message
// boundaries.
struct Stream {
  std::string bytes;
  std::vector<uint64_t> message_ends;
};

Stream Write(const std::vector<Row>& rows, const Options& o = {}) {
  Stream s;
  auto add = [&](const std::string& m) {
    s.bytes += m;
    s.message_ends.push_back(s.bytes.size());
  };
  add(at::Frame(1, DatasetSchema(o.big_endian), ""));
  for (size_t first = 0; first < rows.size(); first += o.batch_rows) {
    const size_t n = std::min(o.batch_rows, rows.size() - first);
    std::vector<int32_t> text_off{0}, ids_off{0}, ids;
    std::vector<int64_t> nums;
    std::string text;
    for (size_t i = first; i < first + n; ++i) {
      text += rows[i].text;
      text_off.push_back(int32_t(text.size()));
      ids.insert(ids.end(), rows[i].ids.begin(), rows[i].ids.end());
      ids_off.push_back(int32_t(ids.size()));
      nums.push_back(int64_t(i));
    }
    if (o.decreasing_offsets && n > 1) std::swap(text_off[1], text_off[2]);
    at::BatchBuilder b;
    b.Node(int64_t(n));  // text
    b.Buffer("");
    b.Buffer(at::Packed(text_off));
    b.Buffer(text);
    b.Node(int64_t(n));  // ids
    b.Buffer("");
    b.Buffer(at::Packed(ids_off));
    b.Node(int64_t(ids.size()));  // ids.item
    b.Buffer("");
    b.Buffer(at::Packed(ids));
    b.Node(int64_t(n));  // n
    b.Buffer("");
    b.Buffer(at::Packed(nums));
    add(b.Message(int64_t(n), o.compressed));
  }
  add(at::EndOfStream());
  return s;
}

ArrowCuts Cut(const std::string& s, const ArrowCutOptions& o = {}) {
  return FindArrowCuts(reinterpret_cast<const uint8_t*>(s.data()), s.size(), o);
}

std::vector<std::string> Pieces(const std::string& s, const ArrowCuts& c) {
  std::vector<std::string> out;
  uint64_t prev = 0;
  for (uint64_t cut : c.cuts) {
    out.push_back(s.substr(prev, cut - prev));
    prev = cut;
  }
  return out;
}

// The contract every result keeps, whatever the input.
void ExpectWellFormed(const ArrowCuts& c, size_t n) {
  ASSERT_LE(c.understood_end, n);
  for (size_t i = 0; i < c.cuts.size(); ++i) {
    ASSERT_GT(c.cuts[i], i == 0 ? 0u : c.cuts[i - 1]) << "cut " << i;
    ASSERT_LE(c.cuts[i], c.understood_end);
  }
  if (c.understood_end > 0) {
    ASSERT_FALSE(c.cuts.empty());
    EXPECT_EQ(c.cuts.back(), c.understood_end);
  } else {
    EXPECT_TRUE(c.cuts.empty());
  }
}

TEST(ArrowIpcTest, LargeRowsArePiecesOfTheirOwn) {
  const std::vector<Row> rows = MakeRows(250, 1200, 1);
  const Stream s = Write(rows);
  const ArrowCuts c = Cut(s.bytes);
  ExpectWellFormed(c, s.bytes.size());
  EXPECT_EQ(c.stop, ArrowStop::kEndOfStream) << c.detail;
  EXPECT_EQ(c.understood_end, s.bytes.size());
  EXPECT_EQ(c.messages, s.message_ends.size());
  for (uint64_t end : s.message_ends) {
    EXPECT_TRUE(std::binary_search(c.cuts.begin(), c.cuts.end(), end)) << end;
  }
  std::vector<std::string> pieces = Pieces(s.bytes, c);
  std::set<std::string> set(pieces.begin(), pieces.end());
  for (const Row& r : rows) {
    EXPECT_TRUE(set.count(r.text));
    EXPECT_TRUE(set.count(at::Packed(r.ids)));  // 1200 bytes of ids: above min_row_piece
  }
  EXPECT_EQ(
      c.row_cuts,
      2 * rows.size());  // each row's end (its start is the buffer's or the previous row's end)
}

// The flattened table of a shuffle holds the same rows in another order, some filtered out:
// each of its large rows must be a piece the source already had.
TEST(ArrowIpcTest, PermutedRowsDeduplicate) {
  const std::vector<Row> rows = MakeRows(300, 600, 2);
  std::vector<Row> shuffled;
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  for (size_t i : order) {
    if (i % 5 != 0) shuffled.push_back(rows[i]);
  }
  const Stream a = Write(rows, {.batch_rows = 100});
  const Stream b = Write(shuffled, {.batch_rows = 64});
  std::vector<std::string> pa = Pieces(a.bytes, Cut(a.bytes)), pb = Pieces(b.bytes, Cut(b.bytes));
  std::set<std::string> known(pa.begin(), pa.end());
  size_t shared_bytes = 0;
  for (const std::string& p : pb) {
    if (known.count(p)) shared_bytes += p.size();
  }
  size_t row_bytes = 0;
  for (const Row& r : shuffled) row_bytes += r.text.size() + 4 * r.ids.size();
  EXPECT_GE(shared_bytes, row_bytes);
  EXPECT_GE(double(shared_bytes), 0.9 * double(b.bytes.size()));
}

TEST(ArrowIpcTest, SmallRowsAreGroupedAtRowBoundaries) {
  const std::vector<Row> rows = MakeRows(1000, 40, 3);
  const Stream s = Write(rows, {.batch_rows = 1000});
  ArrowCutOptions o;
  o.row_group_target = 1024;
  const ArrowCuts c = Cut(s.bytes, o);
  ExpectWellFormed(c, s.bytes.size());
  ASSERT_EQ(c.stop, ArrowStop::kEndOfStream) << c.detail;
  // The text values: 40 kB in pieces of 1024..1063 bytes (a group ends on the row that reaches
  // the target), each starting at a row boundary.
  const size_t text_start = s.bytes.find(rows[0].text);
  ASSERT_NE(text_start, std::string::npos);
  std::set<uint64_t> boundaries;
  for (size_t i = 0; i <= rows.size(); ++i) boundaries.insert(text_start + 40 * i);
  size_t in_text = 0;
  for (size_t i = 1; i < c.cuts.size(); ++i) {
    if (c.cuts[i - 1] < text_start || c.cuts[i] > text_start + 40 * rows.size()) continue;
    ++in_text;
    EXPECT_TRUE(boundaries.count(c.cuts[i])) << c.cuts[i];
    if (c.cuts[i] < text_start + 40 * rows.size()) {
      EXPECT_GE(c.cuts[i] - c.cuts[i - 1], 1024u);
      EXPECT_LT(c.cuts[i] - c.cuts[i - 1], 1024u + 40);
    }
  }
  EXPECT_GE(in_text, 38u);
}

// A stream cut short at any byte (a writer still appending, a truncated copy) keeps exactly the
// cuts of the complete messages before the cut, and stops there.
TEST(ArrowIpcTest, TruncatedAtEveryByte) {
  const Stream s = Write(MakeRows(12, 300, 4), {.batch_rows = 5});
  const ArrowCuts full = Cut(s.bytes);
  ASSERT_EQ(full.stop, ArrowStop::kEndOfStream);
  for (size_t len = 0; len < s.bytes.size(); ++len) {
    const ArrowCuts c = Cut(s.bytes.substr(0, len));
    ExpectWellFormed(c, len);
    const bool at_boundary =
        std::binary_search(s.message_ends.begin(), s.message_ends.end(), uint64_t(len));
    if (len == 0) {
      EXPECT_EQ(c.stop, ArrowStop::kNotArrow);
    } else {
      EXPECT_EQ(c.stop, at_boundary ? ArrowStop::kEndOfInput : ArrowStop::kTruncated)
          << len << ": " << c.detail;
    }
    // The understood prefix is the last whole message, cut as in the whole stream.
    auto it = std::upper_bound(s.message_ends.begin(), s.message_ends.end(), uint64_t(len));
    const uint64_t expect_end = it == s.message_ends.begin() ? 0 : *(it - 1);
    ASSERT_EQ(c.understood_end, expect_end) << len;
    const auto full_prefix_end = std::upper_bound(full.cuts.begin(), full.cuts.end(), expect_end);
    EXPECT_EQ(c.cuts, std::vector<uint64_t>(full.cuts.begin(), full_prefix_end)) << len;
  }
}

struct FallbackCase {
  const char* name;
  std::string bytes;
  ArrowStop stop;
  uint64_t understood_end;
};

std::vector<FallbackCase> FallbackCases() {
  const std::vector<Row> rows = MakeRows(10, 100, 5);
  const Stream plain = Write(rows);
  const uint64_t schema_end = plain.message_ends[0];
  std::vector<FallbackCase> cases;
  cases.push_back({"compressed_body", Write(rows, {.compressed = true}).bytes,
                   ArrowStop::kUnsupported, schema_end});
  cases.push_back(
      {"big_endian", Write(rows, {.big_endian = true}).bytes, ArrowStop::kUnsupported, 0});
  cases.push_back({"decreasing_offsets", Write(rows, {.decreasing_offsets = true}).bytes,
                   ArrowStop::kMalformed, schema_end});
  // A union column: a type this reader does not lay out.
  cases.push_back(
      {"union_type",
       at::Frame(1, at::Schema({at::Field("u", at::kUnion, nullptr)}), "") + at::EndOfStream(),
       ArrowStop::kUnsupported, 0});
  // A Tensor message (header type 4) after the schema.
  cases.push_back({"tensor_message",
                   plain.bytes.substr(0, schema_end) + at::Frame(4, at::NewTable(), ""),
                   ArrowStop::kUnsupported, schema_end});
  // Metadata version V3 (2).
  cases.push_back(
      {"old_metadata_version", at::Frame(1, DatasetSchema(), "", 2), ArrowStop::kUnsupported, 0});
  // A record batch before any schema.
  cases.push_back({"batch_first", plain.bytes.substr(schema_end), ArrowStop::kMalformed, 0});
  // The Arrow file format (magic "ARROW1") and other files.
  cases.push_back(
      {"arrow_file", std::string("ARROW1\0\0", 8) + plain.bytes, ArrowStop::kNotArrow, 0});
  cases.push_back({"text", std::string(5000, 'x'), ArrowStop::kNotArrow, 0});
  std::string garbage(4096, '\0');
  std::mt19937 rng(9);
  for (char& ch : garbage) ch = char(rng());
  cases.push_back({"garbage_after_marker",
                   std::string("\xff\xff\xff\xff\x00\x01\x00\x00", 8) + garbage,
                   ArrowStop::kMalformed, 0});
  // A batch whose first column is shorter than the batch.
  at::BatchBuilder b;
  b.Node(3);
  b.Buffer("");
  b.Buffer(at::Packed(std::vector<int64_t>{1, 2, 3}));
  cases.push_back(
      {"column_shorter_than_batch",
       at::Frame(1, at::Schema({at::Field("n", at::kInt, at::IntType(64))}), "") + b.Message(4),
       ArrowStop::kMalformed, schema_end});
  cases.back().understood_end = cases.back().bytes.size() - b.Message(4).size();
  // Bytes after the end-of-stream marker are left to the fallback.
  cases.push_back(
      {"trailing_bytes", plain.bytes + "tail", ArrowStop::kEndOfStream, plain.bytes.size()});
  return cases;
}

TEST(ArrowIpcTest, FallsBackOnWhatItDoesNotUnderstand) {
  for (const FallbackCase& fc : FallbackCases()) {
    SCOPED_TRACE(fc.name);
    const ArrowCuts c = Cut(fc.bytes);
    ExpectWellFormed(c, fc.bytes.size());
    EXPECT_EQ(ArrowStopName(c.stop), std::string(ArrowStopName(fc.stop))) << c.detail;
    EXPECT_EQ(c.understood_end, fc.understood_end) << c.detail;
  }
}

// Any change of any byte keeps the contract (a cheap stand-in for the fuzzer in every build).
TEST(ArrowIpcTest, MutatedStreamsKeepTheContract) {
  const Stream s = Write(MakeRows(20, 200, 6), {.batch_rows = 7});
  std::mt19937 rng(11);
  for (int round = 0; round < 3000; ++round) {
    std::string m = s.bytes;
    for (int k = 0, edits = 1 + int(rng() % 4); k < edits; ++k) {
      m[rng() % m.size()] = char(rng());
    }
    ExpectWellFormed(Cut(m), m.size());
  }
}

TEST(ArrowIpcTest, DictionaryBatchValuesAreCutAtRows) {
  auto dict = at::NewTable();
  dict->Scalar<int64_t>(0, 42).Child(1, at::IntType(32));
  const std::string schema =
      at::Frame(1, at::Schema({at::Field("label", at::kUtf8, nullptr, {}, dict)}), "");
  const std::vector<Row> rows = MakeRows(4, 500, 8);
  std::vector<int32_t> off{0};
  std::string values;
  for (const Row& r : rows) {
    values += r.text;
    off.push_back(int32_t(values.size()));
  }
  at::BatchBuilder d;
  d.Node(4);
  d.Buffer("");
  d.Buffer(at::Packed(off));
  d.Buffer(values);
  auto header = at::NewTable();
  header->Scalar<int64_t>(0, 42).Child(1, d.Header(4));
  at::BatchBuilder idx;
  idx.Node(3);
  idx.Buffer("");
  idx.Buffer(at::Packed(std::vector<int32_t>{2, 0, 3}));
  const std::string stream =
      schema + at::Frame(2, header, d.body()) + idx.Message(3) + at::EndOfStream();
  const ArrowCuts c = Cut(stream);
  ExpectWellFormed(c, stream.size());
  EXPECT_EQ(c.stop, ArrowStop::kEndOfStream) << c.detail;
  std::vector<std::string> pieces = Pieces(stream, c);
  for (const Row& r : rows)
    EXPECT_NE(std::find(pieces.begin(), pieces.end(), r.text), pieces.end());
  // An unknown dictionary id is not understood.
  header->Scalar<int64_t>(0, 43);
  const std::string bad = schema + at::Frame(2, header, d.body());
  EXPECT_EQ(Cut(bad).stop, ArrowStop::kMalformed);
  EXPECT_EQ(Cut(bad).understood_end, schema.size());
}

std::string ReadStream(const std::string& name) {
  std::ifstream in(std::string(RANKFS_SOURCE_DIR) + "/tests/data/arrow_ipc/" + name,
                   std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool HasPiece(const std::vector<std::string>& pieces, const std::string& p) {
  return std::find(pieces.begin(), pieces.end(), p) != pieces.end();
}

// Streams written by pyarrow itself (tests/data/arrow_ipc/make_streams.py says what is in them):
// the reader agrees with the real writer, not only with the test's own.
TEST(ArrowIpcTest, PyarrowStreams) {
  ArrowCutOptions every_row;
  every_row.min_row_piece = 1;
  every_row.min_piece = 0;
  const std::string dataset = ReadStream("dataset.arrows");
  ArrowCuts c = Cut(dataset, every_row);
  ExpectWellFormed(c, dataset.size());
  EXPECT_EQ(c.stop, ArrowStop::kEndOfStream) << c.detail;
  EXPECT_EQ(c.understood_end, dataset.size());
  EXPECT_EQ(c.messages, 4u);  // schema, two batches, end of stream
  std::vector<std::string> pieces = Pieces(dataset, c);
  for (const char* text : {"the first row's text", "a second, longer row of text here", "three",
                           "row four", "the sixth and last row"}) {
    EXPECT_TRUE(HasPiece(pieces, text)) << text;
  }
  for (int32_t i = 0; i < 6; ++i) {  // input_ids row i: i*10 .. i*10+i
    std::vector<int32_t> ids;
    for (int32_t k = 0; k <= i; ++k) ids.push_back(i * 10 + k);
    EXPECT_TRUE(HasPiece(pieces, at::Packed(ids))) << i;
  }

  const std::string types = ReadStream("types.arrows");
  c = Cut(types, every_row);
  ExpectWellFormed(c, types.size());
  EXPECT_EQ(c.stop, ArrowStop::kEndOfStream) << c.detail;
  EXPECT_EQ(c.understood_end, types.size());
  EXPECT_EQ(c.messages, 4u);  // schema, dictionary, batch, end of stream
  pieces = Pieces(types, c);
  EXPECT_TRUE(HasPiece(pieces, at::Packed(std::vector<double>{2.5, 3.5})));  // large_list row
  EXPECT_TRUE(HasPiece(pieces, "zzzz"));  // large_string in a struct
  EXPECT_TRUE(HasPiece(pieces, at::Packed(std::vector<int16_t>{7, 8})));  // fixed-size list row

  const std::string compressed = ReadStream("compressed.arrows");
  c = Cut(compressed);
  ExpectWellFormed(c, compressed.size());
  EXPECT_EQ(c.stop, ArrowStop::kUnsupported) << c.detail;
  EXPECT_EQ(c.detail, "compressed body");
  EXPECT_EQ(c.messages, 1u);  // the schema only
}

// The whole-file cutter: Arrow pieces over the stream, FastCDC for the rest, nothing longer
// than the chunker's max_size, and a file that is not Arrow cut exactly as FastCDC cuts it.
TEST(ArrowIpcTest, CutArrowOrFastCdcCoversTheFile) {
  const ChunkerParams params;
  const FastCdc cdc(params);
  std::string tail(300000, '\0');
  std::mt19937 rng(12);
  for (char& ch : tail) ch = char(rng());
  Stream s = Write(MakeRows(40, 150000, 10), {.batch_rows = 20});  // rows above max_size
  const std::string file = s.bytes + tail;
  const auto* p = reinterpret_cast<const uint8_t*>(file.data());
  std::vector<size_t> lengths = CutArrowOrFastCdc(p, file.size(), cdc, {});
  EXPECT_EQ(std::accumulate(lengths.begin(), lengths.end(), size_t{0}), file.size());
  for (size_t l : lengths) {
    EXPECT_GT(l, 0u);
    EXPECT_LE(l, params.max_size);
  }
  const auto* t = reinterpret_cast<const uint8_t*>(tail.data());
  EXPECT_EQ(CutArrowOrFastCdc(t, tail.size(), cdc, {}), cdc.Split(t, tail.size()));
}

// ---- ArrowStreamCutter: the same result as FindArrowCuts, whatever the split of the bytes.

// Feeds s to an ArrowStreamCutter in pieces of the sizes `next_size` returns, then Finish.
// Checks after every Feed that the cutter holds only the bytes after understood_end (the
// current message), and those only while it has not stopped.
template <typename NextSize>
ArrowCuts FeedInPieces(const std::string& s, const ArrowCutOptions& o, NextSize next_size) {
  ArrowStreamCutter cutter(o);
  ArrowCuts out;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t at = 0;
  while (at < s.size()) {
    const size_t len = std::min<size_t>(std::max<size_t>(next_size(cutter), 1), s.size() - at);
    cutter.Feed(p + at, len, &out.cuts);
    at += len;
    EXPECT_LE(cutter.understood_end(), at);
    if (cutter.stopped()) {
      EXPECT_EQ(cutter.buffered(), 0u);
      EXPECT_EQ(cutter.needed(), 0u);
    } else {
      EXPECT_EQ(cutter.buffered(), at - cutter.understood_end()) << at;
      EXPECT_GT(cutter.needed(), 0u);
    }
    if (!out.cuts.empty()) {
      EXPECT_LE(out.cuts.back(), cutter.understood_end());
    }
  }
  cutter.Finish(&out.cuts);
  EXPECT_TRUE(cutter.stopped());
  out.understood_end = cutter.understood_end();
  out.messages = cutter.messages();
  out.row_cuts = cutter.row_cuts();
  out.stop = cutter.stop();
  out.detail = cutter.detail();
  return out;
}

// Random piece sizes from 1 byte to 1 MiB, most of them small.
ArrowCuts FeedRandomly(const std::string& s, const ArrowCutOptions& o, uint32_t seed) {
  std::mt19937 rng(seed);
  return FeedInPieces(s, o, [&](const ArrowStreamCutter&) {
    return size_t(1 + rng() % (size_t{1} << (rng() % 21)));
  });
}

void ExpectSameCuts(const ArrowCuts& got, const ArrowCuts& want, const std::string& what) {
  EXPECT_EQ(got.cuts, want.cuts) << what;
  EXPECT_EQ(got.understood_end, want.understood_end) << what;
  EXPECT_EQ(ArrowStopName(got.stop), std::string(ArrowStopName(want.stop))) << what;
  EXPECT_EQ(got.detail, want.detail) << what;
  EXPECT_EQ(got.messages, want.messages) << what;
  EXPECT_EQ(got.row_cuts, want.row_cuts) << what;
}

// Every way of splitting `s` that the tests use: byte by byte, several random seeds, and the
// cutter's own needed() (the fewest calls a caller bounding its buffer would make).
void ExpectIncrementalMatches(const std::string& s, const ArrowCutOptions& o,
                              const std::string& what) {
  SCOPED_TRACE(what);
  const ArrowCuts whole = Cut(s, o);
  ExpectSameCuts(FeedInPieces(s, o, [](const ArrowStreamCutter&) { return size_t{1}; }), whole,
                 "byte by byte");
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    ExpectSameCuts(FeedRandomly(s, o, seed), whole, "seed " + std::to_string(seed));
  }
  ExpectSameCuts(FeedInPieces(s, o, [](const ArrowStreamCutter& c) { return size_t(c.needed()); }),
                 whole, "needed()");
  // All at once (the copy-free path).
  ExpectSameCuts(FeedInPieces(s, o, [&](const ArrowStreamCutter&) { return s.size(); }), whole,
                 "whole");
}

ArrowCutOptions EveryRow() {
  ArrowCutOptions o;
  o.min_row_piece = 1;
  o.min_piece = 0;
  return o;
}

TEST(ArrowStreamCutterTest, MatchesFindArrowCutsOnPyarrowStreams) {
  for (const char* name : {"dataset.arrows", "types.arrows", "compressed.arrows"}) {
    const std::string s = ReadStream(name);
    ASSERT_FALSE(s.empty()) << name;
    ExpectIncrementalMatches(s, {}, name);
    ExpectIncrementalMatches(s, EveryRow(), std::string(name) + " every row");
  }
}

TEST(ArrowStreamCutterTest, MatchesFindArrowCutsOnWrittenStreams) {
  ExpectIncrementalMatches(Write(MakeRows(250, 1200, 1)).bytes, {}, "large rows");
  ExpectIncrementalMatches(Write(MakeRows(1000, 40, 3), {.batch_rows = 1000}).bytes, EveryRow(),
                           "small rows");
  ExpectIncrementalMatches(Write(MakeRows(40, 150000, 10), {.batch_rows = 20}).bytes, {},
                           "rows above max_size");
  for (const FallbackCase& fc : FallbackCases()) {
    ExpectIncrementalMatches(fc.bytes, {}, fc.name);
  }
}

// A stream cut short at any byte: the cutter, told the prefix and then Finish, stops as
// FindArrowCuts does on that prefix.
TEST(ArrowStreamCutterTest, TruncatedAtEveryByte) {
  const std::vector<std::pair<std::string, std::string>> streams = {
      {"written", Write(MakeRows(12, 300, 4), {.batch_rows = 5}).bytes},
      {"pyarrow dataset", ReadStream("dataset.arrows")},
      {"pyarrow types", ReadStream("types.arrows")}};
  for (const auto& [name, s] : streams) {
    for (size_t len = 0; len <= s.size(); ++len) {
      const std::string prefix = s.substr(0, len);
      const ArrowCuts whole = Cut(prefix, EveryRow());
      ExpectSameCuts(FeedRandomly(prefix, EveryRow(), uint32_t(len)), whole,
                     name + " at " + std::to_string(len));
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// Cuts come out as soon as a message is complete, and needed() says exactly how many bytes
// complete it once its header is known.
TEST(ArrowStreamCutterTest, CutsEachMessageAsSoonAsItIsComplete) {
  const Stream s = Write(MakeRows(30, 500, 13), {.batch_rows = 7});
  const auto* p = reinterpret_cast<const uint8_t*>(s.bytes.data());
  const ArrowCuts whole = Cut(s.bytes);
  ArrowStreamCutter cutter;
  std::vector<uint64_t> cuts;
  size_t at = 0, calls = 0;
  for (uint64_t end : s.message_ends) {
    while (at < end) {
      ASSERT_FALSE(cutter.stopped());
      ASSERT_LE(at + cutter.needed(), end) << "needed() runs past the message";
      cutter.Feed(p + at, size_t(cutter.needed()), &cuts);
      at = cutter.understood_end() + cutter.buffered();
      ++calls;
    }
    ASSERT_EQ(cutter.understood_end(), end);
    EXPECT_EQ(cuts,
              std::vector<uint64_t>(whole.cuts.begin(),
                                    std::upper_bound(whole.cuts.begin(), whole.cuts.end(), end)));
  }
  // Prefix, header, body: at most three calls per message (two for the end-of-stream marker).
  EXPECT_LE(calls, 3 * s.message_ends.size());
  EXPECT_TRUE(cutter.stopped());
  EXPECT_EQ(cutter.stop(), ArrowStop::kEndOfStream);
}

// A message longer than max_message stops the cutter when its header is read, before its
// body arrives, so the buffer stays under the limit; FindArrowCuts stops at the same place.
TEST(ArrowStreamCutterTest, MessageAboveTheLimitStopsBeforeItsBody) {
  const Stream s = Write(MakeRows(20, 2000, 14), {.batch_rows = 10});
  ArrowCutOptions o;
  o.max_message = 16 << 10;  // each batch is about 28 KB
  ArrowStreamCutter cutter(o);
  std::vector<uint64_t> cuts;
  const auto* p = reinterpret_cast<const uint8_t*>(s.bytes.data());
  size_t max_buffered = 0;
  for (size_t at = 0; at < s.bytes.size() && !cutter.stopped(); ++at) {
    cutter.Feed(p + at, 1, &cuts);
    max_buffered = std::max(max_buffered, cutter.buffered());
  }
  ASSERT_TRUE(cutter.stopped());
  EXPECT_EQ(cutter.stop(), ArrowStop::kUnsupported) << cutter.detail();
  EXPECT_EQ(cutter.understood_end(), s.message_ends[0]);
  EXPECT_LT(max_buffered, 1024u);  // the batch's prefix and header, never its body
  const ArrowCuts whole = Cut(s.bytes, o);
  EXPECT_EQ(whole.stop, ArrowStop::kUnsupported);
  EXPECT_EQ(whole.detail, cutter.detail());
  EXPECT_EQ(whole.cuts, cuts);
  ExpectIncrementalMatches(s.bytes, o, "limit");
}

// Mutated streams: the incremental and whole cutters agree on whatever they stop at.
TEST(ArrowStreamCutterTest, MutatedStreamsAgree) {
  const Stream s = Write(MakeRows(20, 200, 6), {.batch_rows = 7});
  std::mt19937 rng(15);
  for (int round = 0; round < 1000; ++round) {
    std::string m = s.bytes;
    for (int k = 0, edits = 1 + int(rng() % 4); k < edits; ++k) {
      m[rng() % m.size()] = char(rng());
    }
    ExpectSameCuts(FeedRandomly(m, {}, uint32_t(round)), Cut(m), "round " + std::to_string(round));
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace rankfs
