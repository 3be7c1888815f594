// The gpu_request target body (fuzz_targets.h): the GPU staging protocol's request decoder and
// slot check (gpu/protocol.h), which the daemon runs on every message a client sends.
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "fuzz/fuzz_input.h"
#include "fuzz/fuzz_targets.h"
#include "gpu/protocol.h"

namespace rankfs::fuzz {

int FuzzGpuRequest(const uint8_t* data, size_t size) {
  gpu::Request r;
  const char* why = nullptr;
  const int rc = gpu::DecodeRequest(data, size, &r, &why);
  if (rc != 0) {
    FUZZ_CHECK(rc == -EINVAL || rc == -EPROTO);
    FUZZ_CHECK(why != nullptr && why[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(size == sizeof(gpu::WireRequest));
  // An accepted request re-encodes to exactly its bytes (the struct has no padding).
  const gpu::WireRequest w = gpu::EncodeRequest(r);
  FUZZ_CHECK(std::memcmp(&w, data, size) == 0);
  switch (r.op) {
    case gpu::Op::kRing:
      FUZZ_CHECK(r.slot >= 1 && r.slot <= gpu::kMaxSlots && r.length >= 1 &&
                 r.length <= gpu::kMaxSlotBytes &&
                 uint64_t(r.slot) * r.length <= gpu::kMaxRingBytes);
      break;
    case gpu::Op::kRead:
      FUZZ_CHECK(r.offset <= uint64_t(INT64_MAX) && r.length <= uint64_t(INT64_MAX) - r.offset);
      break;
    case gpu::Op::kRegister:
    case gpu::Op::kUnregister:
      break;
    default:
      FUZZ_CHECK(false && "decoded an unknown op");
  }
  // The slot check against rings of a few geometries: it passes exactly when the slot's
  // bytes lie inside the ring.
  for (uint32_t count : {0u, 1u, 8u}) {
    for (uint64_t bytes : {uint64_t{1}, uint64_t{4096}, gpu::kMaxSlotBytes}) {
      const char* slot_why = nullptr;
      const int c = gpu::CheckSlot(r, count, bytes, &slot_why);
      const bool inside = r.slot < count && r.length <= bytes;
      FUZZ_CHECK(c == (inside ? 0 : -ERANGE));
      FUZZ_CHECK(inside || (slot_why != nullptr && slot_why[0] != '\0'));
    }
  }
  return 0;
}

}  // namespace rankfs::fuzz
