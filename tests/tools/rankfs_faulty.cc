// rankfs_faulty: the rankfs command with fault injection in every store it mounts, for crash
// tests against a real mount (tests/integration/crash_loop_test.cc). Never installed.
//
// RANKFS_FAULTS holds the plan: rules separated by ';', each "OP:PATH:AFTER:COUNT[:applied]",
// as FaultController::FailAfter takes them (docs/testing.md): OP is sync, write, punch or
// metawrite; PATH a substring of the file's path ("" for any); after AFTER matching calls pass,
// the next COUNT fail with EIO; "applied" carries a failed call out first (an unknown outcome).
// Example: "sync:.pack:20:2;sync:.log:9:1:applied".
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fs/daemon.h"
#include "mount-helper/cli.h"
#include "store/fault_injection_env.h"
#include "store/rocks_fault_env.h"

namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

// Adds the rules of `plan` to `c`; false (and a message) on a malformed rule.
bool AddRules(const std::string& plan, rankfs::FaultController* c) {
  for (const std::string& rule : Split(plan, ';')) {
    if (rule.empty()) continue;
    const std::vector<std::string> f = Split(rule, ':');
    if (f.size() < 4 || f.size() > 5 || (f.size() == 5 && f[4] != "applied")) {
      std::fprintf(stderr, "rankfs_faulty: bad rule '%s'\n", rule.c_str());
      return false;
    }
    uint32_t op = 0;
    if (f[0] == "sync") op = rankfs::kFaultSync;
    if (f[0] == "write") op = rankfs::kFaultWrite;
    if (f[0] == "punch") op = rankfs::kFaultPunch;
    if (f[0] == "metawrite") op = rankfs::kFaultMetaWrite;
    if (op == 0) {
      std::fprintf(stderr, "rankfs_faulty: unknown op '%s'\n", f[0].c_str());
      return false;
    }
    c->FailAfter(op, std::strtoull(f[2].c_str(), nullptr, 10), EIO, f[1],
                 std::strtoll(f[3].c_str(), nullptr, 10),
                 f.size() == 5 ? rankfs::FaultEffect::kApplied : rankfs::FaultEffect::kNothing);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  auto controller = std::make_shared<rankfs::FaultController>();
  const char* plan = std::getenv("RANKFS_FAULTS");
  if (plan != nullptr && !AddRules(plan, controller.get())) return 2;
  // Made before RunMount forks: the daemon inherits them, with no thread started yet.
  rankfs::FaultInjectionEnv env(rankfs::Env::Default(), controller);
  rankfs::RocksFaultEnv rocks_env(controller);
  rankfs::MetaWriteFaults meta_faults(controller);
  rankfs::SetDaemonTestEnvs({&env, rocks_env.env(), &meta_faults});
  return rankfs::RankfsMain(std::vector<std::string>(argv, argv + argc), rankfs::StandardIo());
}
