// The schema part of the Arrow IPC cutter (store/arrow_ipc.h): reads a Schema message's fields
// into the layout of each field's buffers in a record batch. Internal to store/.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "store/arrow_ipc.h"
#include "store/flatbuffer_view.h"

namespace rankfs::arrow_internal {

// How a field's array lies in a record batch body: its buffers (validity first) and children.
enum class Layout { kNull, kBool, kFixed, kBinary, kList, kFixedList, kStruct };

struct Field {
  Layout layout = Layout::kNull;
  uint32_t bit_width = 0;     // kFixed: bits per value
  uint32_t offset_width = 0;  // kBinary, kList: bytes per offset (4 or 8)
  uint64_t list_size = 0;     // kFixedList: values per row
  std::vector<Field> children;
};

struct Schema {
  std::vector<Field> fields;              // a record batch's columns
  std::map<int64_t, Field> dictionaries;  // dictionary id -> the layout of its values
};

// Reads the Schema table; on failure returns false with why in *stop and *detail.
bool ReadSchema(const flatbuffer::Table& schema, Schema* out, ArrowStop* stop, std::string* detail);

}  // namespace rankfs::arrow_internal
