// The GPU staging protocol between the client library (gpu/) and the mount daemon
// (fs/gpu_server.h): the only thing the two sides share. docs/gpu.md describes it in prose.
//
// Transport: a SOCK_SEQPACKET Unix socket (message boundaries kept, SCM_RIGHTS allowed). Every
// request is one fixed-size message (WireRequest); its descriptor, when it carries one, rides
// along as SCM_RIGHTS. Every request gets exactly one reply (WireReply, followed by an
// optional error text), in request order.
//
// The decoder is a pure function over bytes (no I/O, no allocation), so that a fuzzer can
// drive it (fuzz/fuzz_gpu_request.cc).
//
// Thread-safety: everything here is stateless.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rankfs::gpu {

inline constexpr uint32_t kMagic = 0x52464730;  // "RFG0"
inline constexpr uint16_t kVersion = 1;
// The stats file line that advertises the socket: "gpu_socket=@NAME" (an abstract name).
inline constexpr std::string_view kStatsKey = "gpu_socket";

enum class Op : uint16_t {
  kRing = 1,        // fd: a memfd sealed with F_SEAL_SHRINK; slot_count x slot_bytes
  kRegister = 2,    // fd: a descriptor opened for reading on this mount; reply.value = handle
  kRead = 3,        // handle, slot, offset, length; reply.value = bytes read or -errno
  kUnregister = 4,  // handle
};

// Limits the daemon enforces (a ring is mapped whole in the daemon).
inline constexpr uint32_t kMaxSlots = 4096;
inline constexpr uint64_t kMaxSlotBytes = 64ull << 20;
inline constexpr uint64_t kMaxRingBytes = 4ull << 30;
inline constexpr uint32_t kMaxFiles = 65536;  // registered handles per connection

struct WireRequest {
  uint32_t magic;
  uint16_t version;
  uint16_t op;
  uint64_t tag;  // echoed in the reply
  uint32_t handle;
  uint32_t slot;  // kRing: slot count
  uint64_t offset;
  uint64_t length;  // kRing: slot size in bytes
};
static_assert(sizeof(WireRequest) == 40);

struct WireReply {
  uint32_t magic;
  uint16_t op;
  uint16_t message_len;  // bytes of error text after this struct
  uint64_t tag;
  int64_t value;  // >= 0: result; < 0: -errno
  uint32_t slot;
  uint32_t reserved;
};
static_assert(sizeof(WireReply) == 32);
inline constexpr size_t kMaxMessageLen = 480;
inline constexpr size_t kMaxReplyBytes = sizeof(WireReply) + kMaxMessageLen;

// A decoded, validated request.
struct Request {
  Op op;
  uint64_t tag = 0;
  uint32_t handle = 0;
  uint32_t slot = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Decodes one message. Returns 0, or -EINVAL / -EPROTO with *why set to a static string:
// wrong size, magic, version or op, or fields out of range for the op (a read's offset+length
// overflows, a ring's geometry exceeds the limits above). Slot bounds need the ring: see
// CheckSlot.
int DecodeRequest(const uint8_t* data, size_t size, Request* out, const char** why);

// Whether a read request fits a ring of slot_count slots of slot_bytes each: 0, or -ERANGE
// with *why set (slot out of range, length over the slot size, no ring yet).
int CheckSlot(const Request& r, uint32_t slot_count, uint64_t slot_bytes, const char** why);

WireRequest EncodeRequest(const Request& r);

// Sends `r` on the SOCK_SEQPACKET socket `sock` as one message, with descriptor `fd` attached
// (SCM_RIGHTS) when fd >= 0; retried on EINTR. True when the whole request went out.
bool SendRequest(int sock, const Request& r, int fd);

}  // namespace rankfs::gpu
