"""The contenders, each a subprocess reading the run's inputs from the start, one after the other:
`replay` over the replay file, a raw aiokafka passthrough, a bare Faust passthrough, and the
attribution worker (one process, or two in one consumer group).

Throughput = input records / wall time from the first record consumed to the last output
acknowledged, both read from the broker: the CreateTime of the first and last record each run wrote
(outputs, and for the worker its state changelog, whose first record is written while the first
input is handled and whose last is the sentinels' state). A passthrough is complete when its output
counts the inputs, a worker run when its consumer group has committed the end of every input
partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from attribution.contract import EVENT_TOPICS, OUTPUT_TOPICS
from attribution.settings import Settings
from attribution.streaming.reports import UPDATES_TOPIC
from attribution.streaming.topics import INTERNAL_TOPICS, create_topics
from bench.stream.common import ATTRIBUTION, BROKER, OUTCOME_TOPICS, PARTITIONS, ROOT, log
from bench.stream.inputs import Prebuilt, build_batches, input_records, produce_records, send_prebuilt
from bench.stream.kafka import bulk_producer, read_range, timestamps_at
from bench.stream.measure import dir_size, vm_hwm_bytes
from bench.stream.processes import launch, stop, stop_profile, tail
from bench.stream.run import Bench, RunResult

#: The worker's own topics besides the outcomes: report updates, re-keyed records, ticks.
WORKER_INTERNAL_TOPICS = (UPDATES_TOPIC, *INTERNAL_TOPICS)


def run_replay(bench: Bench, replay_file: Path) -> RunResult:
    """`bench.stream_replay` over the replay file; sets `bench.expected_outcomes`."""
    log("replay ...")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.stream_replay", str(replay_file)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=bench.size.timeout_s,
    )
    data = orjson.loads(proc.stdout.splitlines()[-1])
    bench.expected_outcomes = data["outcomes"]
    result = RunResult(
        "replay", data["events"], data["wall_s"], data["cpu_s"], data["rss_bytes"], 0.0, math.nan, data["outcomes"]
    )
    log(f"replay: {result.rate:,.0f} events/s, {data['outcomes']} outcomes")
    return result


def _attempt(attempt: int) -> str:
    """The suffix of a repeated run's group, app id and output topic (the first run has none)."""
    return f"-r{attempt + 1}" if attempt else ""


async def run_passthrough(bench: Bench, kind: str, attempt: int = 0) -> RunResult:
    """`bench.passthrough_raw` (`kind` "raw") or `bench.passthrough_faust` ("faust") into `pt-<kind>`;
    a repeated run (`attempt` > 0) has its own group and output topic."""
    out = bench.topic(f"pt-{kind}{_attempt(attempt)}")
    await bench.kafka.create([out])
    inputs = [bench.topic(t) for t in EVENT_TOPICS]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kind == "raw":
        cmd = [sys.executable, "-m", "bench.passthrough_raw", "--broker", BROKER]
        cmd += ["--group", f"{bench.prefix}pt-raw{_attempt(attempt)}", "--out", out, *inputs]
    else:
        data_dir = bench.workdir / f"pt-faust{_attempt(attempt)}"
        app_id = f"{bench.prefix}pt-faust{_attempt(attempt)}"
        cmd = [sys.executable, "-m", "bench.passthrough_faust", "--broker", BROKER]
        cmd += ["--app-id", app_id, "--data-dir", str(data_dir), "--out", out, *inputs]
    name = f"passthrough-{kind}"
    label = f"{name}{_attempt(attempt)}"
    log(f"{label} ...")
    out_tps = await bench.kafka.tps([out])
    log_path = bench.workdir / f"{label}.log"
    proc = launch(cmd, env, log_path)
    bench.sampler.watch(label, proc.pid)
    profiler = bench.profile(name, proc.pid)
    try:
        deadline = time.monotonic() + bench.size.timeout_s
        while True:
            ends = await bench.kafka.end_offsets(out_tps)
            if sum(ends.values()) >= bench.inputs:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not finish ({sum(ends.values())}/{bench.inputs}):\n{tail(log_path)}")
            await asyncio.sleep(0.2)
        rss = vm_hwm_bytes(proc.pid)
    finally:
        stop_profile(profiler)
        stop(proc)
    begins = await bench.kafka.begin_offsets(out_tps)
    written = [tp for tp in out_tps if ends[tp] > begins[tp]]
    firsts = await timestamps_at(bench.settings, {tp: begins[tp] for tp in written})
    lasts = await timestamps_at(bench.settings, {tp: ends[tp] - 1 for tp in written})
    return bench.result(name, min(firsts.values()), max(lasts.values()), rss, label=label)


