#include "fs/gpu_server.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gpu/protocol.h"
#include "store/logging.h"

namespace rankfs {
namespace {

constexpr const char* kLog = "gpu";

std::string ErrnoText(int err) {
  char buf[128];
  return strerror_r(err, buf, sizeof buf);
}

// An owned descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// The caller's ring, mapped into the daemon; unmapped when the client goes.
struct Ring {
  char* base = nullptr;
  size_t bytes = 0;
  uint32_t slot_count = 0;
  uint64_t slot_bytes = 0;
  ~Ring() {
    if (base != nullptr) munmap(base, bytes);
  }
};

struct RegisteredFile {
  Fd fd;  // the caller's open file: keeps the inode open, and lets us write back its pages
  Ino ino = 0;
};

// At most this many threads stage one client's reads at once (fewer with fewer slots or CPUs).
constexpr unsigned kMaxStageThreads = 4;

// One connected client, served on its own thread. That thread receives the requests; with more
// than one slot (and CPU), a small pool of its own stages the reads while the next requests
// are received. Replies go out in request order whoever finishes first (the reorder step in
// Finish): the protocol and the library are unchanged. Ring, Register and Unregister wait
// for every earlier read to be answered, so they and the reads see the state in request
// order, and the pool never sees files_ or ring_ change under it.
class Client {
 public:
  Client(FsCore* core, dev_t mount_dev, int fuse_fd, std::chrono::microseconds test_delay, int fd)
      : core_(core), mount_dev_(mount_dev), fuse_fd_(fuse_fd), test_delay_(test_delay), fd_(fd) {}
  ~Client() {
    StopPool();  // before the ring is unmapped and the descriptors are closed
    if (ring_.base != nullptr) core_->EndStagingClient();
  }

  void Serve() {
    ucred cred{};
    socklen_t cred_len = sizeof cred;
    if (getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) {
      peer_ = "pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid) + " gid " +
              std::to_string(cred.gid);
    }
    Log(LogLevel::kInfo, kLog, "client connected: " + peer_);
    while (ServeOne()) {
    }
    Drain();  // the reads in flight finish (their replies fail if the client is gone)
    StopPool();
    Log(LogLevel::kInfo, kLog, "client gone: " + peer_);
  }

