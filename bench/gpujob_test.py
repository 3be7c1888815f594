#!/usr/bin/env python3
"""Tests of the GPU staging benchmark's plumbing (bench/gpujob.py, bench/gpu_bench).

Without arguments: the report parser on good and broken output (unit).
With --gpu-bench BIN --rankfs BIN --work DIR: also gpu_bench itself at a toy size (16 MiB, one
run) in both modes (mount skips without root and /dev/fuse), its report parsed and checked.
"""
import argparse
import json
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpujob  # noqa: E402

GOOD = {
    "mode": "mount", "device": "cpu (host memory)", "device_kind": "cpu", "size_bytes": 1 << 24,
    "notes": {"geometry": "8 slots x 4 MiB"},
    "runs": [{"staged_cold_MBps": 900.0, "readcopy_cold_MBps": 300.0}],
    "medians": {"staged_cold_MBps": 900.0, "readcopy_cold_MBps": 300.0},
    "ratios": [{"name": "staged / read+copy, cold", "value": 3.0, "target": 2.0,
                "verdict": "met (target >= 2.00)"}],
}
CONFIG = {}


class ParseReport(unittest.TestCase):
    def test_last_line_is_the_report(self):
        rep = gpujob.parse_report("gpu_bench on cpu\n  staged 900\n" + json.dumps(GOOD) + "\n")
        self.assertEqual(rep["ratios"][0]["value"], 3.0)

    def test_refuses_what_is_not_a_report(self):
        bad = []
        for key in gpujob.REQUIRED:
            bad.append({k: v for k, v in GOOD.items() if k != key})
        bad.append(dict(GOOD, runs=[]))
        bad.append(dict(GOOD, medians={"staged_cold_MBps": 0.0}))
        bad.append(dict(GOOD, medians={"staged_cold_MBps": float("nan")}))
        bad.append(dict(GOOD, ratios=[{"name": "x", "value": 1.0, "target": 2.0,
                                       "verdict": "no target"}]))
        texts = [json.dumps(b) for b in bad] + ["", "not json", json.dumps(GOOD)[:-1]]
        for text in texts:
            with self.subTest(text=text[:80]):
                with self.assertRaises(ValueError):
                    gpujob.parse_report(text)


class RunGpuBench(unittest.TestCase):
    """gpu_bench for real at a toy size: what the harness would get."""

    def setUp(self):
        if not CONFIG:
            self.skipTest("no --gpu-bench given")
        self.work = os.path.join(CONFIG["work"], self.id().split(".")[-1])
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.addCleanup(shutil.rmtree, self.work, True)

    def check(self, rep, mode, ratio_names):
        self.assertEqual(rep["mode"], mode)
        self.assertEqual(rep["size_bytes"], 16 << 20)
        self.assertEqual(len(rep["runs"]), 1)
        self.assertEqual([r["name"] for r in rep["ratios"]], ratio_names)
        for r in rep["ratios"]:
            self.assertGreater(r["value"], 0, r)

    def test_inproc(self):
        rep, out = gpujob.run_gpu_bench(CONFIG["gpu_bench"], [
            "inproc", "--work", self.work, "--size-mib", "16", "--runs", "1", "--slot-mib", "1",
            "--io-mib", "4", "--dst-mib", "8", "--workers", "2"], timeout=120)
        self.assertIsNotNone(rep, out)
        self.check(rep, "inproc", ["staged warm / slower bound", "staged cold / slower bound",
                                   "staged / read+copy pageable, cold",
                                   "staged / read+copy pageable, warm"])
        self.assertIn("copy_engine_MBps", rep["medians"])

    def test_mount(self):
        rep, out = gpujob.run_gpu_bench(CONFIG["gpu_bench"], [
            "mount", "--rankfs", CONFIG["rankfs"], "--work", self.work, "--size-mib", "16",
            "--runs", "1", "--slot-mib", "1", "--io-mib", "4", "--dst-mib", "8",
            "--readers", "2"], timeout=120)
        if rep is None:
            self.skipTest(f"gpu_bench mount cannot run here: {out.strip()}")
        self.check(rep, "mount", ["staged / read+copy, cold", "staged / read+copy, warm",
                                  "staged warm / decompression bound",
                                  "staged cold / decompression bound",
                                  "2 readers / 1 reader, cold",
                                  "read+copy CPU-s / staged CPU-s, cold"])
        self.assertGreater(rep["medians"]["staged_cold_daemon_cpu_s"], 0)

    def test_mount_staged_passes_only(self):
        rep, out = gpujob.run_gpu_bench(CONFIG["gpu_bench"], [
            "mount", "--rankfs", CONFIG["rankfs"], "--work", self.work, "--size-mib", "16",
            "--runs", "1", "--slot-mib", "1", "--io-mib", "4", "--dst-mib", "8",
            "--readers", "2", "--passes", "staged"], timeout=120)
        if rep is None:
            self.skipTest(f"gpu_bench mount cannot run here: {out.strip()}")
        med = rep["medians"]
        self.assertEqual(sorted(med), [
            "staged_cold_MBps", "staged_cold_cpu_s", "staged_cold_daemon_cpu_s",
            "staged_readers_cold_MBps", "staged_readers_cold_daemon_cpu_s", "staged_warm_MBps",
            "staged_warm_daemon_cpu_s"])
        for key, value in med.items():
            self.assertGreater(value, 0, key)
        # Only the ratio whose both sides were measured is reported.
        self.assertEqual([r["name"] for r in rep["ratios"]], ["2 readers / 1 reader, cold"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu-bench")
    ap.add_argument("--rankfs")
    ap.add_argument("--work")
    args, rest = ap.parse_known_args()
    if args.gpu_bench:
        CONFIG.update(gpu_bench=args.gpu_bench, rankfs=args.rankfs, work=args.work)
    unittest.main(argv=[sys.argv[0]] + rest)