async def run_worker(
    bench: Bench, store: str, keep: bool = False, workers: int = 1, attempt: int = 0
) -> tuple[RunResult, subprocess.Popen[bytes]]:
    """One run of `workers` worker processes in one consumer group over the whole input; CPU and
    peak memory are summed over the processes. Returns the first process too, still running if
    `keep` (the others are stopped). A repeated run (`attempt` > 0) has its own app id
    (`extra["app_id"]`), so it reads the whole input again."""
    name = f"worker-{store.split(':')[0]}" + (f"-x{workers}" if workers > 1 else "")
    app_id = f"{bench.prefix}{name}{_attempt(attempt)}"
    log(f"{name} ...")
    settings = bench.settings
    feeder: AIOKafkaProducer | None = None
    built: Prebuilt = []
    if workers > 1:
        # Several workers read topics of their own, filled once their group is stable, so that no
        # rebalance (a member joining late) falls in the measured window; the inputs arrive during
        # it, where one worker reads a backlog already there (BENCHMARKS.md says so).
        prefix = f"{bench.prefix}x{workers}{_attempt(attempt)}-"
        settings = Settings(broker=BROKER, topic_prefix=prefix, partitions=PARTITIONS)
        await create_topics(settings)
        config, copied = input_records(bench)
        await produce_records(settings, config)
        # Encoded into record batches now: in the window the feeder only sends them (encoding
        # every record there took the feeder's CPU out of what the pair could use).
        feeder = bulk_producer(settings)
        await feeder.start()
        t0 = time.process_time()
        built = build_batches(feeder, settings, copied)
        log(
            f"{name}: {len(copied)} input records in {len(built)} record batches ({time.process_time() - t0:.2f} s CPU)"
        )
    topic = settings.topic
    out_tps = await bench.kafka.tps(topic(t) for t in OUTPUT_TOPICS)
    out_before = await bench.kafka.end_offsets(out_tps)
    # The topics the worker reads besides the inputs (the outcomes its report agents count, the
    # report updates, re-keyed records and ticks) hold what earlier contenders wrote: the worker's
    # group starts at their end, so that every contender does the same work.
    own = [topic(t) for t in (*OUTCOME_TOPICS, *WORKER_INTERNAL_TOPICS)]
    await bench.kafka.start_group_at_end(app_id, await bench.kafka.tps(own))
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    for i in range(workers):
        member = f"{name}{_attempt(attempt)}" + (f"#{i + 1}" if i else "")
        env = bench.worker_env(app_id, store, bench.workdir / member.replace("#", "-"), prefix=settings.topic_prefix)
        logs.append(bench.workdir / f"{member.replace('#', '-')}.log")
        procs.append(launch([ATTRIBUTION, "worker", "-l", "info"], env, logs[-1]))
        log(f"{member}: pid {procs[-1].pid}, log {logs[-1]}")
        bench.sampler.watch(member, procs[-1].pid)
    if feeder is not None:
        try:
            waited = await bench.kafka.wait_stable(app_id, workers, bench.size.timeout_s)
            log(f"{name}: group stable with {workers} members after {waited:.1f} s; producing its inputs")
            t0 = time.process_time()
            await send_prebuilt(feeder, built)
            log(f"{name}: inputs sent ({time.process_time() - t0:.2f} s CPU)")
        except BaseException:
            for p in procs:
                stop(p)
            raise
        finally:
            await feeder.stop()
    input_tps = await bench.kafka.tps(topic(t) for t in EVENT_TOPICS)
    input_ends = await bench.kafka.end_offsets(input_tps)
    proc, log_path, data_dir = procs[0], logs[0], bench.workdir / f"{name}{_attempt(attempt)}"
    profiler = bench.profile(name, proc.pid)
    try:
        deadline = time.monotonic() + bench.size.timeout_s
        while True:
            await asyncio.sleep(0.5)
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not finish:\n{tail(log_path)}")
            with contextlib.suppress(Exception):
                if await bench.kafka.lag(app_id, input_ends) == 0:
                    break
        rss = sum(vm_hwm_bytes(p.pid) for p in procs)
        # The outcomes are acknowledged before the offsets are committed: all there by now.
        out_after = await bench.kafka.end_offsets(out_tps)
        records = await read_range(bench.settings, out_before, out_after)
        outcome_topics = {topic(t) for t in OUTCOME_TOPICS}
        outcome_ids = {
            orjson.loads(r.value)["conversion_id"] for r in records if r.value is not None and r.topic in outcome_topics
        }
        changelog = await bench.kafka.tps([f"{app_id}-users-changelog"])
        cl_begin = await bench.kafka.begin_offsets(changelog)
        cl_end = await bench.kafka.end_offsets(changelog)
        written = [tp for tp in changelog if cl_end[tp] > cl_begin[tp]]
        firsts = await timestamps_at(bench.settings, {tp: cl_begin[tp] for tp in written})
        last_offsets = {tp: cl_end[tp] - 1 for tp in written}
        last_offsets.update({tp: out_after[tp] - 1 for tp in out_tps if out_after[tp] > out_before[tp]})
        lasts = await timestamps_at(bench.settings, last_offsets)
    except BaseException:
        stop_profile(profiler)
        for p in procs:
            stop(p)
        raise
    stop_profile(profiler)
    label = f"{name}{_attempt(attempt)}"
    result = bench.result(name, min(firsts.values()), max(lasts.values()), rss, members=workers, label=label)
    result.outcomes = len(outcome_ids)
    result.extra["app_id"] = app_id
    result.extra["output_records"] = len(records)
    result.extra["changelog_records"] = sum(cl_end[tp] - cl_begin[tp] for tp in changelog)
    if bench.expected_outcomes is not None and result.outcomes != bench.expected_outcomes:
        log(f"WARNING: {name} gave {result.outcomes} outcomes, replay {bench.expected_outcomes}")
    if store.startswith("rocksdb"):
        result.extra["rocksdb_dir_bytes"] = dir_size(data_dir)
    for p in procs[1:]:
        stop(p)
    if not keep:
        stop(proc)
    return result, proc
