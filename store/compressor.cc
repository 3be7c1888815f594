#include "store/compressor.h"

#include <zstd.h>

#include <memory>

namespace rankfs {
namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> ctx(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> ctx(ZSTD_createDCtx());
  return ctx.get();
}

}  // namespace

size_t CompressBound(size_t raw_length) { return ZSTD_compressBound(raw_length); }

Result<size_t> CompressChunkInto(std::string_view in, int level, char* out, size_t capacity) {
  ZSTD_CCtx* cctx = ThreadCCtx();
  if (cctx == nullptr) return Status(ENOMEM, "zstd: cannot create a compression context");
  size_t n = ZSTD_compressCCtx(cctx, out, capacity, in.data(), in.size(), level);
  if (ZSTD_isError(n)) {
    return Status(EIO, std::string("zstd compress: ") + ZSTD_getErrorName(n));
  }
  return n;
}

Status CompressChunk(std::string_view in, int level, std::string* out, bool* shrunk) {
  out->resize(CompressBound(in.size()));
  RANKFS_ASSIGN_OR_RETURN(size_t n, CompressChunkInto(in, level, out->data(), out->size()));
  out->resize(n);
  *shrunk = n < in.size();
  return Status::Ok();
}

Status DecompressChunk(std::string_view frame, size_t raw_length, char* out) {
  ZSTD_DCtx* dctx = ThreadDCtx();
  if (dctx == nullptr) return Status(ENOMEM, "zstd: cannot create a decompression context");
  size_t n = ZSTD_decompressDCtx(dctx, out, raw_length, frame.data(), frame.size());
  if (ZSTD_isError(n)) {
    return Status(EIO, std::string("zstd decompress: ") + ZSTD_getErrorName(n));
  }
  if (n != raw_length) {
    return Status(EIO, "zstd decompress: frame holds " + std::to_string(n) + " bytes, expected " +
                           std::to_string(raw_length));
  }
  return Status::Ok();
}

}  // namespace rankfs
