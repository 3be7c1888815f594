// The GPU staging path's pure parts: the request decoder and slot check (gpu/protocol.h), the
// ring's slot accounting (gpu/slot_pool.h) and the CPU backend's FIFO stream (gpu/cpu_stream.h).
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "gpu/cpu_stream.h"
#include "gpu/protocol.h"
#include "gpu/slot_pool.h"

namespace rankfs::gpu {
namespace {

WireRequest Valid(Op op) { return EncodeRequest(Request{op, 7, 3, 2, 4096, 65536}); }

int Decode(const WireRequest& w, Request* out, const char** why) {
  return DecodeRequest(reinterpret_cast<const uint8_t*>(&w), sizeof w, out, why);
}

TEST(GpuProtocolTest, ValidRequestsRoundTrip) {
  for (Op op : {Op::kRing, Op::kRegister, Op::kRead, Op::kUnregister}) {
    Request r;
    const char* why = "";
    ASSERT_EQ(Decode(Valid(op), &r, &why), 0) << why;
    EXPECT_EQ(r.op, op);
    EXPECT_EQ(r.tag, 7u);
    EXPECT_EQ(r.handle, 3u);
    EXPECT_EQ(r.slot, 2u);
    EXPECT_EQ(r.offset, 4096u);
    EXPECT_EQ(r.length, 65536u);
    WireRequest again = EncodeRequest(r);
    WireRequest orig = Valid(op);
    EXPECT_EQ(std::memcmp(&again, &orig, sizeof again), 0);
  }
}

TEST(GpuProtocolTest, MalformedRequestsAreRefused) {
  struct Case {
    const char* name;
    void (*mutate)(WireRequest*);
    Op op;
    int err;
  };
  const Case cases[] = {
      {"bad magic", [](WireRequest* w) { w->magic ^= 1; }, Op::kRead, -EPROTO},
      {"bad version", [](WireRequest* w) { w->version = 99; }, Op::kRead, -EPROTO},
      {"unknown op", [](WireRequest* w) { w->op = 0; }, Op::kRead, -EPROTO},
      {"unknown op 5", [](WireRequest* w) { w->op = 5; }, Op::kRead, -EPROTO},
      {"read overflows", [](WireRequest* w) { w->offset = UINT64_MAX - 1; }, Op::kRead, -EINVAL},
      {"offset past int64",
       [](WireRequest* w) {
         w->offset = 1ull << 63;
         w->length = 0;
       },
       Op::kRead, -EINVAL},
      {"ring of no slots", [](WireRequest* w) { w->slot = 0; }, Op::kRing, -EINVAL},
      {"ring of too many slots", [](WireRequest* w) { w->slot = kMaxSlots + 1; }, Op::kRing,
       -EINVAL},
      {"empty slots", [](WireRequest* w) { w->length = 0; }, Op::kRing, -EINVAL},
      {"slots too big", [](WireRequest* w) { w->length = kMaxSlotBytes + 1; }, Op::kRing, -EINVAL},
      {"ring too big",
       [](WireRequest* w) {
         w->slot = kMaxSlots;
         w->length = kMaxSlotBytes;
       },
       Op::kRing, -EINVAL},
  };
  for (const Case& c : cases) {
    WireRequest w = Valid(c.op);
    c.mutate(&w);
    Request r;
    const char* why = nullptr;
    EXPECT_EQ(Decode(w, &r, &why), c.err) << c.name;
    EXPECT_NE(why, nullptr) << c.name;
  }
  // Any size but the exact one is refused, without reading past the buffer.
  std::vector<uint8_t> bytes(sizeof(WireRequest) + 1);
  WireRequest w = Valid(Op::kRead);
  std::memcpy(bytes.data(), &w, sizeof w);
  for (size_t n : {size_t{0}, size_t{1}, sizeof w - 1, sizeof w + 1}) {
    Request r;
    const char* why = nullptr;
    EXPECT_EQ(DecodeRequest(bytes.data(), n, &r, &why), -EPROTO) << n;
  }
}

TEST(GpuProtocolTest, SlotBoundsAreChecked) {
  Request r{Op::kRead, 1, 1, 0, 0, 100};
  const char* why = "";
  EXPECT_EQ(CheckSlot(r, 0, 4096, &why), -ERANGE) << "no ring yet";
  EXPECT_EQ(CheckSlot(r, 4, 4096, &why), 0);
  r.slot = 3;
  EXPECT_EQ(CheckSlot(r, 4, 4096, &why), 0);
  r.slot = 4;
  EXPECT_EQ(CheckSlot(r, 4, 4096, &why), -ERANGE);
  EXPECT_STREQ(why, "slot out of bounds");
  r.slot = UINT32_MAX;
  EXPECT_EQ(CheckSlot(r, 4, 4096, &why), -ERANGE);
  r.slot = 0;
  r.length = 4096;
  EXPECT_EQ(CheckSlot(r, 4, 4096, &why), 0);
  r.length = 4097;
  EXPECT_EQ(CheckSlot(r, 4, 4096, &why), -ERANGE);
  EXPECT_STREQ(why, "length exceeds the slot size");
}

TEST(GpuSlotPoolTest, EachSlotIsHandedOutOnceUntilReleased) {
  SlotPool pool(3);
  std::vector<bool> seen(3, false);
  for (int i = 0; i < 3; ++i) {
    std::optional<uint32_t> s = pool.TryAcquire();
    ASSERT_TRUE(s.has_value());
    ASSERT_LT(*s, 3u);
    EXPECT_FALSE(seen[*s]);
    seen[*s] = true;
  }
  EXPECT_FALSE(pool.TryAcquire().has_value());
  EXPECT_TRUE(pool.Release(1));
  EXPECT_FALSE(pool.Release(1)) << "double release";
  EXPECT_FALSE(pool.Release(3)) << "out of range";
  EXPECT_EQ(pool.TryAcquire(), std::optional<uint32_t>(1));
}

TEST(GpuSlotPoolTest, AcquireWaitsForARelease) {
  SlotPool pool(1);
  ASSERT_EQ(pool.Acquire(), 0u);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    EXPECT_EQ(pool.Acquire(), 0u);
    got = true;
  });
  EXPECT_FALSE(got.load());
  EXPECT_TRUE(pool.Release(0));
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(pool.FreeCount(), 0u);
}

