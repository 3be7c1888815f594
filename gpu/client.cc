// The C ABI of include/rankfs_gpu.h over the protocol of gpu/protocol.h; the copies out of the
// ring run on a backend (gpu/backend.h).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "gpu/backend.h"
#include "gpu/include/rankfs_gpu.h"
#include "gpu/protocol.h"
#include "gpu/slot_pool.h"

namespace {

using rankfs::gpu::Backend;
using rankfs::gpu::BackendStatus;
using rankfs::gpu::BackendStream;
using rankfs::gpu::Op;
using rankfs::gpu::Request;
using rankfs::gpu::SlotPool;

thread_local std::string last_error;

// Records `message` as the calling thread's last error and returns err (negative).
int64_t Fail(int64_t err, std::string message) {
  last_error = std::move(message);
  return err;
}

std::string ErrnoText(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

// The daemon's abstract socket name from the mount's stats file ("" if not advertised).
std::string FindSocket(const std::string& mountpoint) {
  std::ifstream stats(mountpoint + "/.rankfs-stats");
  const std::string key = std::string(rankfs::gpu::kStatsKey) + "=";
  for (std::string line; std::getline(stats, line);) {
    if (line.compare(0, key.size(), key) == 0) return line.substr(key.size());
  }
  return "";
}

struct Reply {
  int64_t value = 0;
  std::string message;
};

}  // namespace

struct rankfs_gpu_stream {
  rankfs_gpu_ctx* ctx;
  std::unique_ptr<BackendStream> backend;  // destroyed (synchronizing) with the stream
};

struct rankfs_gpu_ctx {
  rankfs_gpu_options options{};
  int sock = -1;
  char* ring = nullptr;
  size_t ring_bytes = 0;
  std::unique_ptr<SlotPool> slots;
  std::unique_ptr<Backend> backend;  // holds the ring registered: goes before the ring
  std::unique_ptr<rankfs_gpu_stream> default_stream;  // goes before the backend

  std::mutex io_mu;  // serialises exchanges on `sock`; guards next_tag
  uint64_t next_tag = 1;

  std::mutex streams_mu;  // guards streams
  std::set<rankfs_gpu_stream*> streams;

  // The submit worker: runs queued reads in order (started by the first submit).
  struct Ticket {
    bool done = false;
    int64_t result = 0;
    std::string message;
  };
  std::mutex submit_mu;  // guards everything below
  std::condition_variable submit_cv;
  std::deque<std::function<void()>> jobs;
  std::map<rankfs_gpu_ticket, Ticket> tickets;
  uint64_t next_ticket = 1;
  bool stopping = false;
  std::thread submitter;

  ~rankfs_gpu_ctx() {
    default_stream.reset();
    backend.reset();
    if (ring != nullptr) munmap(ring, ring_bytes);
    if (sock >= 0) close(sock);
  }

  // Sends one request (with `fd` as SCM_RIGHTS when >= 0). REQUIRES: io_mu held.
  bool Send(const Request& r, int fd) { return rankfs::gpu::SendRequest(sock, r, fd); }

  // Receives the reply to the request tagged `tag`. REQUIRES: io_mu held.
  Reply Receive(uint64_t tag) {
    char buf[rankfs::gpu::kMaxReplyBytes];
    ssize_t n = recv(sock, buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR) n = recv(sock, buf, sizeof buf, 0);
    rankfs::gpu::WireReply w;
    if (n < ssize_t(sizeof w)) return {-EPIPE, "the daemon closed the connection"};
    std::memcpy(&w, buf, sizeof w);
    if (w.magic != rankfs::gpu::kMagic || size_t(n) != sizeof w + w.message_len) {
      return {-EPROTO, "malformed reply from the daemon"};
    }
    std::string message(buf + sizeof w, w.message_len);
    if (w.tag != tag && w.value >= 0) return {-EPROTO, "reply out of order"};
    return {w.value, std::move(message)};
  }

  // One request and its reply. REQUIRES: io_mu not held.
  Reply Call(Request r, int fd = -1) {
    std::lock_guard<std::mutex> lock(io_mu);
    r.tag = next_tag++;
    if (!Send(r, fd)) return {-EPIPE, "cannot send to the daemon: " + ErrnoText(errno)};
    return Receive(r.tag);
  }

