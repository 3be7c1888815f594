#include "gpu/protocol.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace rankfs::gpu {

int DecodeRequest(const uint8_t* data, size_t size, Request* out, const char** why) {
  if (size != sizeof(WireRequest)) {
    *why = "request has the wrong size";
    return -EPROTO;
  }
  WireRequest w;
  std::memcpy(&w, data, sizeof w);  // the buffer need not be aligned
  if (w.magic != kMagic) {
    *why = "bad magic";
    return -EPROTO;
  }
  if (w.version != kVersion) {
    *why = "unsupported protocol version";
    return -EPROTO;
  }
  Request r;
  r.tag = w.tag;
  r.handle = w.handle;
  r.slot = w.slot;
  r.offset = w.offset;
  r.length = w.length;
  switch (w.op) {
    case uint16_t(Op::kRing):
      if (w.slot == 0 || w.slot > kMaxSlots || w.length == 0 || w.length > kMaxSlotBytes ||
          uint64_t(w.slot) * w.length > kMaxRingBytes) {
        *why = "ring geometry out of range";
        return -EINVAL;
      }
      break;
    case uint16_t(Op::kRead):
      if (w.offset > uint64_t(INT64_MAX) || w.length > uint64_t(INT64_MAX) - w.offset) {
        *why = "read range overflows";
        return -EINVAL;
      }
      break;
    case uint16_t(Op::kRegister):
    case uint16_t(Op::kUnregister):
      break;
    default:
      *why = "unknown op";
      return -EPROTO;
  }
  r.op = Op(w.op);
  *out = r;
  return 0;
}

int CheckSlot(const Request& r, uint32_t slot_count, uint64_t slot_bytes, const char** why) {
  if (slot_count == 0) {
    *why = "no ring: send the ring before reading";
    return -ERANGE;
  }
  if (r.slot >= slot_count) {
    *why = "slot out of bounds";
    return -ERANGE;
  }
  if (r.length > slot_bytes) {
    *why = "length exceeds the slot size";
    return -ERANGE;
  }
  return 0;
}

WireRequest EncodeRequest(const Request& r) {
  WireRequest w{};
  w.magic = kMagic;
  w.version = kVersion;
  w.op = uint16_t(r.op);
  w.tag = r.tag;
  w.handle = r.handle;
  w.slot = r.slot;
  w.offset = r.offset;
  w.length = r.length;
  return w;
}

bool SendRequest(int sock, const Request& r, int fd) {
  WireRequest w = EncodeRequest(r);
  iovec iov{&w, sizeof w};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR) n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  return n == ssize_t(sizeof w);
}

}  // namespace rankfs::gpu
