// The replaceable global allocation functions ([new.delete]) of this test binary, over malloc,
// with the failure point of alloc_failure.h. Being in the executable, they replace libstdc++'s
// for every library in the process (RocksDB and libstdc++ included), under ASan too.
#include "tests/fakes/alloc_failure.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rankfs::alloc_failure {
namespace {

std::atomic<bool> g_armed{false};
std::atomic<bool> g_failed{false};
std::atomic<int64_t> g_countdown{0};
std::atomic<std::thread::id> g_enrolled_other{};
thread_local bool t_enrolled = false;
thread_local int t_suspended = 0;

// Written by ExcludeLibrary / ExcludeFunctions before arming only.
std::vector<std::pair<uintptr_t, uintptr_t>> g_excluded;  // code ranges of excluded libraries
std::vector<std::string> g_excluded_names;                // parts of excluded function names

std::mutex g_pc_mu;                                 // guards g_pc_excluded
std::unordered_map<uintptr_t, bool> g_pc_excluded;  // return address -> in an excluded function

// Whether `pc` lies inside a function (with a symbol that covers it) whose name is excluded.
bool InExcludedFunction(uintptr_t pc) {
  std::lock_guard<std::mutex> l(g_pc_mu);
  auto it = g_pc_excluded.find(pc);
  if (it != g_pc_excluded.end()) return it->second;
  bool excluded = false;
  Dl_info info;
  void* extra = nullptr;
  // pc - 1: a return address may lie just past the end of a function ending in a call.
  if (dladdr1(reinterpret_cast<void*>(pc - 1), &info, &extra, RTLD_DL_SYMENT) != 0 &&
      info.dli_sname != nullptr && extra != nullptr) {
    const auto* sym = static_cast<const ElfW(Sym)*>(extra);
    const auto start = reinterpret_cast<uintptr_t>(info.dli_saddr);
    // dladdr names the nearest exported symbol below pc; a local function has none of its own.
    if (pc - 1 < start + sym->st_size) {
      for (const std::string& part : g_excluded_names) {
        if (std::strstr(info.dli_sname, part.c_str()) != nullptr) excluded = true;
      }
    }
  }
  g_pc_excluded.emplace(pc, excluded);
  return excluded;
}

bool InExcludedCode() {
  if (g_excluded.empty() && g_excluded_names.empty()) return false;
  void* frames[96];
  const int n = backtrace(frames, 96);
  for (int i = 0; i < n; ++i) {
    const auto pc = reinterpret_cast<uintptr_t>(frames[i]);
    for (const auto& [lo, hi] : g_excluded) {
      if (pc >= lo && pc < hi) return true;
    }
    if (!g_excluded_names.empty() && InExcludedFunction(pc)) return true;
  }
  return false;
}

bool ShouldFail() {
  if (!g_armed.load(std::memory_order_acquire) || t_suspended > 0) return false;
  if (!t_enrolled && g_enrolled_other.load() != std::this_thread::get_id()) return false;
  ++t_suspended;  // backtrace may allocate the first time; the cache does
  const bool excluded = InExcludedCode();
  --t_suspended;
  if (excluded || g_countdown.fetch_sub(1) != 0) return false;
  g_armed.store(false);
  g_failed.store(true);
  return true;
}

void* Allocate(std::size_t n, std::size_t align) {
  if (ShouldFail()) throw std::bad_alloc();
  if (n == 0) n = 1;
  for (;;) {
    void* p = nullptr;
    if (align <= alignof(std::max_align_t)) {
      p = std::malloc(n);
    } else if (posix_memalign(&p, align, n) != 0) {
      p = nullptr;
    }
    if (p != nullptr) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) throw std::bad_alloc();
    h();
  }
}

void* AllocateNoThrow(std::size_t n, std::size_t align) noexcept {
  try {
    return Allocate(n, align);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

void Arm(uint64_t n) {
  {
    Suspend s;
    void* warm[1];
    backtrace(warm, 1);  // loads the unwinder now, not inside an allocation
  }
  g_failed.store(false);
  g_enrolled_other.store(std::thread::id());
  g_countdown.store(int64_t(n));
  t_enrolled = true;
  g_armed.store(true, std::memory_order_release);
}

bool Disarm() {
  g_armed.store(false);
  t_enrolled = false;
  g_enrolled_other.store(std::thread::id());
  return g_failed.load();
}

void EnrollThreadUntilDisarm(std::thread::id id) { g_enrolled_other.store(id); }

void ExcludeLibrary(const char* name) {
  Suspend s;
  struct Arg {
    const char* name;
    std::vector<std::pair<uintptr_t, uintptr_t>>* out;
  } arg{name, &g_excluded};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* a = static_cast<Arg*>(data);
        if (info->dlpi_name == nullptr || std::strstr(info->dlpi_name, a->name) == nullptr) {
          return 0;
        }
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          a->out->emplace_back(lo, lo + ph.p_memsz);
        }
        return 0;
      },
      &arg);
}

void ExcludeFunctions(const char* part) {
  Suspend s;
  g_excluded_names.emplace_back(part);
}

Suspend::Suspend() { ++t_suspended; }
Suspend::~Suspend() { --t_suspended; }

}  // namespace rankfs::alloc_failure

using rankfs::alloc_failure::Allocate;
using rankfs::alloc_failure::AllocateNoThrow;

void* operator new(std::size_t n) { return Allocate(n, 0); }
void* operator new[](std::size_t n) { return Allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return Allocate(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return Allocate(n, std::size_t(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return AllocateNoThrow(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return AllocateNoThrow(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateNoThrow(n, std::size_t(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateNoThrow(n, std::size_t(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
