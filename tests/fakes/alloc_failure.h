// Allocation failure on demand: this test binary's replacement of the global operator new and
// new[] (alloc_failure.cc) throws std::bad_alloc at a chosen allocation, so that a test can
// drive an out-of-memory failure into every step of the code it calls.
//
// What counts: allocations made while armed, on the thread that armed (and on one more thread a
// test may enroll), outside Suspend scopes and outside excluded code. One allocation fails; the
// ones after it succeed (a transient failure, like a cap hit once). Excluded code: an allocation
// with a frame of an excluded library or function on its stack never fails and is not counted
// (say, RocksDB, which is not exception-safe: a throw inside its write group leaves a dangling
// leader).
//
// Thread-safety: Arm/Disarm from one test thread; the rest from any thread.
#pragma once

#include <cstdint>
#include <thread>

namespace rankfs::alloc_failure {

// From now on, the allocation after `n` counted ones throws (n = 0: the next one).
void Arm(uint64_t n);
// Stops failing and counting; returns whether the failure happened.
bool Disarm();
// Thread `id`'s allocations count too, until Disarm (a thread that runs deferred work).
void EnrollThreadUntilDisarm(std::thread::id id);
// Allocations with a frame in a loaded library whose path contains `name` are left alone.
void ExcludeLibrary(const char* name);
// Allocations with a frame in a function of the executable whose mangled name contains `part`
// are left alone. REQUIRES: the executable exports its symbols (CMake ENABLE_EXPORTS).
void ExcludeFunctions(const char* part);

// No allocation fails or counts on this thread while one exists (the harness's own work).
class Suspend {
 public:
  Suspend();
  ~Suspend();
  Suspend(const Suspend&) = delete;
  Suspend& operator=(const Suspend&) = delete;
};

}  // namespace rankfs::alloc_failure
