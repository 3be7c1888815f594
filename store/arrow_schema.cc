// ReadSchema (arrow_schema.h). The Type union tags and tables are those of Apache Arrow's
// Schema.fbs; docs/design.md, "Space: Arrow IPC cut points",
// names the fields read.
#include "store/arrow_schema.h"

#include <utility>

namespace rankfs::arrow_internal {
namespace {

constexpr int kMaxDepth = 32;        // nesting of fields
constexpr size_t kMaxFields = 4096;  // fields in a schema, nested ones included

// Type union tags.
enum : uint8_t {
  kTypeNull = 1,
  kTypeInt = 2,
  kTypeFloatingPoint = 3,
  kTypeBinary = 4,
  kTypeUtf8 = 5,
  kTypeBool = 6,
  kTypeDecimal = 7,
  kTypeDate = 8,
  kTypeTime = 9,
  kTypeTimestamp = 10,
  kTypeInterval = 11,
  kTypeList = 12,
  kTypeStruct = 13,
  kTypeFixedSizeBinary = 15,
  kTypeFixedSizeList = 16,
  kTypeMap = 17,
  kTypeDuration = 18,
  kTypeLargeBinary = 19,
  kTypeLargeUtf8 = 20,
  kTypeLargeList = 21,
};

class SchemaReader {
 public:
  SchemaReader(Schema* out, ArrowStop* stop, std::string* detail)
      : out_(out), stop_(stop), detail_(detail) {}

  bool ParseSchema(const flatbuffer::Table& schema);

 private:
  bool Stop(ArrowStop why, std::string detail) {
    *stop_ = why;
    *detail_ = std::move(detail);
    return false;
  }
  bool ParseField(const flatbuffer::Table& f, int depth, Field* out);
  bool ParseType(uint8_t tag, const flatbuffer::Table& type, Field* out);

