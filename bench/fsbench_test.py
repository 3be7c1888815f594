#!/usr/bin/env python3
"""Unit tests of fsbench.py's arithmetic (no mounts): the CPU-budget rows and the CPU counter,
and how realjobs.py tells the known teardown abort from a failed job."""
import os
import sys
import time
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsbench  # noqa: E402
import realjobs  # noqa: E402


class CpuRowsTest(unittest.TestCase):
    args = types.SimpleNamespace(single_mib=1024, meta_files=10000)

    def med(self):
        return {
            "nranks4.wall_s": {"ext4": 5.0, "fuse_null": 2.0, "rankfs": 7.0},
            "nranks4.cpu_s": {"ext4": 4.0, "fuse_null": 3.5, "rankfs": 12.0},
            "single.write_MBps": {"passthrough_ll": 300.0, "rankfs": 180.0},
            "single.write_cpu_s": {"passthrough_ll": 2.0, "rankfs": 10.0},
            "meta.meta_ops": {"passthrough_ll": 10000.0, "rankfs": 8000.0},
            "meta.cpu_s": {"rankfs": 0.0},  # too short to count: no row
        }

    def rows(self, cpus):
        return {r["metric"]: r for r in fsbench.cpu_rows(self.med(), self.args, cpus)}

    def test_wall_time_bound_is_cpu_over_cpus_against_the_baseline(self):
        r = self.rows(2)["nranks4.wall_s"]
        self.assertAlmostEqual(r["best_ratio"], (12.0 / 2) / 5.0)
        self.assertEqual(r["baseline"], "ext4")
        self.assertEqual(r["fuse_null_cpu_s"], 3.5)
        self.assertTrue(r["verdict"].startswith("out of reach"), r["verdict"])

    def test_speed_bound_uses_the_phase_size(self):
        r = self.rows(2)["single.write_MBps"]
        mb = 1024 * fsbench.MIB / 1e6
        self.assertAlmostEqual(r["best_ratio"], mb / (10.0 / 2) / 300.0)
        self.assertTrue(r["verdict"].startswith("out of reach"), r["verdict"])
        # The same CPU cost on four CPUs would leave room for the 0.8 target.
        r4 = self.rows(4)["single.write_MBps"]
        self.assertAlmostEqual(r4["best_ratio"], 2 * r["best_ratio"])
        self.assertTrue(r4["verdict"].startswith("within reach"), r4["verdict"])
        self.assertIsNone(r4["fuse_null_cpu_s"])

    def test_missing_or_zero_measurements_give_no_row(self):
        rows = self.rows(2)
        self.assertNotIn("meta.meta_ops", rows)  # rankfs counted 0 CPU-s
        self.assertNotIn("nranks8.wall_s", rows)  # not run
        self.assertNotIn("single.read_cold_MBps", rows)


class BusyCpuTest(unittest.TestCase):
    def test_counts_at_least_this_process_s_own_cpu(self):
        before, own = fsbench.busy_cpu_s(), time.process_time()
        deadline = own + 0.3
        while time.process_time() < deadline:
            pass
        spent = time.process_time() - own
        # The machine's count includes every other process too, but it is sampled at each tick
        # and a hypervisor may book some ticks as stolen: half of ours is the floor asserted.
        self.assertGreater(spent, 0.29)
        self.assertGreaterEqual(fsbench.busy_cpu_s() - before, spent / 2)


class TeardownAbortTest(unittest.TestCase):
    """realjobs.teardown_abort: only every rank having reached its exit, and SIGABRT as the only
    failure torchrun reports, make a failed job count."""

    DONE = "".join(f"rank{r}_exit_begin=-\n" for r in range(realjobs.RANKS))

    def report(self, *codes):
        return "".join(f"  exitcode  : {c} (pid: {100 + i})\n" for i, c in enumerate(codes))

    def test_the_teardown_race_counts(self):
        log = self.DONE + "terminate called without an active exception\n" + self.report(-6)
        self.assertTrue(realjobs.teardown_abort(1, log, "rank%d_exit_begin"))

    def test_anything_else_does_not(self):
        key = "rank%d_exit_begin"
        self.assertFalse(realjobs.teardown_abort(0, self.DONE, key))  # not failed at all
        self.assertFalse(realjobs.teardown_abort(1, self.DONE + self.report(-6, -15), key))
        self.assertFalse(realjobs.teardown_abort(1, self.DONE + self.report(1), key))
        self.assertFalse(realjobs.teardown_abort(1, self.DONE, key))  # no report: not torchrun's
        short = self.DONE.replace("rank3_exit_begin=-\n", "")
        self.assertFalse(realjobs.teardown_abort(1, short + self.report(-6), key))


if __name__ == "__main__":
    unittest.main()
