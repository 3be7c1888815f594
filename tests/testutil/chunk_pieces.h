// Cuts a test buffer into FastCDC chunks with their hashes, as the filesystem would before
// putting them into a ChunkStore. For tests only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/chunker.h"
#include "store/types.h"

namespace rankfs {

struct Piece {
  ChunkHash hash;
  std::string data;
};

inline std::vector<Piece> ChunkPieces(const std::string& data,
                                      const ChunkerParams& params = ChunkerParams{}) {
  FastCdc cdc(params);
  std::vector<Piece> out;
  size_t off = 0;
  for (size_t len : cdc.Split(reinterpret_cast<const uint8_t*>(data.data()), data.size())) {
    out.push_back({ChunkHash::Of(std::string_view(data).substr(off, len)), data.substr(off, len)});
    off += len;
  }
  return out;
}

}  // namespace rankfs
