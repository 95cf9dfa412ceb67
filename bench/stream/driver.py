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


def median(results: list[RunResult]) -> RunResult:
    """The run of median rate (the lower middle of an even count), with every run's rate in
    `extra["rates"]` when there were several."""
    chosen = sorted(results, key=lambda r: r.rate)[(len(results) - 1) // 2]
    if len(results) > 1:
        chosen.extra["rates"] = [round(r.rate, 1) for r in results]
    return chosen


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
        # The throughput contenders in rounds (`--repeat`), each contender once per round, so that
        # a slower stretch of the machine falls on all of them; each keeps its median run.
        rounds: dict[str, list[RunResult]] = {}
        wants_memory = bench.wants("memory") or bench.wants("latency") or bench.wants("recovery")
        for attempt in range(bench.repeat):
            last = attempt == bench.repeat - 1
            for kind in ("raw", "faust"):
                if bench.wants(kind):
                    await quietly()
                    rounds.setdefault(kind, []).append(await run_passthrough(bench, kind, attempt))
            if bench.wants("rocksdb"):
                await quietly()
                rounds.setdefault("rocksdb", []).append((await run_worker(bench, "rocksdb://", attempt=attempt))[0])
            if bench.wants("memory2"):
                await quietly()
                pair = (await run_worker(bench, "memory://", workers=2, attempt=attempt))[0]
                rounds.setdefault("memory2", []).append(pair)
            if wants_memory:
                await quietly()
                # The last round's memory worker stays up for the state and latency phases.
                one, proc = await run_worker(bench, "memory://", keep=last, attempt=attempt)
                rounds.setdefault("memory", []).append(one)
                if last:
                    worker = proc
                    bench.results["state"] = await measure_state(bench, one.extra["app_id"])
                    log(f"state: {bench.results['state']}")
        for kind in ("raw", "faust", "rocksdb", "memory2", "memory"):
            if kind in rounds:
                runs.append(median(rounds[kind]))
        memory = median(rounds["memory"]) if "memory" in rounds else None
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
