"""Backlog benchmark: a worker started behind a backlog, its held conversions and its catch-up time.

    python -m bench.backlog_bench                    # 1,000,000 events, 100,000 users
    python -m bench.backlog_bench --events 100000    # smaller

Produces the synthetic traffic (config, events, then one sentinel touch per partition) into fresh
topics before any worker runs, replays the same records for the expected number of outcomes, then
starts one worker (memory store) and samples its `/metrics` every second: conversions held (event
time waiting for the touch partitions, bounded by back-pressure, `ATTRIBUTION_MAX_HELD` per
partition), consumer lag, and outcomes. Reports the catch-up time (worker start to every input
partition committed at its end), the drain rate, the peak and mean held conversions, how often
back-pressure paused a conversions partition, and whether the outcomes count replay's. Needs the
local broker (`make kafka-up`); uses its own topic prefix and deletes its topics at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attribution.contract import EVENT_TOPICS
from bench.stream.common import ATTRIBUTION, FULL, Size
from bench.stream.contenders import run_replay
from bench.stream.inputs import produce_inputs
from bench.stream.processes import free_port, launch, stop, tail
from bench.stream.run import Bench

HELD = re.compile(rb"^attribution_held_conversions (\S+)$", re.M)


def scrape_held(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            match = HELD.search(response.read())
    except OSError:
        return None
    return float(match.group(1)) if match else None


async def run(bench: Bench, max_held: int | None) -> dict[str, Any]:
    await bench.kafka.start()
    replay_file = await produce_inputs(bench)
    run_replay(bench, replay_file)
    input_tps = await bench.kafka.tps(bench.topic(t) for t in EVENT_TOPICS)
    ends = await bench.kafka.end_offsets(input_tps)
    app_id = f"{bench.prefix}backlog"
    port = free_port()
    env = bench.worker_env(app_id, "memory://", bench.workdir / "worker")
    env["ATTRIBUTION_WEB_PORT"] = str(port)
    if max_held is not None:
        env["ATTRIBUTION_MAX_HELD"] = str(max_held)
    log_path = bench.workdir / "worker.log"
    t0 = time.monotonic()
    proc = launch([ATTRIBUTION, "worker", "-l", "info"], env, log_path)
    held: list[float] = []
    try:
        while True:
            await asyncio.sleep(1.0)
            if proc.poll() is not None or time.monotonic() - t0 > bench.size.timeout_s:
                raise RuntimeError(f"the worker did not catch up:\n{tail(log_path)}")
            sample = scrape_held(port)
            if sample is not None:
                held.append(sample)
            with contextlib.suppress(Exception):
                if await bench.kafka.lag(app_id, ends) == 0:
                    break
        catch_up_s = time.monotonic() - t0
    finally:
        stop(proc)
    text = log_path.read_text(errors="replace")
    return {
        "input_records": bench.inputs,
        "catch_up_s": round(catch_up_s, 1),
        "drain_events_per_s": round(bench.inputs / catch_up_s),
        "held_peak": max(held, default=0),
        "held_mean": round(sum(held) / len(held), 1) if held else 0,
        "held_samples": len(held),
        "backpressure_pauses": text.count("back-pressure: pausing"),
        "expected_outcomes": bench.expected_outcomes,
        "max_held": max_held or "default (1000)",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=FULL.events)
    parser.add_argument("--users", type=int, default=FULL.users)
    parser.add_argument("--max-held", type=int, help="ATTRIBUTION_MAX_HELD for the worker")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    size = Size(args.events, args.users, FULL.latency_s, FULL.warmup_s, 0, FULL.timeout_s)
    workdir = Path(tempfile.mkdtemp(prefix="backlog-bench-"))
    bench = Bench(size, args.seed, workdir, None, set())

    async def go() -> dict[str, Any]:
        try:
            return await run(bench, args.max_held)
        finally:
            with contextlib.suppress(Exception):
                await bench.kafka.delete_prefix(bench.prefix)
            await bench.kafka.close()

    try:
        results = asyncio.run(go())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("python -m bench.backlog_bench " + " ".join(argv if argv is not None else sys.argv[1:]))
    for key, value in results.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
