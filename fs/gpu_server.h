// GpuServer: the daemon's side of the GPU staging path (docs/gpu.md). It listens on an abstract
// Unix socket, advertised in the stats file as "gpu_socket=@NAME", and serves each client on a
// thread of its own: the client hands over a sealed memfd ring and the descriptors it opened
// on this mount (SCM_RIGHTS), then asks for (file, offset, length) to be read into a slot.
// Reads go through FsCore::StageRead (the store's chunks, or Read where bytes are still
// buffered), after the kernel's dirty pages of the range are written back, so a slot holds
// what read() would return. No pack, chunk address or block map ever leaves the daemon: the descriptor is the
// capability.
//
// Costs nothing while no client connects: the listening thread blocks in poll(). A client that
// goes away (even mid-request) ends its thread, which unmaps its ring and closes its
// descriptors.
//
// Thread-safety: Create, Start and the destructor are called from one thread (the daemon's
// main thread); the served clients run on the server's own threads.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>

#include <memory>
#include <string>

#include "fs/fs_core.h"
#include "store/status.h"

namespace rankfs {

class GpuServer {
 public:
  // Binds and listens on a fresh abstract socket name (see name()); serves nobody yet.
  static Result<std::unique_ptr<GpuServer>> Create();
  ~GpuServer();  // Disconnect()s and joins every thread
  GpuServer(const GpuServer&) = delete;
  GpuServer& operator=(const GpuServer&) = delete;

  // "@rankfs-gpu.PID.N": '@' stands for the abstract namespace's leading NUL.
  const std::string& name() const;
  // Starts accepting clients. `core` (not owned) must outlive this object; `mount_dev` is the
  // mount's st_dev: a registered descriptor must be on it. `fuse_fd` is the session's
  // /dev/fuse descriptor: registered descriptors are kept above it (see gpu_server.cc).
  // `test_delay` (a test knob, RANKFS_TEST_STAGE_DELAY_US) holds each Read request that long
  // before it is served, so that a test sees requests served at once.
  void Start(FsCore* core, dev_t mount_dev, int fuse_fd,
             std::chrono::microseconds test_delay = std::chrono::microseconds(0));

  // Stops accepting and hangs up on every client (their threads end after the request at
  // hand). The destructor then joins them.
  void Disconnect();

  // How many threads stage the reads of one client whose ring has `slot_count` slots:
  // min(4, CPUs, slot_count). One means the client's own thread stages them, one at a time.
  // (The benchmark's decompression bound uses as many.)
  static unsigned StageThreads(uint32_t slot_count);

  class Impl;

 private:
  explicit GpuServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankfs
