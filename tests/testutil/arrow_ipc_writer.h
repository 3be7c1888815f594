// A tiny writer of Arrow IPC streams for tests and fuzz seeds: FlatBuffers tables built forward
// (each table after its vtable, each child after its parent), and helpers for the messages
// store/arrow_ipc.cc reads. It writes only what the tests need, and can write what a real
// writer would not (big-endian schemas, compressed-body flags, wrong offsets) to test the
// fallback. Header-only and without gtest, so fuzz/ can use it too.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rankfs::arrow_testing {

struct FbTable;
using FbTablePtr = std::shared_ptr<FbTable>;

struct FbField {
  enum Kind { kScalar, kTable, kTableVector, kStructVector, kString } kind = kScalar;
  std::string bytes;   // kScalar: the value; kStructVector: the packed structs; kString: text
  uint32_t count = 0;  // kStructVector: number of structs
  FbTablePtr table;
  std::vector<FbTablePtr> tables;
};

struct FbTable {
  std::map<int, FbField> fields;

  template <typename T>
  FbTable& Scalar(int id, T v) {
    FbField f;
    f.bytes.assign(reinterpret_cast<const char*>(&v), sizeof v);
    fields[id] = std::move(f);
    return *this;
  }
  FbTable& Child(int id, FbTablePtr t) {
    FbField f;
    f.kind = FbField::kTable;
    f.table = std::move(t);
    fields[id] = std::move(f);
    return *this;
  }
  FbTable& Tables(int id, std::vector<FbTablePtr> ts) {
    FbField f;
    f.kind = FbField::kTableVector;
    f.tables = std::move(ts);
    fields[id] = std::move(f);
    return *this;
  }
  FbTable& Structs(int id, uint32_t count, std::string packed) {
    FbField f;
    f.kind = FbField::kStructVector;
    f.count = count;
    f.bytes = std::move(packed);
    fields[id] = std::move(f);
    return *this;
  }
  FbTable& String(int id, std::string s) {
    FbField f;
    f.kind = FbField::kString;
    f.bytes = std::move(s);
    fields[id] = std::move(f);
    return *this;
  }
};

inline FbTablePtr NewTable() { return std::make_shared<FbTable>(); }