 private:
  // Receives one request and answers it or hands it to the pool; false when the client is
  // gone or broke the protocol.
  bool ServeOne() {
    alignas(8) uint8_t buf[sizeof(gpu::WireRequest) + 1];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR) n = recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0) return false;
    Fd passed;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
          c->cmsg_len == CMSG_LEN(sizeof(int))) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
        passed.reset(fd);
      }
    }
    gpu::Request req;
    const char* why = "";
    int rc = gpu::DecodeRequest(buf, size_t(n), &req, &why);
    if (rc != 0 || (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
      // Nothing after a malformed message can be trusted to line up: answer the requests
      // before it, then this one, and hang up.
      Drain();
      Finish(Expect(0, 0), rc != 0 ? rc : -EPROTO,
             rc != 0 ? why : "truncated message or descriptors");
      return false;
    }
    if (req.op == gpu::Op::kRead) {
      if (!workers_.empty()) WaitForRoom();
      const uint64_t seq = Expect(req.tag, req.slot);
      if (workers_.empty()) {
        Stage(seq, req);
      } else {
        std::lock_guard<std::mutex> lock(jobs_mu_);
        jobs_.push_back(Job{seq, req});
        jobs_cv_.notify_one();
      }
      return !gone_.load(std::memory_order_relaxed);
    }
    Drain();  // the reads before this request are done and answered
    const uint64_t seq = Expect(req.tag, req.slot);
    switch (req.op) {
      case gpu::Op::kRing:
        Finish(seq, SetRing(req, std::move(passed)));
        break;
      case gpu::Op::kRegister:
        Finish(seq, Register(std::move(passed)));
        break;
      case gpu::Op::kUnregister:
        Finish(seq, files_.erase(req.handle) == 1
                        ? Result<int64_t>(0)
                        : Result<int64_t>(Status(EBADF, "unknown file handle")));
        break;
      case gpu::Op::kRead:
        break;
    }
    return !gone_.load(std::memory_order_relaxed);
  }

  // Runs on the pool (or the receiving thread without one); always answers, so that Drain
  // cannot wait forever.
  void Stage(uint64_t seq, const gpu::Request& req) {
    Result<int64_t> r = Status(EIO, "staging failed");
    core_->BeginStagedRequest();
    try {
      if (test_delay_.count() > 0) std::this_thread::sleep_for(test_delay_);
      r = Read(req);
    } catch (const std::bad_alloc&) {
      r = Status(ENOMEM, "out of memory staging the read");
    } catch (const std::exception& e) {
      r = Status(EIO, std::string("staging failed: ") + e.what());
    }
    core_->EndStagedRequest();
    Finish(seq, r);
  }

  // Starts the pool once the slot count is known: one thread stages inline, as before. Returns
  // once every thread has its name (a new thread starts with its creator's, "gpu-client",
  // which operators and tests count as clients).
  void StartPool() {
    const unsigned want = GpuServer::StageThreads(ring_.slot_count);
    if (want < 2) return;
    for (unsigned i = 0; i < want; ++i) {
      try {
        workers_.emplace_back([this] {
          pthread_setname_np(pthread_self(), "gpu-stage");
          {
            std::lock_guard<std::mutex> lock(jobs_mu_);
            ++named_;
          }
          jobs_cv_.notify_all();
          Work();
        });
      } catch (const std::system_error& e) {
        Log(LogLevel::kWarning, kLog, std::string("staging thread: ") + e.what());
        break;  // serve with the threads we have (none: inline)
      }
    }
    std::unique_lock<std::mutex> lock(jobs_mu_);
    jobs_cv_.wait(lock, [this] { return named_ == workers_.size(); });
  }

  void Work() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(jobs_mu_);
        jobs_cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and nothing left
        job = jobs_.front();
        jobs_.pop_front();
      }
      Stage(job.seq, job.req);
    }
  }

  void StopPool() {
    {
      std::lock_guard<std::mutex> lock(jobs_mu_);
      stopping_ = true;
    }
    jobs_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  // Takes the next place in the reply order (receiving thread only).
  uint64_t Expect(uint64_t tag, uint32_t slot) {
    std::lock_guard<std::mutex> lock(out_mu_);
    Pending& p = pending_.emplace_back();
    p.tag = tag;
    p.slot = slot;
    return first_seq_ + pending_.size() - 1;
  }

  void Finish(uint64_t seq, const Result<int64_t>& r) {
    if (r.ok()) return Finish(seq, *r, "");
    Finish(seq, -int64_t(r.status().code()), r.status().message());
  }

  // Records request `seq`'s answer and sends every answer that is next in order.
  void Finish(uint64_t seq, int64_t value, std::string_view message) {
    std::lock_guard<std::mutex> lock(out_mu_);
    Pending& p = pending_[size_t(seq - first_seq_)];
    p.value = value;
    p.message = message;
    p.done = true;
    bool sent = false;
    while (!pending_.empty() && pending_.front().done) {
      const Pending& f = pending_.front();
      if (!gone_.load(std::memory_order_relaxed) && !Reply(f.tag, f.slot, f.value, f.message)) {
        gone_.store(true, std::memory_order_relaxed);
      }
      pending_.pop_front();
      ++first_seq_;
      sent = true;
    }
    if (sent) drained_.notify_all();  // Drain and WaitForRoom
  }

  // A client has at most one read per slot in flight. One that sends more waits here before
  // its next read is taken off the socket, so the socket fills and its sends block: it cannot
  // grow the daemon's queues (the receiving thread would otherwise take every request at
  // once, which anyone who can connect could use to exhaust the daemon's memory).
  void WaitForRoom() {
    std::unique_lock<std::mutex> lock(out_mu_);
    drained_.wait(lock, [this] { return pending_.size() < ring_.slot_count; });
  }

  // Waits until every request so far is answered (or the answer failed).
  void Drain() {
    std::unique_lock<std::mutex> lock(out_mu_);
    drained_.wait(lock, [this] { return pending_.empty(); });
  }

  Result<int64_t> SetRing(const gpu::Request& req, Fd memfd) {
    if (ring_.base != nullptr) return Status(EBUSY, "the connection has a ring already");
    if (memfd.get() < 0) return Status(EBADF, "the ring request carries no descriptor");
    const int seals = fcntl(memfd.get(), F_GET_SEALS);
    if (seals < 0) return Status(EINVAL, "the ring is not a memfd (F_GET_SEALS failed)");
    if (!(seals & F_SEAL_SHRINK)) {
      return Status(EINVAL,
                    "the ring memfd is not sealed against shrinking (F_SEAL_SHRINK): a "
                    "truncated ring would fault the daemon");
    }
    const uint64_t bytes = uint64_t(req.slot) * req.length;
    struct stat st;
    if (fstat(memfd.get(), &st) != 0) return Status(errno, "fstat of the ring");
    if (uint64_t(st.st_size) < bytes)
      return Status(EINVAL, "the ring memfd is smaller than its slots");
    void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
    if (base == MAP_FAILED) return Status(errno, "cannot map the ring: " + ErrnoText(errno));
    ring_.base = static_cast<char*>(base);
    ring_.bytes = bytes;
    ring_.slot_count = req.slot;
    ring_.slot_bytes = req.length;
    core_->BeginStagingClient();  // ended by ~Client
    StartPool();
    return 0;
  }

  Result<int64_t> Register(Fd fd) {
    if (fd.get() < 0) return Status(EBADF, "register carries no descriptor");
    if (files_.size() >= gpu::kMaxFiles) return Status(EMFILE, "too many registered files");
    const int flags = fcntl(fd.get(), F_GETFL);
    if (flags < 0) return Status(EBADF, "F_GETFL on the descriptor failed");
    if ((flags & O_PATH) || (flags & O_ACCMODE) == O_WRONLY) {
      return Status(EBADF, "the descriptor is not open for reading");
    }
    // Cached attributes only: a GETATTR would be a request to this very daemon.
    struct statx stx;
    if (statx(fd.get(), "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO, &stx) !=
        0) {
      return Status(errno, "statx of the descriptor: " + ErrnoText(errno));
    }
    if (makedev(stx.stx_dev_major, stx.stx_dev_minor) != mount_dev_) {
      return Status(EXDEV, "the descriptor is not on this rankfs mount");
    }
    if (!S_ISREG(stx.stx_mode)) return Status(EINVAL, "the descriptor is not a regular file");
    if (stx.stx_ino == kStatsIno) return Status(EINVAL, "the stats file cannot be staged");
    // Closing a file of the mount sends a FLUSH to this daemon. A process exits closing its
    // descriptors in ascending order: kept above /dev/fuse, ours are closed after the
    // connection is gone, so a daemon that dies does not wait for itself.
    if (fd.get() < fuse_fd_) {
      Fd high(fcntl(fd.get(), F_DUPFD_CLOEXEC, fuse_fd_ + 1));
      if (high.get() < 0) return Status(errno, "dup of the descriptor: " + ErrnoText(errno));
      fd = std::move(high);
    }
    const uint32_t handle = next_handle_++;
    files_[handle] = RegisteredFile{std::move(fd), Ino(stx.stx_ino)};
    return int64_t(handle);
  }

  Result<int64_t> Read(const gpu::Request& req) {
    const char* why = "";
    if (gpu::CheckSlot(req, ring_.slot_count, ring_.slot_bytes, &why) != 0) {
      return Status(ERANGE, why);
    }
    auto it = files_.find(req.handle);
    if (it == files_.end()) return Status(EBADF, "unknown file handle");
    if (req.length == 0) return 0;
    // With the kernel's writeback cache, written pages may still be in the page cache only;
    // write them back so that the read sees them, as read() through the mount would.
    if (sync_file_range(it->second.fd.get(), off64_t(req.offset), off64_t(req.length),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
      return Status(errno, "writing back the range's dirty pages: " + ErrnoText(errno));
    }
    char* dst = ring_.base + uint64_t(req.slot) * ring_.slot_bytes;
    Result<size_t> n = core_->StageRead(it->second.ino, req.offset, size_t(req.length), dst);
    if (!n.ok()) return n.status();
    return int64_t(*n);
  }

  // False when the client is gone (EPIPE and the like): its thread then ends (out_mu_ held).
  bool Reply(uint64_t tag, uint32_t slot, int64_t value, std::string_view message) {
    gpu::WireReply w{};
    w.magic = gpu::kMagic;
    w.tag = tag;
    w.slot = slot;
    w.value = value;
    w.message_len = uint16_t(std::min(message.size(), gpu::kMaxMessageLen));
    char out[gpu::kMaxReplyBytes];
    std::memcpy(out, &w, sizeof w);
    std::memcpy(out + sizeof w, message.data(), w.message_len);
    ssize_t n = send(fd_, out, sizeof w + w.message_len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR) n = send(fd_, out, sizeof w + w.message_len, MSG_NOSIGNAL);
    return n == ssize_t(sizeof w + w.message_len);
  }

  FsCore* core_;
  const dev_t mount_dev_;
  const int fuse_fd_;
  const std::chrono::microseconds test_delay_;  // before each read (a test knob; 0: none)
  const int fd_;  // owned by the Connection
  std::string peer_ = "unknown peer";
  Ring ring_;
  // Changed by the receiving thread only while no read is in flight (Drain).
  std::unordered_map<uint32_t, RegisteredFile> files_;
  uint32_t next_handle_ = 1;

  struct Job {
    uint64_t seq = 0;
    gpu::Request req;
  };
  std::vector<std::thread> workers_;  // the pool; empty: reads are staged inline
  std::mutex jobs_mu_;                // guards jobs_, stopping_, named_
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  size_t named_ = 0;  // pool threads that have their name

  struct Pending {  // a request's reply, sent once every earlier one is
    uint64_t tag = 0;
    uint32_t slot = 0;
    int64_t value = 0;
    std::string message;
    bool done = false;
  };
  std::mutex out_mu_;  // guards pending_, first_seq_, and the socket's sends
  std::condition_variable drained_;
  std::deque<Pending> pending_;  // unanswered requests, oldest first
  uint64_t first_seq_ = 0;       // the sequence number of pending_.front()
  std::atomic<bool> gone_{false};  // a reply could not be sent: the client is gone
};

}  // namespace

class GpuServer::Impl {
 public:
  ~Impl() { Stop(); }

  Status Listen() {
    static std::atomic<unsigned> counter{0};
    name_ = "@rankfs-gpu." + std::to_string(getpid()) + "." + std::to_string(counter++);
    listen_.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (listen_.get() < 0) return Status(errno, "socket: " + ErrnoText(errno));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name_.data() + 1, name_.size() - 1);
    const socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + name_.size());
    if (bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listen_.get(), 64) != 0) {
      return Status(errno, "cannot listen on " + name_ + ": " + ErrnoText(errno));
    }
    stop_.reset(eventfd(0, EFD_CLOEXEC));
    if (stop_.get() < 0) return Status(errno, "eventfd: " + ErrnoText(errno));
    return Status::Ok();
  }

  void Start(FsCore* core, dev_t mount_dev, int fuse_fd, std::chrono::microseconds test_delay) {
    core_ = core;
    mount_dev_ = mount_dev;
    fuse_fd_ = fuse_fd;
    test_delay_ = test_delay;
    acceptor_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "gpu-accept");
      AcceptLoop();
    });
  }

  void Stop() {
    Disconnect();
    for (Connection& c : connections_) c.thread.join();  // no one adds any more
    connections_.clear();
  }

  void Disconnect() {
    if (acceptor_.joinable()) {
      uint64_t one = 1;
      ssize_t w = write(stop_.get(), &one, sizeof one);
      (void)w;
      acceptor_.join();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Connection& c : connections_) {
        if (c.fd >= 0) shutdown(c.fd, SHUT_RDWR);  // wakes its recvmsg
      }
    }
  }

  const std::string& name() const { return name_; }

 private:
  struct Connection {
    int fd = -1;  // guarded by mu_; closed (and -1) once its thread is done with it
    std::atomic<bool> done{false};
    std::thread thread;
  };

  void AcceptLoop() {
    pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    for (;;) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        Log(LogLevel::kError, kLog, "poll: " + ErrnoText(errno));
        return;
      }
      if (fds[1].revents != 0) return;
      if (!(fds[0].revents & POLLIN)) continue;
      int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;  // the client gave up, or no descriptors: try the next one
      Reap();
      std::lock_guard<std::mutex> lock(mu_);
      Connection* c = &connections_.emplace_back();  // list nodes stay put
      c->fd = fd;
      c->thread = std::thread([this, c] { RunClient(c); });
    }
  }

  void RunClient(Connection* c) {
    pthread_setname_np(pthread_self(), "gpu-client");  // tests and operators count them
    try {
      Client(core_, mount_dev_, fuse_fd_, test_delay_, c->fd).Serve();
    } catch (const std::exception& e) {
      Log(LogLevel::kError, kLog, std::string("client thread: ") + e.what());
    }
    std::lock_guard<std::mutex> lock(mu_);
    close(c->fd);
    c->fd = -1;
    c->done = true;
  }

  // Joins the threads of clients that are gone (called on the acceptor thread).
  void Reap() {
    std::list<Connection> finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = connections_.begin(); it != connections_.end();) {
        auto next = std::next(it);
        if (it->done) finished.splice(finished.end(), connections_, it);
        it = next;
      }
    }
    for (Connection& c : finished) c.thread.join();
  }

  std::string name_;
  Fd listen_;
  Fd stop_;
  FsCore* core_ = nullptr;
  dev_t mount_dev_ = 0;
  int fuse_fd_ = -1;
  std::chrono::microseconds test_delay_{0};
  std::thread acceptor_;
  std::mutex mu_;  // guards connections_ (the list and each fd)
  std::list<Connection> connections_;
};

Result<std::unique_ptr<GpuServer>> GpuServer::Create() {
  auto impl = std::make_unique<Impl>();
  Status s = impl->Listen();
  if (!s.ok()) return s;
  return std::unique_ptr<GpuServer>(new GpuServer(std::move(impl)));
}

GpuServer::GpuServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuServer::~GpuServer() = default;
const std::string& GpuServer::name() const { return impl_->name(); }
void GpuServer::Start(FsCore* core, dev_t mount_dev, int fuse_fd,
                      std::chrono::microseconds test_delay) {
  impl_->Start(core, mount_dev, fuse_fd, test_delay);
}
void GpuServer::Disconnect() { impl_->Disconnect(); }
unsigned GpuServer::StageThreads(uint32_t slot_count) {
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  return std::max(1u, std::min({kMaxStageThreads, cpus, slot_count}));
}

}  // namespace rankfs