  // rankfs_gpu_read. Keeps up to slot_count pieces in flight with the daemon; each filled
  // slot is copied on `stream` and freed once the copy has run.
  int64_t Read(int32_t file, uint64_t offset, uint64_t length, char* dst,
               rankfs_gpu_stream* stream) {
    struct Piece {
      uint64_t tag;
      uint32_t slot;
      uint64_t at;  // offset from the read's start
      uint64_t len;
    };
    std::lock_guard<std::mutex> lock(io_mu);
    std::deque<Piece> inflight;
    uint64_t issued = 0, total = 0;
    int64_t error = 0;
    std::string message;
    bool stop = false;  // an error or the end of the file: issue nothing more
    while ((!stop && issued < length) || !inflight.empty()) {
      while (!stop && issued < length) {
        std::optional<uint32_t> slot = slots->TryAcquire();
        if (!slot) {
          if (!inflight.empty()) break;  // take a reply first
          slot = slots->Acquire();       // every slot is in a copy: wait for one
        }
        Piece p{next_tag++, *slot, issued, std::min(length - issued, options.slot_bytes)};
        Request r{Op::kRead, p.tag, uint32_t(file), p.slot, offset + p.at, p.len};
        if (!Send(r, -1)) {
          slots->Release(p.slot);
          error = -EPIPE;
          message = "cannot send to the daemon: " + ErrnoText(errno);
          stop = true;
          break;
        }
        issued += p.len;
        inflight.push_back(p);
      }
      if (inflight.empty()) break;
      const Piece p = inflight.front();
      inflight.pop_front();
      Reply r = Receive(p.tag);
      if (r.value == -EPIPE || r.value == -EPROTO) {
        // The connection is unusable: no further replies will come.
        for (const Piece& q : inflight) slots->Release(q.slot);
        slots->Release(p.slot);
        return Fail(r.value, r.message);
      }
      if (stop || r.value < 0) {
        slots->Release(p.slot);
        if (!stop) {
          error = r.value;
          message = r.message;
        }
        stop = true;
        continue;
      }
      const uint64_t n = uint64_t(r.value);
      if (n > 0) {
        const char* src = ring + uint64_t(p.slot) * options.slot_bytes;
        SlotPool* pool = slots.get();
        BackendStatus s = stream->backend->CopyAsync(
            dst + p.at, src, n, [pool, slot = p.slot](const BackendStatus&) {
              pool->Release(slot);  // the copy has ended, even a failed one
            });
        if (!s.ok()) {
          slots->Release(p.slot);
          error = s.err;
          message = std::move(s.message);
          stop = true;
          continue;
        }
      } else {
        slots->Release(p.slot);
      }
      total += n;
      if (n < p.len) stop = true;  // end of file
    }
    if (error != 0) return Fail(error, message);
    return int64_t(total);
  }
};

extern "C" {

int rankfs_gpu_open(const char* mountpoint, const rankfs_gpu_options* o, rankfs_gpu_ctx** out) {
  *out = nullptr;
  if (o == nullptr || mountpoint == nullptr) return int(Fail(-EINVAL, "no mountpoint or options"));
  if (o->slot_count == 0 || o->slot_count > rankfs::gpu::kMaxSlots || o->slot_bytes == 0 ||
      o->slot_bytes > rankfs::gpu::kMaxSlotBytes ||
      o->slot_count * o->slot_bytes > rankfs::gpu::kMaxRingBytes) {
    return int(Fail(-EINVAL, "slot count or size out of range"));
  }
  std::unique_ptr<Backend> backend;
  switch (o->backend) {
    case RANKFS_GPU_BACKEND_CPU:
      backend = rankfs::gpu::MakeCpuBackend(o->cpu_max_delay_us);
      break;
    case RANKFS_GPU_BACKEND_CUDA:
      if (BackendStatus s = rankfs::gpu::MakeCudaBackend(&backend); !s.ok()) {
        return int(Fail(s.err, s.message));
      }
      break;
    default:
      return int(Fail(-EINVAL, "unknown backend " + std::to_string(int(o->backend))));
  }
  const std::string name = FindSocket(mountpoint);
  if (name.size() < 2 || name[0] != '@' || name.size() > sizeof(sockaddr_un::sun_path)) {
    return int(Fail(-ENOENT, std::string(mountpoint) +
                                 " advertises no GPU staging socket (not a rankfs mount?)"));
  }
  auto ctx = std::make_unique<rankfs_gpu_ctx>();
  ctx->options = *o;
  ctx->backend = std::move(backend);
  ctx->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (ctx->sock < 0) return int(Fail(-errno, "socket: " + ErrnoText(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
  if (connect(ctx->sock, reinterpret_cast<sockaddr*>(&addr),
              socklen_t(offsetof(sockaddr_un, sun_path) + name.size())) != 0) {
    return int(Fail(-errno, "cannot connect to " + name + ": " + ErrnoText(errno)));
  }
  ctx->ring_bytes = size_t(o->slot_count) * o->slot_bytes;
  const int memfd = memfd_create("rankfs-gpu-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memfd < 0) return int(Fail(-errno, "memfd_create: " + ErrnoText(errno)));
  // Sealed so that the daemon, which maps it, can never be faulted by a shrinking ring.
  if (ftruncate(memfd, off_t(ctx->ring_bytes)) != 0 ||
      fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    const int err = errno;
    close(memfd);
    return int(Fail(-err, "preparing the ring: " + ErrnoText(err)));
  }
  void* base = mmap(nullptr, ctx->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    close(memfd);
    return int(Fail(-err, "mapping the ring: " + ErrnoText(err)));
  }
  ctx->ring = static_cast<char*>(base);
  if (BackendStatus s = ctx->backend->RegisterRing(base, ctx->ring_bytes); !s.ok()) {
    close(memfd);
    return int(Fail(s.err, s.message));
  }
  Reply r = ctx->Call(Request{Op::kRing, 0, 0, o->slot_count, 0, o->slot_bytes}, memfd);
  close(memfd);
  if (r.value < 0) return int(Fail(r.value, "the daemon refused the ring: " + r.message));
  ctx->slots = std::make_unique<SlotPool>(o->slot_count);
  ctx->default_stream = std::make_unique<rankfs_gpu_stream>(rankfs_gpu_stream{ctx.get(), nullptr});
  if (BackendStatus s = ctx->backend->CreateStream(&ctx->default_stream->backend); !s.ok()) {
    ctx->default_stream.reset();
    return int(Fail(s.err, s.message));
  }
  *out = ctx.release();
  return 0;
}

void rankfs_gpu_close(rankfs_gpu_ctx* ctx) {
  if (ctx == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(ctx->submit_mu);
    ctx->stopping = true;
  }
  ctx->submit_cv.notify_all();
  if (ctx->submitter.joinable()) ctx->submitter.join();  // runs the queued jobs first
  {
    std::lock_guard<std::mutex> lock(ctx->streams_mu);
    for (rankfs_gpu_stream* s : ctx->streams) (void)s->backend->Synchronize();
  }
  delete ctx;  // the default stream synchronizes, then the backend lets go of the ring
}

int rankfs_gpu_backend_available(rankfs_gpu_backend backend) {
  std::string why;
  const int r = rankfs::gpu::BackendAvailable(backend, &why);
  if (r != 1) last_error = why;
  return r;
}

int rankfs_gpu_stream_create(rankfs_gpu_ctx* ctx, rankfs_gpu_stream** out) {
  *out = nullptr;
  auto s = std::make_unique<rankfs_gpu_stream>(rankfs_gpu_stream{ctx, nullptr});
  if (BackendStatus st = ctx->backend->CreateStream(&s->backend); !st.ok()) {
    return int(Fail(st.err, st.message));
  }
  std::lock_guard<std::mutex> lock(ctx->streams_mu);
  ctx->streams.insert(s.get());
  *out = s.release();
  return 0;
}

int rankfs_gpu_stream_synchronize(rankfs_gpu_stream* stream) {
  BackendStatus s = stream->backend->Synchronize();
  return s.ok() ? 0 : int(Fail(s.err, s.message));
}

void* rankfs_gpu_stream_native(rankfs_gpu_ctx* ctx, rankfs_gpu_stream* stream) {
  return (stream != nullptr ? stream : ctx->default_stream.get())->backend->native();
}

int rankfs_gpu_stream_wait_native(rankfs_gpu_ctx* ctx, rankfs_gpu_stream* stream, void* other) {
  BackendStatus s =
      (stream != nullptr ? stream : ctx->default_stream.get())->backend->WaitForNative(other);
  return s.ok() ? 0 : int(Fail(s.err, s.message));
}

void rankfs_gpu_stream_destroy(rankfs_gpu_stream* stream) {
  if (stream == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(stream->ctx->streams_mu);
    stream->ctx->streams.erase(stream);
  }
  delete stream;  // runs what is queued first
}

rankfs_gpu_file rankfs_gpu_register(rankfs_gpu_ctx* ctx, int fd) {
  if (fd < 0) return int32_t(Fail(-EBADF, "not a descriptor"));
  Reply r = ctx->Call(Request{Op::kRegister, 0, 0, 0, 0, 0}, fd);
  if (r.value < 0) return int32_t(Fail(r.value, "the daemon refused the file: " + r.message));
  return int32_t(r.value);
}

int rankfs_gpu_unregister(rankfs_gpu_ctx* ctx, rankfs_gpu_file file) {
  Reply r = ctx->Call(Request{Op::kUnregister, 0, uint32_t(file), 0, 0, 0});
  return r.value < 0 ? int(Fail(r.value, r.message)) : 0;
}

int64_t rankfs_gpu_read(rankfs_gpu_ctx* ctx, rankfs_gpu_file file, uint64_t offset, uint64_t length,
                        void* dst, rankfs_gpu_stream* stream) {
  if (dst == nullptr && length > 0) return Fail(-EINVAL, "no destination");
  return ctx->Read(file, offset, length, static_cast<char*>(dst),
                   stream != nullptr ? stream : ctx->default_stream.get());
}

int rankfs_gpu_submit(rankfs_gpu_ctx* ctx, rankfs_gpu_file file, uint64_t offset, uint64_t length,
                      void* dst, rankfs_gpu_stream* stream, rankfs_gpu_ticket* out) {
  if (dst == nullptr && length > 0) return int(Fail(-EINVAL, "no destination"));
  rankfs_gpu_stream* s = stream != nullptr ? stream : ctx->default_stream.get();
  std::lock_guard<std::mutex> lock(ctx->submit_mu);
  if (!ctx->submitter.joinable()) {
    ctx->submitter = std::thread([ctx] {
      std::unique_lock<std::mutex> l(ctx->submit_mu);
      for (;;) {
        ctx->submit_cv.wait(l, [&] { return ctx->stopping || !ctx->jobs.empty(); });
        if (ctx->jobs.empty()) return;
        std::function<void()> job = std::move(ctx->jobs.front());
        ctx->jobs.pop_front();
        l.unlock();
        job();
        l.lock();
      }
    });
  }
  const rankfs_gpu_ticket t = ctx->next_ticket++;
  ctx->tickets[t];
  ctx->jobs.push_back([ctx, t, file, offset, length, dst = static_cast<char*>(dst), s] {
    const int64_t n = ctx->Read(file, offset, length, dst, s);
    std::string message = n < 0 ? last_error : "";
    auto finish = [ctx, t, n, message](const BackendStatus& copies) {
      std::lock_guard<std::mutex> l(ctx->submit_mu);
      rankfs_gpu_ctx::Ticket& ticket = ctx->tickets[t];
      ticket.done = true;
      ticket.result = n >= 0 && !copies.ok() ? copies.err : n;
      ticket.message = n >= 0 && !copies.ok() ? copies.message : message;
      ctx->submit_cv.notify_all();
    };
    // After the read's copies on the same in-order stream.
    if (BackendStatus q = s->backend->Then(finish); !q.ok()) {
      BackendStatus copies = s->backend->Synchronize();  // so that dst is no longer written
      finish(copies.ok() ? q : copies);
    }
  });
  ctx->submit_cv.notify_all();
  *out = t;
  return 0;
}

int64_t rankfs_gpu_wait(rankfs_gpu_ctx* ctx, rankfs_gpu_ticket ticket) {
  std::unique_lock<std::mutex> lock(ctx->submit_mu);
  auto it = ctx->tickets.find(ticket);
  if (it == ctx->tickets.end()) return Fail(-EINVAL, "unknown ticket");
  ctx->submit_cv.wait(lock, [&] { return it->second.done; });
  const int64_t n = it->second.result;
  if (n < 0) last_error = it->second.message;
  ctx->tickets.erase(it);
  return n;
}

int64_t rankfs_gpu_read_slot(rankfs_gpu_ctx* ctx, rankfs_gpu_file file, uint64_t offset,
                             uint64_t length, uint32_t slot) {
  Reply r = ctx->Call(Request{Op::kRead, 0, uint32_t(file), slot, offset, length});
  return r.value < 0 ? Fail(r.value, r.message) : r.value;
}

const void* rankfs_gpu_slot(rankfs_gpu_ctx* ctx, uint32_t slot) {
  if (slot >= ctx->options.slot_count) return nullptr;
  return ctx->ring + uint64_t(slot) * ctx->options.slot_bytes;
}

const char* rankfs_gpu_last_error(void) { return last_error.c_str(); }

}  // extern "C"
