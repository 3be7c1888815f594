// mount.rankfs (and mount.fuse.rankfs): the helper mount(8) runs for fstab entries of type
// rankfs or fuse.rankfs. The work is in the rankfs_cli library (cli_mount_helper.cc).
#include <string>
#include <vector>

#include "mount-helper/cli.h"

int main(int argc, char** argv) {
  return rankfs::MountHelperMain(std::vector<std::string>(argv, argv + argc), rankfs::StandardIo());
}
