// The chunk records of a pack file as its bytes lie on disk, read independently of the store's
// own reader (docs/format.md: a 32-byte pack header, then records of a 56-byte header, magic
// "RKCH", stored_length at offset 44, followed by the stored bytes). Tests that damage a
// record use it to find one.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace rankfs {

struct PackRecord {
  uint64_t offset, length;  // where the record starts, and its header plus stored bytes
};

// The records from the start of the pack up to the first that is cut short or does not start
// with the magic; none when the file cannot be read.
inline std::vector<PackRecord> PackRecords(const std::string& pack) {
  std::vector<PackRecord> out;
  std::string bytes;
  if (FILE* f = std::fopen(pack.c_str(), "rb")) {
    char buf[1 << 16];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.append(buf, n);
    std::fclose(f);
  }
  uint64_t off = 32;
  while (off + 56 <= bytes.size() && bytes.compare(off, 4, "RKCH") == 0) {
    uint32_t stored;
    std::memcpy(&stored, bytes.data() + off + 44, 4);
    out.push_back({off, 56 + uint64_t(stored)});
    off += 56 + stored;
  }
  return out;
}

}  // namespace rankfs