  Schema* out_;
  ArrowStop* stop_;
  std::string* detail_;
  size_t fields_seen_ = 0;
};

bool SchemaReader::ParseSchema(const flatbuffer::Table& schema) {
  if (schema.Scalar<int16_t>(0, 0) != 0) {
    return Stop(ArrowStop::kUnsupported, "big-endian schema");
  }
  uint32_t count = 0;
  size_t first = 0;
  if (!schema.Vector(1, 4, &count, &first)) {
    return Stop(ArrowStop::kMalformed, "schema without fields");
  }
  out_->fields.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    if (!ParseField(schema.TableAt(first, i), 0, &out_->fields[i])) return false;
  }
  return true;
}

bool SchemaReader::ParseField(const flatbuffer::Table& f, int depth, Field* out) {
  if (!f.valid() || !f.view->ok()) return Stop(ArrowStop::kMalformed, "bad field");
  if (depth > kMaxDepth || ++fields_seen_ > kMaxFields) {
    return Stop(ArrowStop::kUnsupported, "schema too deep or too large");
  }
  uint32_t count = 0;
  size_t first = 0;
  if (f.Vector(5, 4, &count, &first)) {
    out->children.resize(count);
    for (uint32_t i = 0; i < count; ++i) {
      if (!ParseField(f.TableAt(first, i), depth + 1, &out->children[i])) return false;
    }
  }
  if (!ParseType(f.Scalar<uint8_t>(2, 0), f.Child(3), out)) return false;
  const flatbuffer::Table dict = f.Child(4);
  if (dict.valid()) {
    // In a record batch a dictionary-encoded field is its indices; its values come in
    // dictionary batches with the field's own type.
    const int64_t id = dict.Scalar<int64_t>(0, 0);
    const flatbuffer::Table index = dict.Child(1);
    const int32_t bits = index.valid() ? index.Scalar<int32_t>(0, 0) : 32;
    if (bits != 8 && bits != 16 && bits != 32 && bits != 64) {
      return Stop(ArrowStop::kMalformed, "dictionary index width " + std::to_string(bits));
    }
    if (!out_->dictionaries.emplace(id, std::move(*out)).second) {
      return Stop(ArrowStop::kUnsupported, "dictionary id used twice");
    }
    *out = Field{Layout::kFixed, uint32_t(bits), 0, 0, {}};
  }
  return f.view->ok() || Stop(ArrowStop::kMalformed, "bad field");
}

bool SchemaReader::ParseType(uint8_t tag, const flatbuffer::Table& type, Field* out) {
  auto fixed = [&](int64_t bits) {
    if (bits <= 0 || bits > (int64_t{1} << 34) || (bits < 8 && bits != 1)) {
      return Stop(ArrowStop::kMalformed, "bad value width for type " + std::to_string(tag));
    }
    out->layout = Layout::kFixed;
    out->bit_width = uint32_t(bits);
    return true;
  };
  size_t want_children = 0;
  switch (tag) {
    case kTypeNull:
      out->layout = Layout::kNull;
      break;
    case kTypeBool:
      out->layout = Layout::kBool;
      break;
    case kTypeInt: {
      const int32_t bits = type.Scalar<int32_t>(0, 0);
      if (bits != 8 && bits != 16 && bits != 32 && bits != 64) return fixed(0);
      if (!fixed(bits)) return false;
      break;
    }
    case kTypeFloatingPoint: {
      const int16_t precision = type.Scalar<int16_t>(0, 0);  // HALF, SINGLE, DOUBLE
      if (precision < 0 || precision > 2) return fixed(0);
      if (!fixed(16 << precision)) return false;
      break;
    }
    case kTypeDecimal: {
      const int32_t bits = type.Scalar<int32_t>(2, 128);
      if (bits != 32 && bits != 64 && bits != 128 && bits != 256) return fixed(0);
      if (!fixed(bits)) return false;
      break;
    }
    case kTypeDate:  // DAY: int32, MILLISECOND (the default): int64
      if (!fixed(type.Scalar<int16_t>(0, 1) == 0 ? 32 : 64)) return false;
      break;
    case kTypeTime: {
      const int32_t bits = type.Scalar<int32_t>(1, 32);
      if (bits != 32 && bits != 64) return fixed(0);
      if (!fixed(bits)) return false;
      break;
    }
    case kTypeTimestamp:
    case kTypeDuration:
      if (!fixed(64)) return false;
      break;
    case kTypeInterval: {  // YEAR_MONTH, DAY_TIME, MONTH_DAY_NANO
      const int16_t unit = type.Scalar<int16_t>(0, 0);
      if (unit < 0 || unit > 2) return fixed(0);
      if (!fixed(32 << unit)) return false;
      break;
    }
    case kTypeFixedSizeBinary:
      if (!fixed(int64_t(type.Scalar<int32_t>(0, 0)) * 8)) return false;
      break;
    case kTypeBinary:
    case kTypeUtf8:
    case kTypeLargeBinary:
    case kTypeLargeUtf8:
      out->layout = Layout::kBinary;
      out->offset_width = tag == kTypeBinary || tag == kTypeUtf8 ? 4 : 8;
      break;
    case kTypeList:
    case kTypeLargeList:
    case kTypeMap:  // a list of key-value structs
      out->layout = Layout::kList;
      out->offset_width = tag == kTypeLargeList ? 8 : 4;
      want_children = 1;
      break;
    case kTypeFixedSizeList: {
      const int32_t size = type.Scalar<int32_t>(0, -1);
      if (size < 0) return Stop(ArrowStop::kMalformed, "negative fixed list size");
      out->layout = Layout::kFixedList;
      out->list_size = uint64_t(size);
      want_children = 1;
      break;
    }
    case kTypeStruct:
      out->layout = Layout::kStruct;
      want_children = out->children.size();
      break;
    default:  // unions, run-end encoded, views, ... : not handled
      return Stop(ArrowStop::kUnsupported, "field type " + std::to_string(tag));
  }
  if (out->children.size() != want_children) {
    return Stop(ArrowStop::kMalformed, "wrong number of children for type " + std::to_string(tag));
  }
  return true;
}

}  // namespace

bool ReadSchema(const flatbuffer::Table& schema, Schema* out, ArrowStop* stop,
                std::string* detail) {
  return SchemaReader(out, stop, detail).ParseSchema(schema);
}

}  // namespace rankfs::arrow_internal
