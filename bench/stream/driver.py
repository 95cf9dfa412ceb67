"""Every phase of a run, in order: inputs, contenders, then (with the memory worker kept running)
state and latency, then recovery. `--only` skips phases; the memory worker runs whenever state,
latency or recovery is wanted, since they need it."""

from __future__ import annotations

import subprocess
from typing import Any

from bench.stream.common import log
from bench.stream.contenders import run_passthrough, run_replay, run_worker
from bench.stream.inputs import produce_inputs
from bench.stream.measure import machine, quiet_machine
from bench.stream.phases import measure_latency, measure_recovery, measure_state
from bench.stream.processes import stop
from bench.stream.run import Bench, RunResult


async def run(bench: Bench) -> dict[str, Any]:
    """The results of every wanted phase (the JSON document of `--json`, without command and size)."""
    await bench.kafka.start()
    if bench.broker_pid:
        bench.sampler.watch("broker", bench.broker_pid)
    bench.sampler.start()
    runs: list[RunResult] = []
    worker: subprocess.Popen[bytes] | None = None

    async def quietly() -> None:
        # Each contender starts on a quiet machine: the broker compacts the changelogs of the
        # worker runs before it in the background, which took CPU from the next contender.
        waited = await quiet_machine()
        if waited > 1.5:
            log(f"waited {waited:.1f} s for a quiet machine")

    try:
        replay_file = await produce_inputs(bench)
        if bench.wants("replay"):
            runs.append(run_replay(bench, replay_file))
        if bench.wants("raw"):
            await quietly()
            runs.append(await run_passthrough(bench, "raw"))
        if bench.wants("faust"):
            await quietly()
            runs.append(await run_passthrough(bench, "faust"))
        if bench.wants("rocksdb"):
            await quietly()
            runs.append((await run_worker(bench, "rocksdb://"))[0])
        if bench.wants("memory2"):
            await quietly()
            runs.append((await run_worker(bench, "memory://", workers=2))[0])
        memory: RunResult | None = None
        if bench.wants("memory") or bench.wants("latency") or bench.wants("recovery"):
            await quietly()
            memory, worker = await run_worker(bench, "memory://", keep=True)
            runs.append(memory)
            bench.results["state"] = await measure_state(bench, f"{bench.prefix}worker-memory")
            log(f"state: {bench.results['state']}")
        if bench.wants("latency") and memory is not None and worker is not None:
            rate = bench.latency_rate or memory.rate / 2
            bench.results["latency"] = await measure_latency(bench, rate, worker)
            log(f"latency: {bench.results['latency']}")
        if worker is not None:
            stop(worker)
            worker = None
        if bench.wants("recovery"):
            stores = ["memory://", "rocksdb://"]
            bench.results["recovery"] = await measure_recovery(bench, bench.size.recovery_users, stores)
    finally:
        if worker is not None:
            stop(worker)
        bench.sampler.stop()
    raw = next((r for r in runs if r.name == "passthrough-raw"), None)
    bench.results["runs"] = [
        {**r.as_dict(), "ratio_to_raw": round(r.rate / raw.rate, 3) if raw else None} for r in runs
    ]
    bench.results["expected_outcomes"] = bench.expected_outcomes
    bench.results["machine"] = machine()
    return bench.results
