// FindArrowCuts and ArrowStreamCutter (see arrow_ipc.h): both run MessageCutter::Message, one
// message at a time. The stream layout and the FlatBuffers schema of its headers
// (Message.fbs, Schema.fbs) are Apache Arrow's; docs/design.md, "Space: Arrow IPC cut points",
// names the fields read here.
#include "store/arrow_ipc.h"

#include <algorithm>
#include <cstring>

#include "store/arrow_schema.h"
#include "store/flatbuffer_view.h"

namespace rankfs {
namespace {

constexpr uint32_t kContinuation = 0xFFFFFFFFu;

using arrow_internal::Field;
using arrow_internal::Layout;

// MessageHeader union tags of the Arrow FlatBuffers schema.
enum : uint8_t { kMsgSchema = 1, kMsgDictionaryBatch = 2, kMsgRecordBatch = 3 };

struct BufferSpan {
  uint64_t start = 0;  // absolute position in the input
  uint64_t length = 0;
};

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

namespace arrow_internal {

// Understands and cuts one message at a time, keeping what later messages need (the schema and
// the running counts). Every step returns false when it does not understand something, after
// recording why (Stop); nothing throws.
class MessageCutter {
 public:
  enum class Step { kDone, kNeedMore, kStopped };

  explicit MessageCutter(const ArrowCutOptions& o) : opt_(o) {}

  // Reads the message that starts at absolute position `pos`, of which the first `avail` bytes
  // are at p; `ended`: no byte follows them. The checks run in the order of the bytes they
  // read, so the answer does not depend on how many bytes beyond the message are available.
  //  kDone: the message is understood, its cuts are appended to *cuts, *need is its length,
  //    the counts are updated (an end-of-stream marker also sets stop to kEndOfStream);
  //  kNeedMore (only when !ended): nothing changed; call again with at least *need (> avail)
  //    bytes of the message;
  //  kStopped: result().stop and detail say why.
  Step Message(const uint8_t* p, size_t avail, uint64_t pos, bool ended,
               std::vector<uint64_t>* cuts, uint64_t* need);

  // The counts and the stop (its cuts field is not used).
  const ArrowCuts& result() const { return out_; }
  ArrowCuts& result() { return out_; }

 private:
  bool Stop(ArrowStop why, std::string detail) {
    out_.stop = why;
    out_.detail = std::move(detail);
    return false;
  }
  const uint8_t* At(uint64_t abs) const { return msg_ + (abs - msg_pos_); }

  bool Cut(uint8_t tag, const flatbuffer::View& view, const flatbuffer::Table& header,
           uint64_t body, uint64_t body_len);
  bool CutBatch(const flatbuffer::Table& rb, uint64_t body, uint64_t body_len,
                const std::vector<const Field*>& columns);
  bool Walk(const Field& f, const std::vector<uint64_t>* rows, bool values_by_row, int depth);
  bool NextBuffer(BufferSpan* b);
  bool ReadOffsets(const BufferSpan& b, uint32_t width, const std::vector<uint64_t>& rows,
                   std::vector<uint64_t>* out);
  void RowCuts(const BufferSpan& b, const std::vector<uint64_t>& rel_positions);
  void CutStructural(uint64_t pos);
  void CutRow(uint64_t pos);

  const ArrowCutOptions opt_;
  ArrowCuts out_;

  bool have_schema_ = false;
  Schema schema_;

