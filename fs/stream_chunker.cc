#include "fs/stream_chunker.h"

#include <algorithm>
#include <cstring>

#include "store/crc32c.h"

namespace rankfs {

uint64_t MakeKey(const std::optional<uint32_t>& scope, std::string_view bytes) {
  // A different CRC seed per scope keeps equal bytes of different owners apart.
  const uint32_t seed = scope ? (*scope * 0x9e3779b1u) | 1u : 0u;
  return uint64_t(Crc32c(bytes.data(), bytes.size(), seed)) << 32 | uint32_t(bytes.size());
}

void EnsureHashed(StreamChunk& c, SuccessorTable* successors, ChunkCache* cache) {
  int state = StreamChunk::kUnhashed;
  if (c.hash_state.compare_exchange_strong(state, StreamChunk::kHashing)) {
    c.hash = ChunkHash::ForScope(c.scope, *c.bytes);
    if (cache != nullptr) cache->Insert(c.hash, c.bytes);
    if (successors != nullptr && c.prev_key) {
      successors->Record(*c.prev_key, {c.hash, uint32_t(c.bytes->size()), c.key, c.scope});
    }
    c.hash_state.store(StreamChunk::kHashed, std::memory_order_release);
    c.hash_state.notify_all();
    return;
  }
  while ((state = c.hash_state.load(std::memory_order_acquire)) != StreamChunk::kHashed) {
    c.hash_state.wait(state);  // another thread is hashing it: a few tens of microseconds
  }
}

StreamChunker::StreamChunker(const Context& ctx, uint64_t start, uint64_t owner)
    : ctx_(ctx), owner_(owner), pos_(start) {}

void StreamChunker::SetScope(const std::optional<uint32_t>& scope) {
  if (scope == scope_) return;
  scope_ = scope;
  // The guess being confirmed carries the old scope's address, and a successor entry from the
  // last chunk would link the two scopes. (No claim is left open here: a claim is made only
  // when the chunk after it is cut in the same call.)
  guess_.reset();
  prev_key_.reset();
  no_guess_here_ = false;
}

void StreamChunker::Append(std::string_view data, const std::optional<uint32_t>& scope,
                           std::vector<ChunkRef>* out) {
  if (data.empty()) return;
  SetScope(scope);
  size_t i = 0;  // data[0, i) is in the buffer or emitted
  if (buffered() > 0) {
    // The chunk at the buffer's head needs its bytes contiguous: join up to max_size bytes
    // of the write to the buffered tail, which decides at least that chunk.
    if (head_ > 0) {
      buf_.erase(0, head_);
      head_ = 0;
    }
    const size_t take = std::min<size_t>(data.size(), ctx_.cdc->params().max_size);
    buf_.append(data.data(), take);
    i = take;
    ProcessBuffer(/*final=*/false, scope, out);
    if (buffered() <= take) {
      // What is left is a copy of the write's bytes: drop it and go on in the write itself.
      i -= buffered();
      buf_.clear();
      head_ = 0;
    } else {
      // Still inside the old tail (a guess or a claim waits for bytes): keep joining.
      buf_.append(data.data() + i, data.size() - i);
      ProcessBuffer(/*final=*/false, scope, out);
      return;
    }
  }
  // The next chunk starts at data[i]: cut the write in place, buffer only its tail.
  const size_t used = Process(data.data() + i, data.size() - i, /*final=*/false, scope, out);
  buf_.assign(data.data() + i + used, data.size() - i - used);
  head_ = 0;
}

void StreamChunker::Finish(const std::optional<uint32_t>& scope, std::vector<ChunkRef>* out) {
  SetScope(scope);
  ProcessBuffer(/*final=*/true, scope, out);
  std::string().swap(buf_);  // an ended stream keeps no buffer
  head_ = 0;
}

void StreamChunker::CopyBuffered(uint64_t off, size_t n, char* dst) const {
  const uint64_t s = std::max(off, pos_), t = std::min(off + n, end());
  if (s >= t) return;
  std::memcpy(dst + (s - off), buf_.data() + head_ + (s - pos_), t - s);
}

void StreamChunker::Emit(ChunkRef c, size_t len, bool content_defined, std::vector<ChunkRef>* out) {
  c->offset = pos_;
  pos_ += len;
  prev_key_ = content_defined ? std::optional<uint64_t>(c->key) : std::nullopt;
  no_guess_here_ = false;
  out->push_back(std::move(c));
}

bool StreamChunker::TryGuess(const char* p, size_t avail, bool final,
                             const std::optional<uint32_t>& scope, std::vector<ChunkRef>* out,
                             bool* wait) {
  if (!prev_key_ || ctx_.successors == nullptr || ctx_.cache == nullptr || no_guess_here_) {
    return false;
  }
  const size_t max = ctx_.cdc->params().max_size;
  if (!guess_) {
    SuccessorTable::Next next;
    ChunkRef claimed;
    switch (ctx_.successors->Lookup(*prev_key_, owner_, &next, &claimed)) {
      case SuccessorTable::Probe::kClaimed:
        if (claimed != nullptr) {
          // The claimant has cut it: a guess like any other, confirmed against its bytes. Its
          // address is computed here if no worker's got to it yet (once per chunk, whoever
          // comes first; that records it as the successor for the other streams too).
          if (claimed->scope != scope) {
            no_guess_here_ = true;
            return false;
          }
          EnsureHashed(*claimed, ctx_.successors, ctx_.cache);
          next = {claimed->hash, uint32_t(claimed->bytes->size()), claimed->key, claimed->scope};
          guess_ = Guess{next, claimed->bytes, 0};
          break;
        }
        // Another stream is cutting this very chunk: let it, and confirm its result when more
        // of our bytes are here. Past kMaxWaitBytes (or at the end) hash them ourselves.
        if (!final && avail < kMaxWaitBytes) {
          *wait = true;
        } else {
          no_guess_here_ = true;
        }
        return false;
      case SuccessorTable::Probe::kUnknown:
        if (!final && avail < max) {  // not cuttable yet: ask again when more bytes are here
          *wait = true;
          return false;
        }
        ctx_.successors->Claim(*prev_key_, owner_);  // until our hash of it is recorded
        no_guess_here_ = true;
        return false;
      case SuccessorTable::Probe::kKnown: {
        if (next.scope != scope) {  // keys that collided across scopes: never guess across
          no_guess_here_ = true;
          return false;
        }
        std::shared_ptr<const std::string> bytes = ctx_.cache->Peek(next.hash);
        if (bytes == nullptr || bytes->size() != next.length) {
          no_guess_here_ = true;  // its bytes are gone from the cache: cut and hash
          return false;
        }
        guess_ = Guess{next, std::move(bytes), 0};
        break;
      }
    }
  }
  Guess& g = *guess_;
  const size_t n = std::min<size_t>(avail, g.next.length);
  if (std::memcmp(p + g.matched, g.bytes->data() + g.matched, n - g.matched) != 0) {
    guess_.reset();
    no_guess_here_ = true;
    return false;
  }
  g.matched = n;
  if (n < g.next.length) {
    if (final) {  // the stream ends inside the guessed chunk: it cannot be that chunk
      guess_.reset();
      no_guess_here_ = true;
    } else {
      *wait = true;
    }
    return false;
  }
  Guess done = std::move(g);
  guess_.reset();
  EmitPredicted(std::move(done.bytes), done.next.key, done.next.hash, scope, out);
  return true;
}

void StreamChunker::EmitPredicted(std::shared_ptr<const std::string> bytes, uint64_t key,
                                  const ChunkHash& hash, const std::optional<uint32_t>& scope,
                                  std::vector<ChunkRef>* out) {
  const size_t len = bytes->size();
  predicted_bytes_ += len;
  auto c = std::make_shared<StreamChunk>();
  c->bytes = std::move(bytes);
  c->scope = scope;
  c->key = key;
  c->predicted = true;
  c->hash = hash;
  c->hash_state.store(StreamChunk::kHashed, std::memory_order_relaxed);
  Emit(std::move(c), len, /*content_defined=*/true, out);
}

void StreamChunker::ProcessBuffer(bool final, const std::optional<uint32_t>& scope,
                                  std::vector<ChunkRef>* out) {
  head_ += Process(buf_.data() + head_, buffered(), final, scope, out);
}

size_t StreamChunker::Process(const char* p, size_t n, bool final,
                              const std::optional<uint32_t>& scope, std::vector<ChunkRef>* out) {
  const size_t max = ctx_.cdc->params().max_size;
  size_t used = 0;
  for (;;) {
    const size_t avail = n - used;
    if (avail == 0) return used;
    const uint64_t before = pos_;
    bool wait = false;
    if (TryGuess(p + used, avail, final, scope, out, &wait)) {
      used += pos_ - before;
      continue;
    }
    if (wait) return used;
    if (!final && avail < max) return used;  // a cut needs max_size bytes of lookahead
    const size_t len = ctx_.cdc->NextCut(reinterpret_cast<const uint8_t*>(p + used), avail);
    // The cut is where FastCDC would put it in the whole stream unless it is only where the
    // bytes ran out (the last chunk).
    const bool content_defined = len < avail || avail >= max;
    auto c = std::make_shared<StreamChunk>();
    c->bytes = NewChunkBytes(std::string(p + used, len));
    c->scope = scope;
    c->key = MakeKey(scope, *c->bytes);
    if (prev_key_ && ctx_.successors != nullptr) {
      if (content_defined) {
        c->prev_key = prev_key_;                         // recorded when the chunk is hashed
        ctx_.successors->Attach(*prev_key_, owner_, c);  // for streams that find our claim
      } else {
        ctx_.successors->Unclaim(*prev_key_, owner_);
      }
    }
    cut_bytes_ += len;
    Emit(std::move(c), len, content_defined, out);
    used += len;
  }
}

}  // namespace rankfs
