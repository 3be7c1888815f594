// StreamChunker and SuccessorTable: a stream is cut exactly as FastCdc::Split cuts the whole
// stream whatever the write sizes; a second copy is taken from confirmed guesses without
// hashing; wrong or missing guesses fall back to cutting; streams in lockstep hash each chunk
// about once; guesses never cross dedup scopes.
#include "fs/stream_chunker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/chunk_cache.h"
#include "fs/successor_table.h"
#include "tests/testutil/test_data.h"

namespace rankfs {
namespace {

const std::string& Data() {
  static const std::string d = MakeRealData(12 << 20, 21);
  return d;
}

// The chunk sizes these tests' counts were worked out with. At the 32 KiB default the 12 MiB
// of real test data repeats some chunks inside itself, so even a first stream finds guesses
// and "cut" and "predicted" byte counts no longer split along copies.
constexpr ChunkerParams kHarnessParams{.min_size = 16 * 1024, .avg_size = 64 * 1024,
                                       .max_size = 256 * 1024};

struct Harness {
  explicit Harness(uint64_t cache_bytes = 64 << 20)
      : cdc(kHarnessParams), successors(1 << 16), cache(nullptr, cache_bytes) {}
  StreamChunker::Context Ctx(bool guesses = true) {
    return {&cdc, guesses ? &successors : nullptr, guesses ? &cache : nullptr};
  }
  FastCdc cdc;
  SuccessorTable successors;
  ChunkCache cache;
};

// Hashes the chunks emitted from out[first] on, as a pipeline worker does right away.
void HashNew(Harness* h, const std::vector<ChunkRef>& out, size_t first) {
  for (size_t i = first; i < out.size(); ++i) EnsureHashed(*out[i], &h->successors, &h->cache);
}

// Appends `data` in pieces of random sizes in [1, max_piece] and finishes the stream, hashing
// what it emits as it goes.
std::vector<ChunkRef> Feed(Harness* h, StreamChunker* s, const std::string& data, size_t max_piece,
                           uint64_t seed, std::optional<uint32_t> scope = std::nullopt) {
  std::mt19937_64 rng(seed);
  std::vector<ChunkRef> out;
  for (size_t off = 0; off < data.size();) {
    size_t n = std::min<size_t>(data.size() - off, 1 + rng() % max_piece);
    const size_t first = out.size();
    s->Append(std::string_view(data).substr(off, n), scope, &out);
    HashNew(h, out, first);
    off += n;
  }
  const size_t first = out.size();
  s->Finish(scope, &out);
  HashNew(h, out, first);
  return out;
}

// The chunks FastCDC cuts from the whole of `data`.
std::vector<std::pair<uint64_t, ChunkHash>> Reference(const FastCdc& cdc, const std::string& data) {
  std::vector<std::pair<uint64_t, ChunkHash>> ref;
  uint64_t off = 0;
  for (size_t len : cdc.Split(reinterpret_cast<const uint8_t*>(data.data()), data.size())) {
    ref.emplace_back(off, ChunkHash::Of(std::string_view(data).substr(off, len)));
    off += len;
  }
  return ref;
}

void ExpectSameAsSplit(const FastCdc& cdc, const std::string& data,
                       const std::vector<ChunkRef>& got) {
  auto ref = Reference(cdc, data);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(got[i]->hash_state.load(), StreamChunk::kHashed) << "chunk " << i;
    ASSERT_EQ(got[i]->offset, ref[i].first) << "chunk " << i;
    ASSERT_EQ(got[i]->hash, ref[i].second) << "chunk " << i;
    ASSERT_EQ(ChunkHash::Of(*got[i]->bytes), got[i]->hash) << "chunk " << i;
  }
}

TEST(StreamChunkerTest, CutsEqualSplitOfTheWholeStreamForAnyWriteSizes) {
  Harness h;
  for (size_t max_piece : {size_t(1) << 10, size_t(8) << 10, size_t(1) << 20, size_t(3) << 20}) {
    StreamChunker s(h.Ctx(/*guesses=*/false), 0, 1);
    auto got = Feed(&h, &s, Data(), max_piece, max_piece);
    ExpectSameAsSplit(h.cdc, Data(), got);
    EXPECT_EQ(s.cut_bytes(), Data().size());
    EXPECT_EQ(s.predicted_bytes(), 0u);
    EXPECT_EQ(s.buffered(), 0u);
    EXPECT_EQ(s.end(), Data().size());
  }
}

TEST(StreamChunkerTest, BufferedBytesReadBackWhileStreaming) {
  Harness h;
  StreamChunker s(h.Ctx(false), 1000, 1);  // a stream that starts at file offset 1000
  std::vector<ChunkRef> out;
  const std::string part = Data().substr(0, 300000);
  s.Append(part, std::nullopt, &out);
  ASSERT_EQ(s.end(), 1000u + part.size());
  // Emitted chunks plus the buffer give back every byte, at the right offsets.
  std::string seen(part.size(), '\0');
  for (const auto& c : out) seen.replace(c->offset - 1000, c->bytes->size(), *c->bytes);
  std::string buffered(part.size(), 'x');
  s.CopyBuffered(1000, part.size(), buffered.data());
  for (size_t i = s.start() - 1000; i < part.size(); ++i) seen[i] = buffered[i];
  EXPECT_EQ(seen, part);
  // A window straddling the start of the buffer copies only the buffered part.
  std::string window(100, 'y');
  s.CopyBuffered(s.start() - 50, 100, window.data());
  EXPECT_EQ(window.substr(0, 50), std::string(50, 'y'));
  EXPECT_EQ(window.substr(50), part.substr(s.start() - 1000, 50));
}

TEST(StreamChunkerTest, SecondCopyIsTakenFromGuessesWithoutHashing) {
  Harness h;
  StreamChunker a(h.Ctx(), 0, 1);
  auto first = Feed(&h, &a, Data(), 1 << 20, 1);
  StreamChunker b(h.Ctx(), 0, 2);
  auto second = Feed(&h, &b, Data(), 8192, 2);
  ExpectSameAsSplit(h.cdc, Data(), second);
  // Only the first chunk (nothing precedes it) and the last (its end is where the stream
  // stopped, not content-defined, so it is never recorded as a successor) are hashed.
  const uint64_t edges = first.front()->bytes->size() + first.back()->bytes->size();
  EXPECT_EQ(b.cut_bytes(), edges);
  EXPECT_EQ(b.predicted_bytes(), Data().size() - edges);
  for (size_t i = 1; i + 1 < second.size(); ++i) {
    ASSERT_TRUE(second[i]->predicted) << i;
    // The guessed chunk's bytes are the cached copy, not another one.
    ASSERT_EQ(second[i]->bytes.get(), first[i]->bytes.get()) << i;
  }
}

// The memory count in the stats file (chunk_buffer_bytes) counts a shared buffer once, for as
// long as anything holds it, and nothing after.
TEST(StreamChunkerTest, ChunkBuffersAreCountedOnceWhileAnythingHoldsThem) {
  const uint64_t base = LiveChunkBytes();
  uint64_t edges = 0;
  {
    Harness h;
    StreamChunker a(h.Ctx(), 0, 1);
    auto first = Feed(&h, &a, Data(), 1 << 20, 1);
    const uint64_t one_copy = LiveChunkBytes() - base;
    EXPECT_GE(one_copy, Data().size());
    EXPECT_LE(one_copy, Data().size() + Data().size() / 100);
    StreamChunker b(h.Ctx(), 0, 2);
    auto second = Feed(&h, &b, Data(), 8192, 2);
    // The second copy adds only the two chunks it had to cut.
    edges = b.cut_bytes();
    ASSERT_GT(edges, 0u);
    EXPECT_GE(LiveChunkBytes() - base, one_copy + edges);
    EXPECT_LE(LiveChunkBytes() - base, one_copy + edges + (64u << 10));
    first.clear();
    second.clear();
    // The cache (64 MiB) still holds all of them.
    EXPECT_GE(LiveChunkBytes() - base, one_copy);
  }
  EXPECT_EQ(LiveChunkBytes(), base);
}

TEST(StreamChunkerTest, AChangedByteFallsBackToCuttingAndResynchronises) {
  Harness h;
  StreamChunker a(h.Ctx(), 0, 1);
  Feed(&h, &a, Data(), 1 << 20, 1);
  std::string changed = Data();
  changed[5 << 20] ^= 0x5a;
  StreamChunker b(h.Ctx(), 0, 2);
  auto got = Feed(&h, &b, changed, 1 << 20, 2);
  ExpectSameAsSplit(h.cdc, changed, got);
  // The chunk holding the change (and the one after, whose guess key is new) is hashed; the
  // rest is guessed.
  EXPECT_GT(b.predicted_bytes(), changed.size() * 9 / 10);
  EXPECT_LT(b.cut_bytes(), 4u * h.cdc.params().max_size);
}

TEST(StreamChunkerTest, AShiftedCopyResynchronisesAfterItsHeader) {
  Harness h;
  StreamChunker a(h.Ctx(), 0, 1);
  Feed(&h, &a, Data(), 1 << 20, 1);
  const std::string shifted = MakeRandomData(137, 5) + Data();
  StreamChunker b(h.Ctx(), 0, 2);
  auto got = Feed(&h, &b, shifted, 1 << 20, 3);
  ExpectSameAsSplit(h.cdc, shifted, got);
  EXPECT_GT(b.predicted_bytes(), shifted.size() * 9 / 10);
}

TEST(StreamChunkerTest, StreamsTakingTurnsHashEachChunkOnce) {
  Harness h;
  StreamChunker a(h.Ctx(), 0, 1), b(h.Ctx(), 0, 2);
  std::vector<ChunkRef> out_a, out_b;
  const std::string& d = Data();
  const size_t step = 1 << 20;
  auto append = [&](StreamChunker* s, std::vector<ChunkRef>* out, std::string_view piece) {
    const size_t first = out->size();
    s->Append(piece, std::nullopt, out);
    HashNew(&h, *out, first);
  };
  // The two streams take turns, one write each, as ranks in lockstep do.
  for (size_t off = 0; off < d.size(); off += step) {
    std::string_view piece = std::string_view(d).substr(off, step);
    append(&a, &out_a, piece);
    append(&b, &out_b, piece);
  }
  for (auto [s, out] : {std::pair{&a, &out_a}, std::pair{&b, &out_b}}) {
    const size_t first = out->size();
    s->Finish(std::nullopt, out);
    HashNew(&h, *out, first);
  }
  ExpectSameAsSplit(h.cdc, d, out_a);
  ExpectSameAsSplit(h.cdc, d, out_b);
  // Whoever writes a piece first hashes it; the other confirms each chunk with a memcmp.
  EXPECT_EQ(b.predicted_bytes(),
            d.size() - out_a.front()->bytes->size() - out_a.back()->bytes->size());
}

TEST(StreamChunkerTest, ConcurrentStreamsInLockstepMostlyHashOnce) {
  Harness h;
  const std::string& d = Data();
  StreamChunker a(h.Ctx(), 0, 1), b(h.Ctx(), 0, 2);
  std::vector<ChunkRef> out_a, out_b;
  // Each thread hashes what it cuts right away, as an idle pipeline worker would.
  auto writer = [&](StreamChunker* s, std::vector<ChunkRef>* out) {
    for (size_t off = 0; off < d.size(); off += 1 << 20) {
      const size_t first = out->size();
      s->Append(std::string_view(d).substr(off, 1 << 20), std::nullopt, out);
      HashNew(&h, *out, first);
    }
    const size_t first = out->size();
    s->Finish(std::nullopt, out);
    HashNew(&h, *out, first);
  };
  std::thread ta(writer, &a, &out_a), tb(writer, &b, &out_b);
  ta.join();
  tb.join();
  ExpectSameAsSplit(h.cdc, d, out_a);
  ExpectSameAsSplit(h.cdc, d, out_b);
  // Two streams at the same point would both hash every chunk (2x) but for the claims: the
  // one that finds the next chunk claimed by the other waits for its result.
  EXPECT_LT(a.cut_bytes() + b.cut_bytes(), d.size() * 7 / 4)
      << "a cut " << a.cut_bytes() << ", b cut " << b.cut_bytes();
}

// The pipeline's workers are busy (compressing) and hash nothing: a stream that finds the
// next chunk claimed compares its bytes with the chunk the claimant attached and hashes that
// chunk itself, instead of waiting up to kMaxWaitBytes and then cutting and hashing its own.
TEST(StreamChunkerTest, AClaimedChunkIsTakenFromItsCutterWithoutAWorker) {
  Harness h;
  const std::string& d = Data();
  StreamChunker a(h.Ctx(), 0, 1), b(h.Ctx(), 0, 2);
  std::vector<ChunkRef> out_a, out_b;
  const size_t step = 256 << 10;
  for (size_t off = 0; off < d.size(); off += step) {
    std::string_view piece = std::string_view(d).substr(off, step);
    a.Append(piece, std::nullopt, &out_a);  // nobody hashes a's chunks meanwhile
    const size_t first = out_b.size();
    b.Append(piece, std::nullopt, &out_b);
    for (size_t i = first; i < out_b.size(); ++i) {
      if (!out_b[i]->predicted) EnsureHashed(*out_b[i], &h.successors, &h.cache);
    }
  }
  a.Finish(std::nullopt, &out_a);
  b.Finish(std::nullopt, &out_b);
  HashNew(&h, out_a, 0);
  HashNew(&h, out_b, 0);
  ExpectSameAsSplit(h.cdc, d, out_a);
  ExpectSameAsSplit(h.cdc, d, out_b);
  // b hashed only the first chunk (nothing before it to claim) and the last (not
  // content-defined); every other chunk is a's, bytes and all, hashed once.
  const uint64_t edges = out_a.front()->bytes->size() + out_a.back()->bytes->size();
  EXPECT_EQ(b.cut_bytes(), edges);
  EXPECT_EQ(b.predicted_bytes(), d.size() - edges);
  ASSERT_EQ(out_a.size(), out_b.size());
  for (size_t i = 1; i + 1 < out_b.size(); ++i) {
    ASSERT_TRUE(out_b[i]->predicted) << i;
    ASSERT_EQ(out_b[i]->bytes.get(), out_a[i]->bytes.get()) << i;
  }
}

TEST(StreamChunkerTest, AClaimedChunkWithOtherBytesIsCutAnew) {
  Harness h;
  std::string changed = Data();
  changed[3 << 20] ^= 0x5a;
  StreamChunker a(h.Ctx(), 0, 1), b(h.Ctx(), 0, 2);
  std::vector<ChunkRef> out_a, out_b;
  const size_t step = 256 << 10;
  for (size_t off = 0; off < changed.size(); off += step) {
    a.Append(std::string_view(Data()).substr(off, step), std::nullopt, &out_a);
    b.Append(std::string_view(changed).substr(off, step), std::nullopt, &out_b);
  }
  a.Finish(std::nullopt, &out_a);
  b.Finish(std::nullopt, &out_b);
  HashNew(&h, out_a, 0);
  HashNew(&h, out_b, 0);
  ExpectSameAsSplit(h.cdc, Data(), out_a);
  ExpectSameAsSplit(h.cdc, changed, out_b);
  EXPECT_GT(b.predicted_bytes(), changed.size() * 8 / 10);
}

// Successor keys are 64-bit fingerprints; were a key of one scope to collide with another's,
// equal bytes would pass the memcmp. The recorded scope keeps the guess from crossing.
TEST(StreamChunkerTest, ACollidingKeyFromAnotherScopeIsNotGuessed) {
  Harness h;
  const std::string& d = Data();
  auto cuts = h.cdc.Split(reinterpret_cast<const uint8_t*>(d.data()), d.size());
  ASSERT_GE(cuts.size(), 3u);
  const std::string_view first(d.data(), cuts[0]), second(d.data() + cuts[0], cuts[1]);
  // Poison: the successor of b's first chunk (scope 2000) is the second chunk as scope 1000
  // stores it, bytes cached, as a key collision would leave it.
  const ChunkHash foreign = ChunkHash::OfScoped(1000, second);
  h.cache.Insert(foreign, std::make_shared<const std::string>(second));
  h.successors.Record(MakeKey(2000u, first),
                      {foreign, uint32_t(second.size()), MakeKey(2000u, second), 1000u});
  StreamChunker b(h.Ctx(), 0, 2);
  auto got = Feed(&h, &b, d, 1 << 20, 2, /*scope=*/2000u);
  for (const auto& c : got) ASSERT_EQ(c->hash, ChunkHash::OfScoped(2000, *c->bytes));
  EXPECT_FALSE(got[1]->predicted);
}

TEST(StreamChunkerTest, GuessesWhoseBytesLeftTheCacheAreCut) {
  Harness h(/*cache_bytes=*/0);  // nothing is ever cached
  StreamChunker a(h.Ctx(), 0, 1);
  Feed(&h, &a, Data(), 1 << 20, 1);
  StreamChunker b(h.Ctx(), 0, 2);
  auto got = Feed(&h, &b, Data(), 1 << 20, 2);
  ExpectSameAsSplit(h.cdc, Data(), got);
  EXPECT_EQ(b.predicted_bytes(), 0u);
  EXPECT_EQ(b.cut_bytes(), Data().size());
}

TEST(StreamChunkerTest, GuessesNeverCrossDedupScopes) {
  Harness h;
  StreamChunker a(h.Ctx(), 0, 1);
  Feed(&h, &a, Data(), 1 << 20, 1, /*scope=*/1000u);
  StreamChunker b(h.Ctx(), 0, 2);
  auto got = Feed(&h, &b, Data(), 1 << 20, 2, /*scope=*/2000u);
  EXPECT_EQ(b.predicted_bytes(), 0u);
  for (const auto& c : got) ASSERT_EQ(c->hash, ChunkHash::OfScoped(2000, *c->bytes));
  // The same owner again is guessed.
  StreamChunker c(h.Ctx(), 0, 3);
  Feed(&h, &c, Data(), 1 << 20, 3, /*scope=*/1000u);
  EXPECT_GT(c.predicted_bytes(), Data().size() * 9 / 10);
}

// A file's owner can change in the middle of its stream (chown). The guess being confirmed
// when it does was made for the old scope: completing it under the new one would emit a chunk
// whose address belongs to the old owner but whose record says the new one.
TEST(StreamChunkerTest, AScopeChangeInTheMiddleOfAGuessCutsTheChunkAnew) {
  Harness h;
  const std::string& d = Data();
  StreamChunker a(h.Ctx(), 0, 1);
  Feed(&h, &a, d, 1 << 20, 1, /*scope=*/1000u);
  auto cuts = h.cdc.Split(reinterpret_cast<const uint8_t*>(d.data()), d.size());
  ASSERT_GE(cuts.size(), 10u);
  size_t split = 0;  // half-way into the ninth chunk, whose guess is then half confirmed
  for (size_t i = 0; i < 8; ++i) split += cuts[i];
  split += cuts[8] / 2;
  StreamChunker b(h.Ctx(), 0, 2);
  std::vector<ChunkRef> got;
  b.Append(std::string_view(d).substr(0, split), 1000u, &got);
  HashNew(&h, got, 0);
  ASSERT_GT(b.predicted_bytes(), 0u) << "the first part is guessed from a's chunks";
  size_t first = got.size();
  b.Append(std::string_view(d).substr(split), 2000u, &got);
  HashNew(&h, got, first);
  first = got.size();
  b.Finish(2000u, &got);
  HashNew(&h, got, first);
  for (const auto& c : got) {
    ASSERT_EQ(c->hash, ChunkHash::ForScope(c->scope, *c->bytes)) << "chunk at " << c->offset;
    // Bytes that arrived after the change are the new owner's.
    if (c->offset + c->bytes->size() > split) {
      EXPECT_EQ(c->scope, 2000u) << "chunk at " << c->offset;
    }
  }
}

TEST(SuccessorTableTest, ClaimsHoldOffOthersUntilRecordedOrGivenUp) {
  SuccessorTable t(1024);
  const uint64_t a = MakeKey(std::nullopt, "a"), b = MakeKey(std::nullopt, "b");
  const SuccessorTable::Next after_a{ChunkHash::Of("b"), 4096, b, std::nullopt};
  SuccessorTable::Next next;
  EXPECT_EQ(t.Lookup(a, 1, &next), SuccessorTable::Probe::kUnknown);
  t.Claim(a, 1);
  EXPECT_EQ(t.Lookup(a, 2, &next), SuccessorTable::Probe::kClaimed);
  EXPECT_EQ(t.Lookup(a, 1, &next), SuccessorTable::Probe::kUnknown);  // one's own claim
  t.Claim(a, 2);  // a live claim is not taken over
  EXPECT_EQ(t.Lookup(a, 2, &next), SuccessorTable::Probe::kClaimed);
  t.Record(a, after_a);
  ASSERT_EQ(t.Lookup(a, 2, &next), SuccessorTable::Probe::kKnown);
  EXPECT_EQ(next.hash, after_a.hash);
  EXPECT_EQ(next.length, 4096u);
  EXPECT_EQ(next.key, b);
  t.Claim(b, 1);
  t.Unclaim(b, 2);  // not the owner: nothing changes
  EXPECT_EQ(t.Lookup(b, 2, &next), SuccessorTable::Probe::kClaimed);
  t.Unclaim(b, 1);
  EXPECT_EQ(t.Lookup(b, 2, &next), SuccessorTable::Probe::kUnknown);
}

TEST(SuccessorTableTest, AClaimCarriesItsCutChunkWeaklyUntilResolved) {
  SuccessorTable t(1024);
  const uint64_t a = MakeKey(std::nullopt, "a");
  SuccessorTable::Next next;
  std::shared_ptr<StreamChunk> seen;
  auto chunk = std::make_shared<StreamChunk>();
  t.Attach(a, 1, chunk);  // no claim yet: nothing attached
  t.Claim(a, 1);
  ASSERT_EQ(t.Lookup(a, 2, &next, &seen), SuccessorTable::Probe::kClaimed);
  EXPECT_EQ(seen, nullptr);
  t.Attach(a, 2, chunk);  // not the claimant's: ignored
  ASSERT_EQ(t.Lookup(a, 2, &next, &seen), SuccessorTable::Probe::kClaimed);
  EXPECT_EQ(seen, nullptr);
  t.Attach(a, 1, chunk);
  ASSERT_EQ(t.Lookup(a, 2, &next, &seen), SuccessorTable::Probe::kClaimed);
  EXPECT_EQ(seen, chunk);
  seen.reset();
  chunk.reset();  // the table does not keep a chunk alive
  ASSERT_EQ(t.Lookup(a, 2, &next, &seen), SuccessorTable::Probe::kClaimed);
  EXPECT_EQ(seen, nullptr);
  auto again = std::make_shared<StreamChunk>();
  t.Attach(a, 1, again);
  t.Record(a, {ChunkHash::Of("b"), 4096, MakeKey(std::nullopt, "b"), std::nullopt});
  ASSERT_EQ(t.Lookup(a, 2, &next, &seen), SuccessorTable::Probe::kKnown);
  EXPECT_EQ(again.use_count(), 1);
}

// On a loaded machine the claimant's chunk may wait in a worker's queue far longer than
// kClaimNs; while its stream holds it, the claim must not lapse into duplicate hashing.
TEST(SuccessorTableTest, AClaimWithALiveChunkOutlastsItsTimeout) {
  SuccessorTable t(1024);
  const uint64_t a = MakeKey(std::nullopt, "a"), b = MakeKey(std::nullopt, "b");
  SuccessorTable::Next next;
  std::shared_ptr<StreamChunk> seen;
  auto chunk = std::make_shared<StreamChunk>();
  t.Claim(a, 1);
  t.Attach(a, 1, chunk);
  t.Claim(b, 1);  // no chunk attached: times out
  std::this_thread::sleep_for(std::chrono::nanoseconds(SuccessorTable::kClaimNs + 5'000'000));
  ASSERT_EQ(t.Lookup(a, 2, &next, &seen), SuccessorTable::Probe::kClaimed);
  EXPECT_EQ(seen, chunk);
  t.Claim(a, 2);  // still live: not taken over
  ASSERT_EQ(t.Lookup(a, 3, &next, &seen), SuccessorTable::Probe::kClaimed);
  EXPECT_EQ(seen, chunk);
  EXPECT_EQ(t.Lookup(b, 2, &next), SuccessorTable::Probe::kUnknown);
  seen.reset();
  chunk.reset();  // its batch committed and let go: the claim times out as usual
  EXPECT_EQ(t.Lookup(a, 2, &next), SuccessorTable::Probe::kUnknown);
}

TEST(SuccessorTableTest, KeysTellScopesApart) {
  const std::string bytes = MakeRealData(65536, 3);
  EXPECT_EQ(MakeKey(std::nullopt, bytes), MakeKey(std::nullopt, bytes));
  EXPECT_NE(MakeKey(1000u, bytes), MakeKey(1001u, bytes));
  EXPECT_NE(MakeKey(std::nullopt, bytes), MakeKey(0u, bytes));
  EXPECT_NE(MakeKey(std::nullopt, bytes), MakeKey(std::nullopt, bytes.substr(1)));
}

}  // namespace
}  // namespace rankfs
