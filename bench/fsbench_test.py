#!/usr/bin/env python3
"""Unit tests of fsbench.py's arithmetic (no mounts): the CPU-budget rows, the CPU floor and
the CPU counters, and how realjobs.py tells the known teardown abort from a failed job."""
import os
import subprocess
import sys
import time
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsbench  # noqa: E402
import fuse_requests  # noqa: E402
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


class FloorTest(unittest.TestCase):
    """floor = fuse_null's CPU-s for the job + SHA-256 and zstd CPU-s of its unique chunks."""

    def med(self):
        return {
            "nranks4.cpu_s": {"ext4": 4.0, "passthrough_ll": 6.0, "fuse_null": 3.0,
                              "rankfs": 6.0},
            "nranks4.daemon_cpu_s": {"fuse_null": 0.5, "rankfs": 3.2},
            "nranks4.job_cpu_s": {"ext4": 3.0, "fuse_null": 2.0, "rankfs": 4.2},
            "pyjob4.cpu_s": {"ext4": 2.0, "fuse_null": 2.5, "rankfs": 3.0},
            "single.write_cpu_s": {"fuse_null": 1.0, "rankfs": 9.0},  # no floor measured
            "nranks8.cpu_s": {"rankfs": 12.0},  # no fuse_null run
        }

    def floors(self):
        return {"nranks4": {"sha256_cpu_s": 0.4, "zstd_cpu_s": 1.1, "unique_bytes": 600e6},
                "pyjob4": {"sha256_cpu_s": 0.2, "zstd_cpu_s": 0.3, "unique_bytes": 200e6},
                "nranks8": {"sha256_cpu_s": 0.4, "zstd_cpu_s": 1.1, "unique_bytes": 600e6}}

    def rows(self):
        return {r["workload"]: r for r in fsbench.floor_rows(self.med(), self.floors())}

    def test_floor_is_fuse_null_plus_hashing_and_compressing(self):
        r = self.rows()["nranks4"]
        self.assertAlmostEqual(r["floor_cpu_s"], 3.0 + 0.4 + 1.1)
        self.assertAlmostEqual(r["store_cpu_s"], 1.5)
        self.assertAlmostEqual(r["ratio"], 6.0 / 4.5)
        self.assertTrue(r["verdict"].startswith("MISSED"), r["verdict"])
        self.assertAlmostEqual(r["over_floor"]["ext4"], 4.0 / 4.5)
        self.assertAlmostEqual(r["over_floor"]["passthrough_ll"], 6.0 / 4.5)
        self.assertEqual(r["daemon_cpu_s"], {"fuse_null": 0.5, "rankfs": 3.2})
        # From the job's own CPU-seconds: fuse_null's job + the same store part.
        self.assertAlmostEqual(r["job_floor_cpu_s"], 2.0 + 1.5)
        self.assertAlmostEqual(r["job_ratio"], 4.2 / 3.5)

    def test_within_a_quarter_of_the_floor_is_met(self):
        r = self.rows()["pyjob4"]
        self.assertAlmostEqual(r["floor_cpu_s"], 3.0)
        self.assertAlmostEqual(r["ratio"], 1.0)
        self.assertTrue(r["verdict"].startswith("met"), r["verdict"])
        self.assertEqual(r["daemon_cpu_s"], {})  # not measured: nothing invented
        self.assertNotIn("job_ratio", r)
        edge = self.med()
        edge["pyjob4.cpu_s"]["rankfs"] = 3.0 * fsbench.FLOOR_TARGET * 1.001
        r = {r["workload"]: r for r in fsbench.floor_rows(edge, self.floors())}["pyjob4"]
        self.assertTrue(r["verdict"].startswith("MISSED"), r["verdict"])

    def test_no_row_without_fuse_null_or_a_floor_measurement(self):
        rows = self.rows()
        self.assertNotIn("single", rows)
        self.assertNotIn("nranks8", rows)
        self.assertEqual(sorted(rows), ["nranks4", "pyjob4"])

    def test_floor_medians_take_each_part_s_median(self):
        runs = {"nranks4": [{"sha256_cpu_s": s, "zstd_cpu_s": z, "unique_bytes": 10}
                            for s, z in ((0.5, 1.0), (0.3, 3.0), (0.4, 2.0))]}
        m = fsbench.floor_medians(runs)["nranks4"]
        self.assertEqual((m["sha256_cpu_s"], m["zstd_cpu_s"], m["unique_bytes"]), (0.4, 2.0, 10))