// Many producers reuse few slots through delayed FIFO copies: a slot reused before its copy
// ran would overwrite bytes a copy had not taken yet, and the destination would differ.
TEST(GpuCpuStreamTest, SlotsAreReusedOnlyAfterTheirCopy) {
  constexpr uint32_t kSlots = 2, kSlotBytes = 64, kPieces = 400;
  std::vector<char> ring(kSlots * kSlotBytes);
  std::vector<char> dst(kPieces * kSlotBytes, 0);
  SlotPool pool(kSlots);
  {
    CpuStream stream(50);
    for (uint32_t i = 0; i < kPieces; ++i) {
      const uint32_t slot = pool.Acquire();
      char* src = ring.data() + slot * kSlotBytes;
      std::memset(src, char('a' + i % 26), kSlotBytes);  // the "daemon" fills the slot
      stream.Enqueue([&pool, slot, src, to = dst.data() + i * kSlotBytes] {
        std::memcpy(to, src, kSlotBytes);
        pool.Release(slot);
      });
    }
    stream.Synchronize();
    EXPECT_EQ(pool.FreeCount(), kSlots);
  }
  for (uint32_t i = 0; i < kPieces; ++i) {
    for (uint32_t j = 0; j < kSlotBytes; ++j) {
      ASSERT_EQ(dst[i * kSlotBytes + j], char('a' + i % 26)) << "piece " << i;
    }
  }
}

TEST(GpuCpuStreamTest, TasksRunInOrder) {
  std::vector<int> order;
  CpuStream stream(20);
  for (int i = 0; i < 100; ++i) stream.Enqueue([&order, i] { order.push_back(i); });
  stream.Synchronize();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

}  // namespace
}  // namespace rankfs::gpu
