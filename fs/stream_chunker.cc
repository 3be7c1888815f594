#include "fs/stream_chunker.h"

#include <algorithm>
#include <cstring>

namespace rankfs {

StreamChunker::StreamChunker(const Context& ctx, uint64_t start, uint64_t owner)
    : ctx_(ctx), owner_(owner), pos_(start) {}

void StreamChunker::Append(std::string_view data, const std::optional<uint32_t>& scope,
                           std::vector<StreamChunk>* out) {
  if (data.empty()) return;
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

void StreamChunker::Finish(const std::optional<uint32_t>& scope, std::vector<StreamChunk>* out) {
  ProcessBuffer(/*final=*/true, scope, out);
  std::string().swap(buf_);  // an ended stream keeps no buffer
  head_ = 0;
}

void StreamChunker::CopyBuffered(uint64_t off, size_t n, char* dst) const {
  const uint64_t s = std::max(off, pos_), t = std::min(off + n, end());
  if (s >= t) return;
  std::memcpy(dst + (s - off), buf_.data() + head_ + (s - pos_), t - s);
}

void StreamChunker::Emit(size_t len, const ChunkHash& hash,
                         std::shared_ptr<const std::string> bytes, bool predicted,
                         bool content_defined, std::vector<StreamChunk>* out) {
  out->push_back(StreamChunk{pos_, hash, std::move(bytes), predicted});
  pos_ += len;
  prev_ = content_defined ? std::optional<ChunkHash>(hash) : std::nullopt;
  no_guess_here_ = false;
}

bool StreamChunker::TryGuess(const char* p, size_t avail, bool final,
                             std::vector<StreamChunk>* out, bool* wait) {
  if (!prev_ || ctx_.successors == nullptr || ctx_.cache == nullptr || no_guess_here_) {
    return false;
  }
  const size_t max = ctx_.cdc->params().max_size;
  if (!guess_) {
    SuccessorTable::Next next;
    switch (ctx_.successors->Lookup(*prev_, owner_, &next)) {
      case SuccessorTable::Probe::kClaimed:
        // Another stream is hashing this very chunk: let it, and confirm its result when more
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
        ctx_.successors->Claim(*prev_, owner_);
        no_guess_here_ = true;
        return false;
      case SuccessorTable::Probe::kKnown: {
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
  predicted_bytes_ += done.next.length;
  Emit(done.next.length, done.next.hash, std::move(done.bytes), /*predicted=*/true,
       /*content_defined=*/true, out);
  return true;
}

void StreamChunker::ProcessBuffer(bool final, const std::optional<uint32_t>& scope,
                                  std::vector<StreamChunk>* out) {
  head_ += Process(buf_.data() + head_, buffered(), final, scope, out);
}

size_t StreamChunker::Process(const char* p, size_t n, bool final,
                              const std::optional<uint32_t>& scope,
                              std::vector<StreamChunk>* out) {
  const size_t max = ctx_.cdc->params().max_size;
  size_t used = 0;
  for (;;) {
    const size_t avail = n - used;
    if (avail == 0) return used;
    const uint64_t before = pos_;
    bool wait = false;
    if (TryGuess(p + used, avail, final, out, &wait)) {
      used += pos_ - before;
      continue;
    }
    if (wait) return used;
    if (!final && avail < max) return used;  // a cut needs max_size bytes of lookahead
    const auto* bytes_at = reinterpret_cast<const uint8_t*>(p + used);
    const size_t len = ctx_.cdc->NextCut(bytes_at, avail);
    // The cut is where FastCDC would put it in the whole stream unless it is only where the
    // bytes ran out (the last chunk).
    const bool content_defined = len < avail || avail >= max;
    auto bytes = std::make_shared<const std::string>(p + used, len);
    const ChunkHash h = ChunkHash::ForScope(scope, *bytes);
    hashed_bytes_ += len;
    if (ctx_.cache != nullptr) ctx_.cache->Insert(h, bytes);
    if (prev_ && ctx_.successors != nullptr) {
      if (content_defined) {
        ctx_.successors->Record(*prev_, h, uint32_t(len));
      } else {
        ctx_.successors->Unclaim(*prev_, owner_);
      }
    }
    Emit(len, h, std::move(bytes), /*predicted=*/false, content_defined, out);
    used += len;
  }
}

}  // namespace rankfs