class PeerTest(unittest.TestCase):
    def test_rankfs_is_judged_against_btrfs_beside_ext4(self):
        med = {"nranks4.disk_bytes": {"ext4": 2400.0, "btrfs": 900.0, "rankfs": 230.0},
               "nranks4.final_s": {"ext4": 5.0, "btrfs": 40.0, "rankfs": 6.0},
               "nranks8.disk_bytes": {"ext4": 4800.0, "btrfs": 200.0, "rankfs": 240.0}}
        rows = {(r["metric"], r["baseline"]): r for r in fsbench.ratios(med)}
        ext4 = rows[("nranks4.disk_bytes", "ext4")]
        self.assertAlmostEqual(ext4["ratio"], 230 / 2400)
        self.assertTrue(ext4["verdict"].startswith("met (target <= 0.1)"), ext4["verdict"])
        peer = rows[("nranks4.disk_bytes", "btrfs")]
        self.assertAlmostEqual(peer["ratio"], 230 / 900)
        self.assertTrue(peer["verdict"].startswith("met (target <= 1.0)"), peer["verdict"])
        self.assertTrue(rows[("nranks4.final_s", "btrfs")]["verdict"].startswith("met"))
        self.assertEqual(rows[("nranks4.final_s", "ext4")]["verdict"], "")  # no target there
        self.assertTrue(rows[("nranks8.disk_bytes", "btrfs")]["verdict"].startswith("MISSED"))


class DaemonCpuTest(unittest.TestCase):
    def test_process_cpu_counts_this_process(self):
        own = time.process_time()
        deadline = own + 0.3
        while time.process_time() < deadline:
            pass
        # /proc/PID/stat counts in clock ticks: within two ticks of the process's own count.
        tick = 1 / os.sysconf("SC_CLK_TCK")
        self.assertAlmostEqual(fsbench.process_cpu_s(os.getpid()), time.process_time(),
                               delta=2 * tick + 0.02)
        self.assertIsNone(fsbench.process_cpu_s(2**22 + 12345))  # above pid_max: no process

    def test_phase_reports_the_daemon_s_cpu_over_the_phase(self):
        class Target:
            cpu = 10.0

            def daemon_cpu_s(self):
                return self.cpu

        t = Target()
        phase = fsbench.CpuPhase(t)
        t.cpu = 12.5
        busy = subprocess.run([sys.executable, "-c",
                               "import time\nt = time.process_time() + 0.2\n"
                               "while time.process_time() < t: pass"])
        self.assertEqual(busy.returncode, 0)
        machine, daemon, job = phase.end()
        self.assertAlmostEqual(daemon, 2.5)
        self.assertGreaterEqual(machine, 0)
        # The job: the child's CPU (at least its 0.2 s loop) plus the daemon's.
        self.assertGreaterEqual(job, 2.5 + 0.2)
        self.assertLess(job, 2.5 + 5.0)
        none = fsbench.CpuPhase(fsbench.Ext4("/nonexistent")).end()
        self.assertIsNone(none[1])


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



class Files100kRatiosTest(unittest.TestCase):
    """files100k: each phase's files per second against passthrough_ll, whose count may be
    lower (its limit of open files); the counts themselves are no ratio."""

    med = {
        "files100k.files": {"ext4": 100000, "passthrough_ll": 19000, "rankfs": 100000},
        "files100k.create_fps": {"ext4": 20000.0, "passthrough_ll": 5000.0, "rankfs": 4500.0},
        "files100k.rm_fps": {"ext4": 30000.0, "passthrough_ll": 15000.0, "rankfs": 6000.0},
    }

    def rows(self):
        return {(r["metric"], r["baseline"]): r for r in fsbench.ratios(self.med)}

    def test_phases_are_judged_against_passthrough_ll(self):
        rows = self.rows()
        create = rows[("files100k.create_fps", "passthrough_ll")]
        self.assertAlmostEqual(create["ratio"], 0.9)
        self.assertTrue(create["verdict"].startswith("met"), create["verdict"])
        rm = rows[("files100k.rm_fps", "passthrough_ll")]
        self.assertAlmostEqual(rm["ratio"], 0.4)
        self.assertTrue(rm["verdict"].startswith("MISSED"), rm["verdict"])
        self.assertEqual(rows[("files100k.create_fps", "ext4")]["verdict"], "")

    def test_the_file_counts_are_no_ratio(self):
        self.assertFalse([k for k in self.rows() if k[0] == "files100k.files"])

    def test_passthrough_ll_holds_no_more_files_than_its_descriptors(self):
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        n = fsbench.Passthrough.max_files()
        if hard == resource.RLIM_INFINITY:
            self.assertEqual(n, hard)
        else:
            self.assertLess(n, hard)
            self.assertGreaterEqual(n, 0)

