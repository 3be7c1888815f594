#include "fs/killpriv_io.h"

#include <linux/fuse.h>  // the kernel's protocol structs (linux-libc-dev)
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "fs/fuse_ops.h"

namespace rankfs {
namespace {

// The unique id of the INIT request while its reply is pending and the kernel offered the
// flag; 0 otherwise. INIT is the first request of a session and is answered before any other.
std::atomic<uint64_t> g_init_unique{0};

ssize_t Read(int fd, void* buf, size_t len, void* /*userdata*/) {
  ssize_t n = ::read(fd, buf, len);
  if (n >= ssize_t(sizeof(fuse_in_header) + sizeof(fuse_init_in))) {
    const auto* in = static_cast<const fuse_in_header*>(buf);
    if (in->opcode == FUSE_INIT) {
      const auto* init = reinterpret_cast<const fuse_init_in*>(in + 1);
      if (init->flags & FUSE_HANDLE_KILLPRIV_V2) g_init_unique = in->unique;
    }
  }
  return n;
}

ssize_t Writev(int fd, iovec* iov, int count, void* /*userdata*/) {
  const uint64_t init_unique = g_init_unique.load();
  if (init_unique != 0 && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(uint32_t)) {
    const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
    if (out->unique == init_unique) {
      if (out->error == 0) static_cast<fuse_init_out*>(iov[1].iov_base)->flags |=
          FUSE_HANDLE_KILLPRIV_V2;
      g_init_unique = 0;
    }
  }
  return ::writev(fd, iov, count);
}

}  // namespace

bool InstallKillprivTransport(fuse_session* se, int fd) {
  static const fuse_custom_io kIo = {
      .writev = Writev,
      .read = Read,
      .splice_receive = nullptr,  // rankfs does not ask for splice (fs/fuse_ops.cc)
      .splice_send = nullptr,
  };
  return fuse_session_custom_io(se, &kIo, fd) == 0;
}

}  // namespace rankfs