  // The message being read: its bytes from absolute position msg_pos_ are at msg_.
  const uint8_t* msg_ = nullptr;
  uint64_t msg_pos_ = 0;
  // Its cuts become final only when all of it is understood.
  std::vector<uint64_t> pending_;
  uint64_t pending_rows_ = 0;
  uint64_t last_cut_ = 0;
  bool last_is_structural_ = false;  // last_cut_ is a structural cut inside this message
  // The record batch being cut.
  struct Node {
    int64_t length, null_count;
  };
  struct Buffer {
    int64_t offset, length;
  };
  std::vector<Node> nodes_;
  std::vector<Buffer> buffers_;
  size_t next_node_ = 0, next_buffer_ = 0;
  uint64_t body_ = 0, body_len_ = 0, buffers_end_ = 0;
};

MessageCutter::Step MessageCutter::Message(const uint8_t* p, size_t avail, uint64_t pos, bool ended,
                                           std::vector<uint64_t>* cuts, uint64_t* need) {
  msg_ = p;
  msg_pos_ = pos;
  // The message's first `bytes` bytes are needed before going on.
  auto more = [&](uint64_t bytes, const char* where) {
    if (!ended) {
      *need = bytes;
      return Step::kNeedMore;
    }
    Stop(ArrowStop::kTruncated, std::string("input ends inside a message ") + where);
    return Step::kStopped;
  };
  if (avail == 0 && ended) {
    if (out_.messages == 0) {
      Stop(ArrowStop::kNotArrow, "empty input");
    } else {
      Stop(ArrowStop::kEndOfInput, "input ends after a complete message");
    }
    return Step::kStopped;
  }
  // The whole 8-byte prefix is asked for at once: the marker alone could only stop earlier.
  if (avail < 4) return more(8, "prefix");
  if (Load<uint32_t>(p) != kContinuation) {
    // Streams before Arrow 0.15 had no continuation marker; datasets never writes them.
    Stop(out_.messages == 0 ? ArrowStop::kNotArrow : ArrowStop::kMalformed,
         "no continuation marker at " + std::to_string(pos));
    return Step::kStopped;
  }
  if (avail < 8) return more(8, "prefix");
  const int32_t meta_len = Load<int32_t>(p + 4);
  pending_.clear();
  pending_rows_ = 0;
  last_cut_ = pos;
  last_is_structural_ = false;
  uint64_t length = 8;
  if (meta_len == 0) {  // end-of-stream marker
    out_.stop = ArrowStop::kEndOfStream;
    out_.detail = "end-of-stream marker";
  } else {
    if (meta_len < 0) {
      Stop(ArrowStop::kMalformed, "negative metadata length");
      return Step::kStopped;
    }
    const uint64_t header_end = 8 + uint64_t(meta_len);
    if (header_end > opt_.max_message) {
      Stop(ArrowStop::kUnsupported, "message header longer than max_message");
      return Step::kStopped;
    }
    if (avail < header_end) return more(header_end, "header");
    flatbuffer::View view(p + 8, size_t(meta_len));
    const flatbuffer::Table msg = view.Root();
    const int16_t version = msg.Scalar<int16_t>(0, 0);
    const uint8_t tag = msg.Scalar<uint8_t>(1, 0);
    const flatbuffer::Table header = msg.Child(2);
    const int64_t body_len = msg.Scalar<int64_t>(3, 0);
    if (!view.ok() || !header.valid()) {
      Stop(ArrowStop::kMalformed, "bad message header");
      return Step::kStopped;
    }
    // MetadataVersion V4 (3) and V5 (4), the only ones pyarrow has written since 0.15.
    if (version != 3 && version != 4) {
      Stop(ArrowStop::kUnsupported, "metadata version " + std::to_string(version));
      return Step::kStopped;
    }
    if (body_len < 0) {
      Stop(ArrowStop::kMalformed, "negative body length");
      return Step::kStopped;
    }
    // header_end < 2^31 + 8 and body_len < 2^63: no overflow.
    length = header_end + uint64_t(body_len);
    if (length > opt_.max_message) {
      Stop(ArrowStop::kUnsupported, "message longer than max_message");
      return Step::kStopped;
    }
    if (avail < length) return more(length, "body");
    const uint64_t body = pos + header_end;
    CutStructural(body);
    if (!Cut(tag, view, header, body, uint64_t(body_len))) return Step::kStopped;
  }
  const uint64_t end = pos + length;
  if (end > last_cut_) pending_.push_back(end);
  cuts->insert(cuts->end(), pending_.begin(), pending_.end());
  out_.row_cuts += pending_rows_;
  out_.understood_end = end;
  ++out_.messages;
  *need = length;
  return Step::kDone;
}

// Cuts the body of a complete message whose header (of type `tag`) was read.
bool MessageCutter::Cut(uint8_t tag, const flatbuffer::View& view, const flatbuffer::Table& header,
                        uint64_t body, uint64_t body_len) {
  switch (tag) {
    case kMsgSchema:
      if (have_schema_) return Stop(ArrowStop::kUnsupported, "a second schema message");
      if (!ReadSchema(header, &schema_, &out_.stop, &out_.detail)) return false;
      if (!view.ok()) return Stop(ArrowStop::kMalformed, "bad schema header");
      have_schema_ = true;
      return true;
    case kMsgRecordBatch: {
      if (!have_schema_) return Stop(ArrowStop::kMalformed, "record batch before the schema");
      std::vector<const Field*> columns;
      for (const Field& f : schema_.fields) columns.push_back(&f);
      if (!CutBatch(header, body, body_len, columns)) return false;
      return view.ok() || Stop(ArrowStop::kMalformed, "bad record batch header");
    }
    case kMsgDictionaryBatch: {
      if (!have_schema_) return Stop(ArrowStop::kMalformed, "dictionary before the schema");
      const int64_t id = header.Scalar<int64_t>(0, 0);
      auto it = schema_.dictionaries.find(id);
      if (it == schema_.dictionaries.end()) {
        return Stop(ArrowStop::kMalformed, "dictionary id " + std::to_string(id) + " unknown");
      }
      const flatbuffer::Table data = header.Child(1);
      if (!view.ok() || !data.valid()) return Stop(ArrowStop::kMalformed, "bad dictionary");
      if (!CutBatch(data, body, body_len, {&it->second})) return false;
      return view.ok() || Stop(ArrowStop::kMalformed, "bad dictionary batch header");
    }
    default:
      return Stop(ArrowStop::kUnsupported, "message type " + std::to_string(tag));
  }
}

bool MessageCutter::CutBatch(const flatbuffer::Table& rb, uint64_t body, uint64_t body_len,
                             const std::vector<const Field*>& columns) {
  if (rb.Child(3).valid()) return Stop(ArrowStop::kUnsupported, "compressed body");
  uint32_t count = 0;
  size_t first = 0;
  if (rb.Vector(4, 8, &count, &first) && count > 0) {
    return Stop(ArrowStop::kUnsupported, "variadic buffers");
  }
  const int64_t length = rb.Scalar<int64_t>(0, 0);
  if (length < 0) return Stop(ArrowStop::kMalformed, "negative batch length");
  const flatbuffer::View& v = *rb.view;
  nodes_.clear();
  buffers_.clear();
  if (rb.Vector(1, 16, &count, &first)) {
    for (uint32_t i = 0; i < count; ++i) {
      nodes_.push_back({v.Read<int64_t>(first + 16 * i), v.Read<int64_t>(first + 16 * i + 8)});
    }
  }
  if (rb.Vector(2, 16, &count, &first)) {
    for (uint32_t i = 0; i < count; ++i) {
      buffers_.push_back({v.Read<int64_t>(first + 16 * i), v.Read<int64_t>(first + 16 * i + 8)});
    }
  }
  if (!v.ok()) return Stop(ArrowStop::kMalformed, "bad record batch header");
  next_node_ = next_buffer_ = 0;
  body_ = body;
  body_len_ = body_len;
  buffers_end_ = 0;
  // Row boundaries are kept only where a column could cut at them: every such column has at
  // least 4 bytes per row in the body (an offset, or values), which also bounds the memory.
  std::vector<uint64_t> identity;
  const bool rows = uint64_t(length) <= body_len / 4;
  if (rows) {
    identity.resize(size_t(length) + 1);
    for (size_t i = 0; i < identity.size(); ++i) identity[i] = i;
  }
  for (const Field* f : columns) {
    if (next_node_ < nodes_.size() && nodes_[next_node_].length != length) {
      return Stop(ArrowStop::kMalformed, "column length differs from the batch length");
    }
    if (!Walk(*f, rows ? &identity : nullptr, false, 0)) return false;
  }
  if (next_node_ != nodes_.size() || next_buffer_ != buffers_.size()) {
    return Stop(ArrowStop::kMalformed, "more nodes or buffers than the schema has");
  }
  return true;
}

// Cuts the buffers of field `f`. rows: the element index where each top-level row starts in
// this field (size: batch rows + 1), or null where rows are not followed. values_by_row: the
// field is below a list, so its fixed-width values are cut at rows too.
bool MessageCutter::Walk(const Field& f, const std::vector<uint64_t>* rows, bool values_by_row,
                         int depth) {
  if (next_node_ >= nodes_.size()) return Stop(ArrowStop::kMalformed, "too few field nodes");
  const Node node = nodes_[next_node_++];
  if (node.length < 0 || node.null_count < 0 || node.null_count > node.length) {
    return Stop(ArrowStop::kMalformed, "bad field node");
  }
  if (rows != nullptr && rows->back() > uint64_t(node.length)) {
    return Stop(ArrowStop::kMalformed, "offsets point past a child's length");
  }
  BufferSpan validity, offsets, values;
  if (f.layout != Layout::kNull && !NextBuffer(&validity)) return false;
  switch (f.layout) {
    case Layout::kNull:
      return true;
    case Layout::kBool:
      return NextBuffer(&values);
    case Layout::kFixed: {
      if (!NextBuffer(&values)) return false;
      if (rows == nullptr || !values_by_row || f.bit_width % 8 != 0) return true;
      const uint64_t width = f.bit_width / 8;
      if (rows->back() > values.length / width) {
        return Stop(ArrowStop::kMalformed, "values buffer shorter than its rows");
      }
      std::vector<uint64_t> pos(rows->size());
      for (size_t i = 0; i < pos.size(); ++i) pos[i] = (*rows)[i] * width;
      RowCuts(values, pos);
      return true;
    }
    case Layout::kBinary: {
      if (!NextBuffer(&offsets) || !NextBuffer(&values)) return false;
      if (rows == nullptr) return true;
      std::vector<uint64_t> pos;
      if (!ReadOffsets(offsets, f.offset_width, *rows, &pos)) return false;
      if (pos.back() > values.length) {
        return Stop(ArrowStop::kMalformed, "offsets point past the values buffer");
      }
      RowCuts(values, pos);
      return true;
    }
    case Layout::kList: {
      if (!NextBuffer(&offsets)) return false;
      std::vector<uint64_t> child_rows;
      if (rows != nullptr && !ReadOffsets(offsets, f.offset_width, *rows, &child_rows)) {
        return false;
      }
      return Walk(f.children[0], rows ? &child_rows : nullptr, true, depth + 1);
    }
    case Layout::kFixedList: {
      std::vector<uint64_t> child_rows;
      if (rows != nullptr) {
        child_rows.resize(rows->size());
        for (size_t i = 0; i < rows->size(); ++i) {
          if (__builtin_mul_overflow((*rows)[i], f.list_size, &child_rows[i])) {
            return Stop(ArrowStop::kMalformed, "fixed-size list too long");
          }
        }
      }
      return Walk(f.children[0], rows ? &child_rows : nullptr, true, depth + 1);
    }
    case Layout::kStruct:
      for (const Field& c : f.children) {
        if (!Walk(c, rows, values_by_row, depth + 1)) return false;
      }
      return true;
  }
  return Stop(ArrowStop::kMalformed, "unknown layout");
}

// The next buffer of the batch, checked to lie inside the body after the previous one.
bool MessageCutter::NextBuffer(BufferSpan* b) {
  if (next_buffer_ >= buffers_.size()) return Stop(ArrowStop::kMalformed, "too few buffers");
  const Buffer raw = buffers_[next_buffer_++];
  if (raw.offset < 0 || raw.length < 0 || uint64_t(raw.offset) > body_len_ ||
      uint64_t(raw.length) > body_len_ - uint64_t(raw.offset)) {
    return Stop(ArrowStop::kMalformed, "buffer outside the body");
  }
  if (raw.length == 0) {
    *b = {body_ + uint64_t(raw.offset), 0};
    return true;
  }
  if (uint64_t(raw.offset) < buffers_end_) {
    return Stop(ArrowStop::kUnsupported, "buffers out of order or overlapping");
  }
  buffers_end_ = uint64_t(raw.offset) + uint64_t(raw.length);
  *b = {body_ + uint64_t(raw.offset), uint64_t(raw.length)};
  CutStructural(b->start);
  return true;
}

// out[i] = the offset at index rows[i] of an offsets buffer of `width` bytes per entry;
// checks that they do not decrease.
bool MessageCutter::ReadOffsets(const BufferSpan& b, uint32_t width,
                                const std::vector<uint64_t>& rows, std::vector<uint64_t>* out) {
  if (rows.back() >= b.length / width) {
    return Stop(ArrowStop::kMalformed, "offsets buffer shorter than its rows");
  }
  out->resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const uint8_t* p = At(b.start) + rows[i] * width;
    const int64_t v = width == 4 ? Load<int32_t>(p) : Load<int64_t>(p);
    if (v < 0 || (i > 0 && uint64_t(v) < (*out)[i - 1])) {
      return Stop(ArrowStop::kMalformed, "offsets decrease or are negative");
    }
    (*out)[i] = uint64_t(v);
  }
  return true;
}

// Cuts inside buffer b at row boundaries (positions relative to b.start, non-decreasing,
// within b): a row of at least min_row_piece bytes is a piece of its own; shorter rows are
// grouped until the group reaches row_group_target bytes.
void MessageCutter::RowCuts(const BufferSpan& b, const std::vector<uint64_t>& rel) {
  uint64_t group_start = b.start;
  for (size_t r = 0; r + 1 < rel.size(); ++r) {
    const uint64_t begin = b.start + rel[r], end = b.start + rel[r + 1];
    if (end - begin >= opt_.min_row_piece) {
      if (begin > group_start) CutRow(begin);
      CutRow(end);
      group_start = end;
    } else if (end - group_start >= opt_.row_group_target) {
      CutRow(end);
      group_start = end;
    }
  }
}

// A structural piece shorter than min_piece merges into the piece before it when that one
// also ends at a structural cut of this message, so a buffer whose rows are cut keeps its
// first row apart; otherwise (after a row, or at the message start) into the piece after it.
void MessageCutter::CutStructural(uint64_t pos) {
  if (pos <= last_cut_) return;
  if (pos - last_cut_ < opt_.min_piece) {
    if (!last_is_structural_) return;
    pending_.pop_back();
  }
  pending_.push_back(pos);
  last_cut_ = pos;
  last_is_structural_ = true;
}

void MessageCutter::CutRow(uint64_t pos) {
  if (pos <= last_cut_) return;
  pending_.push_back(pos);
  last_cut_ = pos;
  last_is_structural_ = false;
  ++pending_rows_;
}

}  // namespace arrow_internal

using arrow_internal::MessageCutter;

const char* ArrowStopName(ArrowStop s) {
  switch (s) {
    case ArrowStop::kEndOfStream:
      return "end-of-stream";
    case ArrowStop::kEndOfInput:
      return "end-of-input";
    case ArrowStop::kTruncated:
      return "truncated";
    case ArrowStop::kNotArrow:
      return "not-arrow";
    case ArrowStop::kUnsupported:
      return "unsupported";
    case ArrowStop::kMalformed:
      return "malformed";
  }
  return "?";
}

ArrowCuts FindArrowCuts(const uint8_t* data, size_t n, const ArrowCutOptions& options) {
  MessageCutter core(options);
  std::vector<uint64_t> cuts;
  uint64_t pos = 0, length = 0;
  while (core.Message(data + pos, n - pos, pos, /*ended=*/true, &cuts, &length) ==
             MessageCutter::Step::kDone &&
         core.result().stop != ArrowStop::kEndOfStream) {
    pos += length;
  }
  ArrowCuts out = std::move(core.result());
  out.cuts = std::move(cuts);
  return out;
}

ArrowStreamCutter::ArrowStreamCutter(const ArrowCutOptions& options)
    : core_(std::make_unique<MessageCutter>(options)) {}
ArrowStreamCutter::~ArrowStreamCutter() = default;
ArrowStreamCutter::ArrowStreamCutter(ArrowStreamCutter&&) noexcept = default;
ArrowStreamCutter& ArrowStreamCutter::operator=(ArrowStreamCutter&&) noexcept = default;

ArrowStop ArrowStreamCutter::stop() const { return core_->result().stop; }
const std::string& ArrowStreamCutter::detail() const { return core_->result().detail; }
uint64_t ArrowStreamCutter::understood_end() const { return core_->result().understood_end; }
uint64_t ArrowStreamCutter::messages() const { return core_->result().messages; }
uint64_t ArrowStreamCutter::row_cuts() const { return core_->result().row_cuts; }

// Drops the current message's bytes; a large buffer's memory is returned, not kept for reuse.
void ArrowStreamCutter::Release() {
  constexpr size_t kKeepCapacity = 1 << 20;
  if (buffer_.capacity() > kKeepCapacity) {
    std::vector<uint8_t>().swap(buffer_);
  } else {
    buffer_.clear();
  }
}

void ArrowStreamCutter::Feed(const uint8_t* data, size_t n, std::vector<uint64_t>* cuts) {
  using Step = MessageCutter::Step;
  while (n > 0 && !stopped_) {
    const uint64_t pos = core_->result().understood_end;
    uint64_t need = 0;
    Step step;
    if (buffer_.empty()) {
      // Messages that lie whole in the caller's bytes are cut there, without a copy.
      step = core_->Message(data, n, pos, /*ended=*/false, cuts, &need);
      if (step == Step::kDone) {
        data += need;
        n -= size_t(need);
      } else if (step == Step::kNeedMore) {
        buffer_.assign(data, data + n);
        n = 0;
      }
    } else {
      // need_ > buffer_.size(): take no more than the step needs, so that a message completed
      // here ends exactly at the buffer's end.
      const size_t take = size_t(std::min<uint64_t>(n, need_ - buffer_.size()));
      buffer_.insert(buffer_.end(), data, data + take);
      data += take;
      n -= take;
      if (buffer_.size() < need_) return;
      step = core_->Message(buffer_.data(), buffer_.size(), pos, /*ended=*/false, cuts, &need);
      if (step != Step::kNeedMore) Release();
    }
    switch (step) {
      case Step::kDone:
        need_ = 8;
        stopped_ = core_->result().stop == ArrowStop::kEndOfStream;
        break;
      case Step::kNeedMore:
        need_ = need;
        break;
      case Step::kStopped:
        stopped_ = true;
        break;
    }
  }
  if (stopped_) Release();
}

void ArrowStreamCutter::Finish(std::vector<uint64_t>* cuts) {
  using Step = MessageCutter::Step;
  while (!stopped_) {
    // Only a message shorter than it must be can be left here, so this stops; the loop keeps
    // the result FindArrowCuts's even if a message were complete.
    const uint64_t pos = core_->result().understood_end;
    uint64_t length = 0;
    const Step step =
        core_->Message(buffer_.data(), buffer_.size(), pos, /*ended=*/true, cuts, &length);
    if (step == Step::kDone && core_->result().stop != ArrowStop::kEndOfStream) {
      buffer_.erase(buffer_.begin(), buffer_.begin() + ptrdiff_t(length));
    } else {
      stopped_ = true;
    }
  }
  Release();
}

std::vector<size_t> CutArrowOrFastCdc(const uint8_t* data, size_t n, const FastCdc& cdc,
                                      const ArrowCutOptions& options) {
  const ArrowCuts a = FindArrowCuts(data, n, options);
  std::vector<size_t> lengths;
  uint64_t prev = 0;
  auto add = [&](uint64_t end) {
    const size_t len = size_t(end - prev);
    if (len > cdc.params().max_size) {
      for (size_t l : cdc.Split(data + prev, len)) lengths.push_back(l);
    } else if (len > 0) {
      lengths.push_back(len);
    }
    prev = end;
  };
  for (uint64_t c : a.cuts) add(c);
  if (prev < n) {
    for (size_t l : cdc.Split(data + prev, n - prev)) lengths.push_back(l);
  }
  return lengths;
}

}  // namespace rankfs
