// Tests of BufferPool: buffers handed back are reused for copies that fit, and the pool never
// keeps more than its cap nor buffers below its minimum.
#include "fs/buffer_pool.h"

#include <gtest/gtest.h>

namespace rankfs {
namespace {

TEST(BufferPoolTest, ReusesAGivenBufferForACopyThatFits) {
  BufferPool pool(4 << 20, 64 << 10);
  std::string a = pool.Copy(std::string(1 << 20, 'a'));
  const char* where = a.data();
  pool.Give(std::move(a));
  EXPECT_GE(pool.held_bytes(), size_t(1) << 20);
  const std::string b_data(300 << 10, 'b');
  std::string b = pool.Copy(b_data);
  EXPECT_EQ(b.data(), where);  // the same buffer, no fresh allocation
  EXPECT_EQ(b, b_data);        // holding the new bytes only
  EXPECT_EQ(pool.held_bytes(), 0u);
  // A copy larger than every pooled buffer gets a fresh one.
  pool.Give(std::move(b));
  std::string c = pool.Copy(std::string(2 << 20, 'c'));
  EXPECT_NE(c.data(), where);
  EXPECT_GE(pool.held_bytes(), size_t(1) << 20);
}

TEST(BufferPoolTest, KeepsNeitherSmallBuffersNorMoreThanItsCap) {
  BufferPool pool(2 << 20, 64 << 10);
  pool.Give(std::string(4 << 10, 's'));  // below the minimum: freed
  EXPECT_EQ(pool.held_bytes(), 0u);
  std::string small = pool.Copy(std::string(4 << 10, 's'));  // small copies bypass the pool
  EXPECT_EQ(small.size(), 4u << 10);
  for (int i = 0; i < 4; ++i) pool.Give(std::string(1 << 20, char('0' + i)));
  EXPECT_LE(pool.held_bytes(), size_t(2) << 20);
  EXPECT_GE(pool.held_bytes(), size_t(1) << 20);
}

}  // namespace
}  // namespace rankfs
