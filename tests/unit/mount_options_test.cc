// ParseMountOptions / ParseByteSize / BuildFuseArgs: every option, suffixes, and the errors.
#include "fs/mount_options.h"

#include <gtest/gtest.h>

namespace rankfs {
namespace {

MountConfig Parse(std::string_view options) {
  MountConfig cfg;
  Status s = ParseMountOptions(options, &cfg);
  EXPECT_TRUE(s.ok()) << options << ": " << s.ToString();
  return cfg;
}

// The error for `options`; its message must name `name`.
void ExpectRejected(std::string_view options, std::string_view name) {
  MountConfig cfg;
  Status s = ParseMountOptions(options, &cfg);
  ASSERT_FALSE(s.ok()) << options;
  EXPECT_EQ(s.code(), EINVAL) << options;
  EXPECT_NE(s.message().find(name), std::string::npos) << s.message();
}

TEST(MountOptionsTest, DefaultsWhenEmpty) {
  MountConfig cfg = Parse("");
  MountConfig def;
  EXPECT_TRUE(cfg.writeback_cache);
  EXPECT_TRUE(cfg.page_fill);
  EXPECT_FALSE(cfg.allow_other);
  EXPECT_FALSE(cfg.read_only);
  EXPECT_TRUE(cfg.fs.xattrs);
  EXPECT_EQ(cfg.fs.root_mode, def.fs.root_mode);
  EXPECT_EQ(cfg.store.chunker, def.store.chunker);
  EXPECT_TRUE(cfg.kernel_flags.empty());
  Parse(",,");  // empty items are skipped
}

TEST(MountOptionsTest, StoreSettings) {
  MountConfig cfg = Parse("compress=7,chunk_min=4K,chunk_avg=16K,chunk_max=1M");
  EXPECT_EQ(cfg.store.compression_level, 7);
  EXPECT_EQ(cfg.store.chunker.min_size, 4u * 1024);
  EXPECT_EQ(cfg.store.chunker.avg_size, 16u * 1024);
  EXPECT_EQ(cfg.store.chunker.max_size, 1u << 20);
  EXPECT_EQ(Parse("compress=0").store.compression_level, 0);
  EXPECT_EQ(Parse("compress=19").store.compression_level, 19);
}

TEST(MountOptionsTest, RuntimeSettings) {
  MountConfig cfg = Parse(
      "cache_size=1G,write_buffer=64M,xattr=off,writeback_cache=off,"
      "entry_timeout=2.5,attr_timeout=0,lazy_close=0.25");
  EXPECT_EQ(cfg.fs.chunk_cache_bytes, 1ull << 30);
  EXPECT_EQ(cfg.fs.lazy_close_ms, 250);
  EXPECT_EQ(Parse("lazy_close=0").fs.lazy_close_ms, 0);
  EXPECT_EQ(Parse("").fs.lazy_close_ms, 5000);
  EXPECT_EQ(cfg.fs.write_buffer_bytes, 64ull << 20);
  EXPECT_FALSE(cfg.fs.xattrs);
  EXPECT_FALSE(cfg.writeback_cache);
  EXPECT_DOUBLE_EQ(cfg.fs.entry_timeout_s, 2.5);
  EXPECT_DOUBLE_EQ(cfg.fs.attr_timeout_s, 0.0);
  cfg = Parse("xattr=on,writeback_cache=on");
  EXPECT_TRUE(cfg.fs.xattrs);
  EXPECT_TRUE(cfg.writeback_cache);
  // page_fill is its own switch: turning it off leaves the other two alone.
  cfg = Parse("page_fill=off");
  EXPECT_FALSE(cfg.page_fill);
  EXPECT_TRUE(cfg.writeback_cache);
  EXPECT_TRUE(cfg.fs.xattrs);
  EXPECT_TRUE(Parse("page_fill=off,page_fill=on").page_fill);
  EXPECT_EQ(Parse("").fuse_threads, 16u);
  EXPECT_EQ(Parse("fuse_threads=4").fuse_threads, 4u);
}

TEST(MountOptionsTest, OwnerAndUmaskOfTheRoot) {
  MountConfig cfg = Parse("uid=1000,gid=100,umask=027");
  EXPECT_EQ(cfg.fs.root_uid, 1000u);
  EXPECT_EQ(cfg.fs.root_gid, 100u);
  EXPECT_EQ(cfg.fs.root_mode, 0750u);
  EXPECT_EQ(Parse("umask=0").fs.root_mode, 0777u);
  EXPECT_EQ(Parse("umask=777").fs.root_mode, 0u);
}

TEST(MountOptionsTest, FlagsAndPassThrough) {
  MountConfig cfg = Parse(
      "allow_other,default_permissions,debug,ro,fsname=cache,nosuid,nodev,"
      "noexec,noatime,auto_unmount,relatime,defaults,_netdev,x-systemd.foo");
  EXPECT_TRUE(cfg.allow_other);
  EXPECT_TRUE(cfg.debug);
  EXPECT_TRUE(cfg.read_only);
  EXPECT_TRUE(cfg.store.read_only) << "a read-only mount must open the store read-only";
  EXPECT_TRUE(cfg.fs.read_only);
  EXPECT_EQ(cfg.fsname, "cache");
  EXPECT_EQ(cfg.kernel_flags,
            (std::vector<std::string>{"nosuid", "nodev", "noexec", "noatime", "auto_unmount"}));
  EXPECT_FALSE(Parse("ro,rw").read_only);
  EXPECT_FALSE(Parse("ro,rw").store.read_only);
  EXPECT_FALSE(Parse("ro,rw").fs.read_only);
  EXPECT_EQ(Parse("suid,dev,exec,atime").kernel_flags,
            (std::vector<std::string>{"suid", "dev", "exec", "atime"}));
}

TEST(MountOptionsTest, LaterListsApplyOnTop) {
  MountConfig cfg;
  ASSERT_TRUE(ParseMountOptions("compress=3,cache_size=1M", &cfg).ok());
  ASSERT_TRUE(ParseMountOptions("compress=5", &cfg).ok());
  EXPECT_EQ(cfg.store.compression_level, 5);
  EXPECT_EQ(cfg.fs.chunk_cache_bytes, 1ull << 20);
}

TEST(MountOptionsTest, ByteSizes) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("64K"), 64u << 10);
  EXPECT_EQ(*ParseByteSize("64k"), 64u << 10);
  EXPECT_EQ(*ParseByteSize("16M"), 16u << 20);
  EXPECT_EQ(*ParseByteSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  for (const char* bad :
       {"", "K", "1.5M", "-1", "12Q", "1KB", " 1", "99999999999999999999", "17179869184G"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
}

TEST(MountOptionsTest, MalformedValuesAreRejectedByName) {
  ExpectRejected("compress=abc", "compress");
  ExpectRejected("compress=99", "compress");
  ExpectRejected("compress=20", "compress");
  ExpectRejected("compress=-1", "compress");
  ExpectRejected("compress", "compress");
  ExpectRejected("umask=999", "umask");
  ExpectRejected("umask=1777", "umask");
  ExpectRejected("uid=abc", "uid");
  ExpectRejected("gid=-5", "gid");
  ExpectRejected("cache_size=lots", "cache_size");
  ExpectRejected("write_buffer=", "write_buffer");
  ExpectRejected("xattr=maybe", "xattr");
  ExpectRejected("writeback_cache=2", "writeback_cache");
  ExpectRejected("page_fill=sometimes", "page_fill");
  ExpectRejected("page_fill", "page_fill");
  ExpectRejected("fuse_threads=1", "fuse_threads");
  ExpectRejected("fuse_threads=65", "fuse_threads");
  ExpectRejected("fuse_threads", "fuse_threads");
  ExpectRejected("entry_timeout=-1", "entry_timeout");
  ExpectRejected("attr_timeout=soon", "attr_timeout");
  ExpectRejected("fsname=", "fsname");
  ExpectRejected("lazy_close=-1", "lazy_close");
  ExpectRejected("lazy_close=1e9", "lazy_close");
  ExpectRejected("lazy_close", "lazy_close");
}

TEST(MountOptionsTest, ChunkSizesAreValidated) {
  ExpectRejected("chunk_avg=48K", "chunk_avg");  // not a power of two
  ExpectRejected("chunk_avg=abc", "chunk_avg");
  ExpectRejected("chunk_min=64K", "chunk");     // min > avg (32K default)
  ExpectRejected("chunk_max=16K", "chunk");     // max < avg
  ExpectRejected("chunk_min=16", "chunk");      // below the minimum of 64
  ExpectRejected("chunk_max=8G", "chunk_max");  // does not fit 32 bits
}

TEST(MountOptionsTest, UnknownOptionsAreReportedByName) {
  ExpectRejected("frobnicate", "frobnicate");
  ExpectRejected("compress=1,bogus=3", "bogus");
  ExpectRejected("nosuid,Allow_Other", "Allow_Other");
}

TEST(MountOptionsTest, FuseArgs) {
  MountConfig cfg = Parse("allow_other,nosuid,noatime");
  std::vector<std::string> args = BuildFuseArgs(cfg, "/data/store");
  ASSERT_EQ(args.size(), 3u);
  EXPECT_EQ(args[1], "-o");
  EXPECT_EQ(args[2],
            "fsname=/data/store,subtype=rankfs,default_permissions,allow_other,rw,nosuid,noatime");

  ASSERT_FALSE(ParseMountOptions("fsname=x,y", &cfg).ok());  // "y" is an unknown option
  cfg = Parse("debug,ro");
  cfg.fsname = "we,ird";
  args = BuildFuseArgs(cfg, "/s");
  ASSERT_EQ(args.size(), 4u);
  EXPECT_EQ(args[1], "-d");
  EXPECT_EQ(args[3], "fsname=we\\,ird,subtype=rankfs,default_permissions,ro");
}

}  // namespace
}  // namespace rankfs
