"""The stream benchmark (`bench/stream_bench.py`) at its smoke size: every phase runs on the real
broker and reports every figure; the worker's outcomes equal replay's. Not a performance test."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from integration.harness import BROKER, ROOT


def test_the_stream_benchmark_runs_every_phase_and_reports_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.stream_bench", "--smoke", "--json"],
        cwd=ROOT,
        env={**os.environ, "KAFKA_BROKER": BROKER},
        capture_output=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    results = orjson.loads(proc.stdout)

    runs = {r["name"]: r for r in results["runs"]}
    assert set(runs) == {
        "replay",
        "passthrough-raw",
        "passthrough-faust",
        "worker-rocksdb",
        "worker-memory",
        "worker-memory-x2",
    }
    for run in runs.values():
        assert run["events"] == results["inputs"]["records"]
        assert run["events_per_s"] > 0
        assert run["cpu_ms_per_1k"] > 0
        assert run["rss_mib"] > 0
        assert run["ratio_to_raw"] > 0
    assert runs["passthrough-raw"]["ratio_to_raw"] == 1
    expected = results["expected_outcomes"]
    assert expected > 0
    assert runs["worker-memory"]["outcomes"] == runs["worker-rocksdb"]["outcomes"] == expected
    assert runs["worker-memory-x2"]["outcomes"] == expected  # two processes in one group

    latency = results["latency"]
    assert latency["conversions_measured"] > 0
    assert latency["conversions_without_outcome"] == 0
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]

    state = results["state"]
    assert state["active_users"] > 0
    assert 0 < state["value_bytes_mean"] < 4096

    recovery = results["recovery"]
    assert recovery["users"] > 0
    for store in ("memory", "rocksdb"):
        assert recovery[store]["recovery_s"] is not None, recovery[store]
        assert recovery[store]["start_to_ready_s"] > 0
