// StripFstabOptions: which words mount.rankfs takes out of the option list mount(8) hands it
// before ParseMountOptions sees it.
#include <gtest/gtest.h>

#include "fs/mount_options.h"

namespace rankfs {
namespace {

TEST(FstabOptionsTest, EmptyListsStayEmpty) {
  for (std::string_view list : {"", ",", ",,,"}) {
    FstabOptionSplit s = StripFstabOptions(list);
    EXPECT_EQ(s.mount_options, "") << list;
    EXPECT_TRUE(s.fstab_only.empty()) << list;
  }
}

TEST(FstabOptionsTest, EveryFstabOnlyWordIsStrippedInOrder) {
  FstabOptionSplit s = StripFstabOptions(
      "defaults,auto,noauto,nofail,_netdev,user,users,nouser,owner,group,user=alice,"
      "comment=systemd.automount,x-systemd.automount,x-systemd.requires=net.service,"
      "x-systemd.idle-timeout=60,x-gvfs-show");
  EXPECT_EQ(s.mount_options, "");
  EXPECT_EQ(s.fstab_only,
            (std::vector<std::string>{
                "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser",
                "owner", "group", "user=alice", "comment=systemd.automount", "x-systemd.automount",
                "x-systemd.requires=net.service", "x-systemd.idle-timeout=60", "x-gvfs-show"}));
}

TEST(FstabOptionsTest, RankfsAndKernelOptionsAreKeptInOrder) {
  FstabOptionSplit s =
      StripFstabOptions("compress=3,noauto,,allow_other,x-systemd.automount,rw,nosuid,nodev");
  EXPECT_EQ(s.mount_options, "compress=3,allow_other,rw,nosuid,nodev");
  EXPECT_EQ(s.fstab_only, (std::vector<std::string>{"noauto", "x-systemd.automount"}));
}

TEST(FstabOptionsTest, LookAlikesAreKeptForTheParserToRefuse) {
  FstabOptionSplit s = StripFstabOptions("username=x,autox,groups,xattr=off,defaults=1");
  EXPECT_EQ(s.mount_options, "username=x,autox,groups,xattr=off,defaults=1");
  EXPECT_TRUE(s.fstab_only.empty());
  MountConfig cfg;
  Status st = ParseMountOptions(s.mount_options, &cfg);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("username=x"), std::string::npos) << st.message();
}

// What util-linux 2.38 passes to a helper for "defaults,user,noauto,nofail,_netdev" plus
// rankfs options (it drops noauto, x-* and comment=, and adds the flags `user` implies).
TEST(FstabOptionsTest, WhatMount8PassesParses) {
  FstabOptionSplit s =
      StripFstabOptions("rw,noexec,nosuid,nodev,user,nofail,_netdev,allow_other,compress=5");
  EXPECT_EQ(s.fstab_only, (std::vector<std::string>{"user", "nofail", "_netdev"}));
  MountConfig cfg;
  Status st = ParseMountOptions(s.mount_options, &cfg);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(cfg.allow_other);
  EXPECT_EQ(cfg.store.compression_level, 5);
  EXPECT_EQ(cfg.kernel_flags, (std::vector<std::string>{"noexec", "nosuid", "nodev"}));
}

}  // namespace
}  // namespace rankfs
