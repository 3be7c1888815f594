// The contract of a GPU staging backend (gpu/backend.h), as checks that run against any of
// them: the CPU backend in tests/unit/gpu_backend_test.cc (also under TSan), the CUDA backend
// on a device in tests/gpu/gpu_cuda_test.cc. `Memory` says how the backend's destinations are
// allocated and read back (host memory for the CPU backend; cudaMalloc/cudaMemcpy for CUDA).
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "gpu/backend.h"
#include "gpu/slot_pool.h"

namespace rankfs::gpu {

struct Memory {
  std::function<void*(size_t)> alloc;  // nullptr on failure
  std::function<void(void*)> free;
  std::function<void(void* host, const void* dst, size_t n)> to_host;
};

// Many pieces through a two-slot ring, each slot refilled as soon as the backend says its copy
// completed: a slot given back before its copy ended would be overwritten under the copy, and
// the destination would show the next piece's bytes.
// Takes the backend, since it must let go of the ring before the ring is unmapped.
inline void CheckSlotsAreReusedOnlyAfterTheirCopy(std::unique_ptr<Backend> backend,
                                                  const Memory& mem) {
  constexpr uint32_t kSlots = 2, kSlotBytes = 256 << 10, kPieces = 64;
  const size_t ring_bytes = size_t(kSlots) * kSlotBytes;
  void* ring_base =
      mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ring_base, MAP_FAILED);
  char* ring = static_cast<char*>(ring_base);
  {
    BackendStatus s = backend->RegisterRing(ring, ring_bytes);
    ASSERT_TRUE(s.ok()) << s.message;
  }
  void* dst = mem.alloc(size_t(kPieces) * kSlotBytes);
  ASSERT_NE(dst, nullptr);
  SlotPool pool(kSlots);
  std::atomic<int> completions{0};
  {
    std::unique_ptr<BackendStream> stream;
    BackendStatus s = backend->CreateStream(&stream);
    ASSERT_TRUE(s.ok()) << s.message;
    for (uint32_t i = 0; i < kPieces; ++i) {
      const uint32_t slot = pool.Acquire();
      char* src = ring + size_t(slot) * kSlotBytes;
      std::memset(src, 'a' + i % 26, kSlotBytes);  // the "daemon" fills the slot
      s = stream->CopyAsync(static_cast<char*>(dst) + size_t(i) * kSlotBytes, src, kSlotBytes,
                            [&pool, &completions, slot](const BackendStatus& st) {
                              EXPECT_TRUE(st.ok()) << st.message;
                              EXPECT_TRUE(pool.Release(slot));
                              ++completions;
                            });
      ASSERT_TRUE(s.ok()) << s.message;
    }
    s = stream->Synchronize();
    EXPECT_TRUE(s.ok()) << s.message;
    EXPECT_EQ(completions.load(), int(kPieces)) << "synchronize returned before the completions";
    EXPECT_EQ(pool.FreeCount(), kSlots);
  }
  std::vector<char> host(size_t(kPieces) * kSlotBytes);
  mem.to_host(host.data(), dst, host.size());
  for (uint32_t i = 0; i < kPieces; ++i) {
    const char* piece = host.data() + size_t(i) * kSlotBytes;
    for (uint32_t j = 0; j < kSlotBytes; j += 4093) {
      ASSERT_EQ(piece[j], char('a' + i % 26)) << "piece " << i << " byte " << j;
    }
    ASSERT_EQ(piece[kSlotBytes - 1], char('a' + i % 26)) << "piece " << i;
  }
  mem.free(dst);
  backend.reset();  // unregisters the ring
  munmap(ring_base, ring_bytes);
}

// Completions run in the order their work was queued, Then after the copies queued before it,
// and Synchronize only once they all ran.
inline void CheckCompletionsRunInOrder(Backend* backend, const Memory& mem) {
  constexpr size_t kBytes = 1 << 20;
  std::vector<char> src(kBytes, 'x');
  void* dst = mem.alloc(kBytes);
  ASSERT_NE(dst, nullptr);
  std::vector<int> order;  // written by the completions only, one at a time
  {
    std::unique_ptr<BackendStream> stream;
    BackendStatus s = backend->CreateStream(&stream);
    ASSERT_TRUE(s.ok()) << s.message;
    for (int i = 0; i < 50; ++i) {
      Completion record = [&order, i](const BackendStatus& st) {
        EXPECT_TRUE(st.ok()) << st.message;
        order.push_back(i);
      };
      s = i % 2 == 0 ? stream->CopyAsync(dst, src.data(), kBytes, record) : stream->Then(record);
      ASSERT_TRUE(s.ok()) << s.message;
    }
    s = stream->Synchronize();
    ASSERT_TRUE(s.ok()) << s.message;
    ASSERT_EQ(order.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(order[size_t(i)], i);
  }
  mem.free(dst);
}

}  // namespace rankfs::gpu
