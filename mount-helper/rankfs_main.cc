// rankfs: the command-line tool. The commands are in the rankfs_cli library (cli.h).
#include <string>
#include <vector>

#include "mount-helper/cli.h"

int main(int argc, char** argv) {
  return rankfs::RankfsMain(std::vector<std::string>(argv, argv + argc), rankfs::StandardIo());
}