template <typename T>
void Append(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
void Patch(std::string* out, size_t pos, T v) {
  std::memcpy(out->data() + pos, &v, sizeof v);
}

// Appends table t (vtable first) and everything it refers to; returns the table's position.
inline size_t Serialize(const FbTable& t, std::string* out) {
  const int max_id = t.fields.empty() ? -1 : t.fields.rbegin()->first;
  const size_t vtable = out->size();
  std::vector<uint16_t> offsets(size_t(max_id + 1), 0);
  const size_t vt_size = 4 + 2 * offsets.size();
  out->append(vt_size, '\0');
  const size_t table = out->size();
  Append<int32_t>(out, int32_t(table - vtable));
  std::vector<std::pair<size_t, const FbField*>> refs;
  for (const auto& [id, f] : t.fields) {
    offsets[size_t(id)] = uint16_t(out->size() - table);
    if (f.kind == FbField::kScalar) {
      out->append(f.bytes);
    } else {
      refs.emplace_back(out->size(), &f);
      Append<uint32_t>(out, 0);
    }
  }
  Patch<uint16_t>(out, vtable, uint16_t(vt_size));
  Patch<uint16_t>(out, vtable + 2, uint16_t(out->size() - table));
  for (size_t i = 0; i < offsets.size(); ++i) Patch<uint16_t>(out, vtable + 4 + 2 * i, offsets[i]);
  for (const auto& [at, f] : refs) {
    size_t target = out->size();
    switch (f->kind) {
      case FbField::kTable:
        target = Serialize(*f->table, out);
        break;
      case FbField::kString:
        Append<uint32_t>(out, uint32_t(f->bytes.size()));
        out->append(f->bytes);
        out->push_back('\0');
        break;
      case FbField::kStructVector:
        Append<uint32_t>(out, f->count);
        out->append(f->bytes);
        break;
      case FbField::kTableVector: {
        Append<uint32_t>(out, uint32_t(f->tables.size()));
        const size_t slots = out->size();
        out->append(4 * f->tables.size(), '\0');
        for (size_t i = 0; i < f->tables.size(); ++i) {
          const size_t child = Serialize(*f->tables[i], out);
          Patch<uint32_t>(out, slots + 4 * i, uint32_t(child - (slots + 4 * i)));
        }
        break;
      }
      case FbField::kScalar:
        break;
    }
    Patch<uint32_t>(out, at, uint32_t(target - at));
  }
  return table;
}

// A whole FlatBuffer: the root offset, then the root table.
inline std::string Finish(const FbTable& root) {
  std::string out(4, '\0');
  const size_t pos = Serialize(root, &out);
  Patch<uint32_t>(&out, 0, uint32_t(pos));
  return out;
}

// Arrow Type union tags (Schema.fbs) used by the tests.
enum TypeTag : uint8_t {
  kNull = 1,
  kInt = 2,
  kFloat = 3,
  kBinary = 4,
  kUtf8 = 5,
  kBool = 6,
  kList = 12,
  kStruct = 13,
  kUnion = 14,
  kFixedSizeList = 16,
  kLargeUtf8 = 20,
  kLargeList = 21,
};

// A Field table: name, nullable, type, children (and optionally a dictionary encoding).
inline FbTablePtr Field(const std::string& name, uint8_t type_tag, FbTablePtr type,
                        std::vector<FbTablePtr> children = {}, FbTablePtr dictionary = nullptr) {
  auto f = NewTable();
  f->String(0, name).Scalar<uint8_t>(1, 1).Scalar<uint8_t>(2, type_tag);
  f->Child(3, type ? type : NewTable());
  if (dictionary) f->Child(4, dictionary);
  f->Tables(5, std::move(children));
  return f;
}

inline FbTablePtr IntType(int32_t bits) {
  auto t = NewTable();
  t->Scalar<int32_t>(0, bits).Scalar<uint8_t>(1, 1);
  return t;
}

inline FbTablePtr Schema(std::vector<FbTablePtr> fields, bool big_endian = false) {
  auto s = NewTable();
  if (big_endian) s->Scalar<int16_t>(0, 1);
  s->Tables(1, std::move(fields));
  return s;
}

// An encapsulated message: continuation marker, metadata length (padded to 8), the Message
// FlatBuffer, then the body.
inline std::string Frame(uint8_t header_tag, FbTablePtr header, const std::string& body,
                         int16_t version = 4) {
  FbTable msg;
  msg.Scalar<int16_t>(0, version).Scalar<uint8_t>(1, header_tag).Child(2, std::move(header));
  msg.Scalar<int64_t>(3, int64_t(body.size()));
  std::string fb = Finish(msg);
  fb.resize((fb.size() + 8 + 7) / 8 * 8 - 8, '\0');
  std::string out;
  Append<uint32_t>(&out, 0xFFFFFFFFu);
  Append<int32_t>(&out, int32_t(fb.size()));
  return out + fb + body;
}

inline std::string EndOfStream() {
  std::string out;
  Append<uint32_t>(&out, 0xFFFFFFFFu);
  Append<int32_t>(&out, 0);
  return out;
}

// Builds a record batch: field nodes and body buffers (each padded to 8 bytes), in order.
class BatchBuilder {
 public:
  void Node(int64_t length, int64_t null_count = 0) {
    Append(&nodes_, length);
    Append(&nodes_, null_count);
    ++node_count_;
  }
  // Appends a buffer; returns its offset in the body.
  size_t Buffer(const std::string& bytes) {
    const size_t off = body_.size();
    Append<int64_t>(&buffers_, int64_t(off));
    Append<int64_t>(&buffers_, int64_t(bytes.size()));
    ++buffer_count_;
    body_ += bytes;
    body_.resize((body_.size() + 7) / 8 * 8, '\0');
    return off;
  }
  const std::string& body() const { return body_; }
  // The RecordBatch table; `compressed` adds a BodyCompression (zstd, per buffer).
  FbTablePtr Header(int64_t length, bool compressed = false) const {
    auto rb = NewTable();
    rb->Scalar<int64_t>(0, length)
        .Structs(1, node_count_, nodes_)
        .Structs(2, buffer_count_, buffers_);
    if (compressed) {
      auto c = NewTable();
      c->Scalar<int8_t>(0, 1);
      rb->Child(3, c);
    }
    return rb;
  }
  // A whole RecordBatch message.
  std::string Message(int64_t length, bool compressed = false) const {
    return Frame(3, Header(length, compressed), body_);
  }

 private:
  std::string nodes_, buffers_, body_;
  uint32_t node_count_ = 0, buffer_count_ = 0;
};

template <typename T>
std::string Packed(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace rankfs::arrow_testing
