// A minimal, bounds-checked reader of FlatBuffers (the encoding of Arrow IPC message headers),
// enough for store/arrow_ipc.cc: tables through their vtables, scalars, offsets to tables,
// vectors of tables and of structs. Internal to store/.
//
// Every access checks its bytes against the buffer. A bad offset never reads outside it: the
// view records the error (ok() turns false for good) and the access yields an absent field or
// a zero. Callers check ok() once after reading what they need. Offsets to tables and vectors
// are unsigned and point forward, so following them cannot loop; vector lengths are checked
// against the bytes left, so a loop over a vector ends within the buffer's size.
//
// Thread-safety: a view is not shared; the bytes it reads must outlive it and not change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace rankfs::flatbuffer {

class View;

// A table inside a View: its position and its vtable's.
struct Table {
  const View* view = nullptr;
  size_t pos = 0;        // the table's start (its soffset to the vtable)
  size_t vtable = 0;     // the vtable's start
  uint16_t vt_size = 0;  // bytes of the vtable
  uint16_t size = 0;     // bytes of the table's inline part

  bool valid() const { return view != nullptr; }
  // The position of field `id`, or 0 when the field is absent (a field is never at 0: the
  // table's soffset is). Marks the view bad when the field lies outside the table.
  size_t FieldPos(int id, size_t field_size) const;
  template <typename T>
  T Scalar(int id, T def) const;
  // The table that field `id` refers to; an invalid Table when the field is absent or bad.
  Table Child(int id) const;
  // A vector field: its element count and the position of element 0; false when absent or bad.
  bool Vector(int id, size_t elem_size, uint32_t* count, size_t* first) const;
  // Element i of a vector of tables that starts at `first`.
  Table TableAt(size_t first, uint32_t i) const;
};

class View {
 public:
  View(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool ok() const { return ok_; }
  void Fail() const { ok_ = false; }

  // The root table (a uoffset at position 0).
  Table Root() const { return TableAtOffsetField(0); }

  // True when [pos, pos + n) lies inside the buffer.
  bool Has(size_t pos, size_t n) const { return pos <= size_ && n <= size_ - pos; }

  template <typename T>
  T Read(size_t pos) const {
    T v{};
    if (!Has(pos, sizeof(T))) {
      Fail();
      return v;
    }
    std::memcpy(&v, data_ + pos, sizeof(T));  // FlatBuffers are little-endian, like the host
    return v;
  }

  // The table that the uoffset at `pos` points to.
  Table TableAtOffsetField(size_t pos) const {
    const uint32_t off = Read<uint32_t>(pos);
    if (!ok_ || off == 0) return Fail(), Table{};
    return TableAt(pos + off);
  }

  Table TableAt(size_t pos) const {
    const int32_t soff = Read<int32_t>(pos);
    if (!ok_) return {};
    const int64_t vt = int64_t(pos) - int64_t(soff);
    if (vt < 0 || !Has(size_t(vt), 4)) return Fail(), Table{};
    Table t;
    t.view = this;
    t.pos = pos;
    t.vtable = size_t(vt);
    t.vt_size = Read<uint16_t>(t.vtable);
    t.size = Read<uint16_t>(t.vtable + 2);
    // The vtable holds its two sizes and whole uint16 entries; the table holds its soffset.
    if (t.vt_size < 4 || t.vt_size % 2 != 0 || !Has(t.vtable, t.vt_size) || t.size < 4 ||
        !Has(pos, t.size)) {
      return Fail(), Table{};
    }
    return t;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  mutable bool ok_ = true;
};

inline size_t Table::FieldPos(int id, size_t field_size) const {
  if (view == nullptr) return 0;
  const size_t entry = 4 + 2 * size_t(id);
  if (entry + 2 > vt_size) return 0;  // a field newer than the writer: absent
  const uint16_t off = view->Read<uint16_t>(vtable + entry);
  if (off == 0) return 0;
  if (off < 4 || size_t(off) + field_size > size) return view->Fail(), 0;
  return pos + off;
}

template <typename T>
T Table::Scalar(int id, T def) const {
  const size_t p = FieldPos(id, sizeof(T));
  return p == 0 ? def : view->Read<T>(p);
}

inline Table Table::Child(int id) const {
  const size_t p = FieldPos(id, 4);
  return p == 0 ? Table{} : view->TableAtOffsetField(p);
}

inline bool Table::Vector(int id, size_t elem_size, uint32_t* count, size_t* first) const {
  const size_t p = FieldPos(id, 4);
  if (p == 0) return false;
  const uint32_t off = view->Read<uint32_t>(p);
  if (!view->ok() || off == 0) return view->Fail(), false;
  const size_t vec = p + off;
  const uint32_t n = view->Read<uint32_t>(vec);
  if (!view->ok() || !view->Has(vec + 4, uint64_t(n) * elem_size)) return view->Fail(), false;
  *count = n;
  *first = vec + 4;
  return true;
}

inline Table Table::TableAt(size_t first, uint32_t i) const {
  return view->TableAtOffsetField(first + 4 * size_t(i));
}

}  // namespace rankfs::flatbuffer