class Files100kPhasesTest(unittest.TestCase):
    """files100k records each phase's rate, the machine's CPU and a FUSE daemon's own CPU (the
    daemon's CPU per file is what tells its work from the kernel's round trips)."""

    class Daemon:
        name = "fake"

        def __init__(self):
            self.cpu = 0.0

        def daemon_cpu_s(self):
            self.cpu += 0.25  # a quarter of a second more at every look
            return self.cpu

    def run_phases(self, target):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            fake = os.path.join(tmp, "fsbench")
            with open(fake, "w") as f:
                f.write("#!/bin/sh\necho '{\"files\": '$4', \"seconds\": 2.0}'\n")
            os.chmod(fake, 0o755)
            args = types.SimpleNamespace(many_files=1000, fsbench=fake)
            saved = fsbench.drop_caches
            fsbench.drop_caches = lambda: None  # not this machine's caches, in a unit test
            try:
                return fsbench.files100k(args, target, tmp)
            finally:
                fsbench.drop_caches = saved

    def test_a_daemon_s_cpu_is_recorded_per_phase(self):
        out = self.run_phases(self.Daemon())
        for phase in ("create", "ls", "ls_cold", "rm"):
            self.assertAlmostEqual(out[f"{phase}_fps"], 500.0)
            self.assertAlmostEqual(out[f"{phase}_daemon_cpu_s"], 0.25)
            self.assertGreaterEqual(out[f"{phase}_cpu_s"], 0.0)

    def test_ext4_has_no_daemon(self):
        out = self.run_phases(fsbench.Ext4("/nonexistent"))
        self.assertFalse([k for k in out if "daemon" in k])
        self.assertAlmostEqual(out["rm_fps"], 500.0)


class FuseRequestsTest(unittest.TestCase):
    """fuse_requests.py: requests per opcode of one connection from the kernel's tracepoints."""

    SCRIPT = """\
  100.000100: fuse:fuse_request_send: connection 57 req 8 opcode 3 (FUSE_GETATTR) len 56
  100.000110: fuse:fuse_request_send: connection 58 req 8 opcode 10 (FUSE_UNLINK) len 44
  100.000120: fuse:fuse_request_end: connection 57 req 8 len 120 error 0
  100.000130: fuse:fuse_request_send: connection 57 req 10 opcode 10 (FUSE_UNLINK) len 44
  100.000160: fuse:fuse_request_end: connection 57 req 10 len 16 error 0
  100.000170: fuse:fuse_request_end: connection 57 req 6 len 16 error 0
  100.000180: fuse:fuse_request_send: connection 57 req 12 opcode 4 (FUSE_SETATTR) len 128
  100.000190: fuse:fuse_request_send: connection 57 req 14 opcode 3 (FUSE_GETATTR) len 56
  100.000200: fuse:fuse_request_end: connection 57 req 14 len 120 error 0
"""

    def test_counts_answered_requests_of_the_connection_with_their_time(self):
        got = fuse_requests.requests_by_opcode(self.SCRIPT, 57)
        # Connection 58 is another mount's; req 6 was sent before the trace, req 12 never
        # answered within it.
        self.assertEqual(sorted(got), [3, 10])
        self.assertEqual(got[3][0], 2)
        self.assertAlmostEqual(got[3][1], 30e-6)
        self.assertEqual(got[10][0], 1)
        self.assertAlmostEqual(got[10][1], 30e-6)

    def test_the_device_number_is_the_kernel_s(self):
        # The tracepoint prints the kernel's dev_t, major << 20 | minor.
        dev = fuse_requests.mount_dev("/")
        st = os.stat("/")
        self.assertEqual(dev >> 20, os.major(st.st_dev))
        self.assertEqual(dev & ((1 << 20) - 1), os.minor(st.st_dev))


if __name__ == "__main__":
    unittest.main()
