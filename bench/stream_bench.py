"""Stream benchmark: throughput, latency, CPU, memory, state size and recovery on a real broker.

    python -m bench.stream_bench                      # full run (1,000,000 events, 100,000 users)
    python -m bench.stream_bench --events 200000      # smaller
    python -m bench.stream_bench --smoke              # tiny, well under a minute (the test suite runs it)
    python -m bench.stream_bench --json               # machine-readable results on stdout
    python -m bench.stream_bench --repeat 3           # 3 rounds of the throughput contenders, medians
    python -m bench.stream_bench --profile bench/out  # py-spy profiles of the worker and passthroughs

Needs the local broker (`make kafka-up`, 127.0.0.1:9092 or `KAFKA_BROKER`). Every run uses its own
topic prefix, consumer groups and app ids (`sb-<random>-`) and deletes its topics at the end.

What it does, in one run:

1. Produces the synthetic traffic of `attribution.synth` (config, then the events, then one
   sentinel impression and click per partition just after the last event so that no conversion
   waits for the bounded wait at the end) into fresh input topics, and writes the same records as a
   replay file.
2. Runs each contender as a subprocess reading those records from the start, one after the other:
   (1) a raw aiokafka consume -> produce passthrough (`bench.passthrough_raw`), (2) a bare Faust
   agent passthrough (`bench.passthrough_faust`), (3) the attribution worker with the RocksDB store
   and with the memory store (`attribution worker`), at-least-once as shipped, and two memory-store
   worker processes in one consumer group (`memory2`: CPU and memory summed over both; they read
   topics of their own, into which the inputs are copied once their group is stable, so that no
   rebalance falls in the measured window); and (4) `replay` over the replay file
   (`bench.stream_replay`). Each worker's group starts at the end of the topics earlier
   contenders wrote and it reads too (outcomes, report updates, re-keys, ticks). With `--repeat N`
   the throughput contenders run in N rounds, each once per round, and each keeps its median
   round; each contender starts once the machine is quiet.
   Throughput = input records / wall time from the first record consumed to the last output
   acknowledged, both read from the broker: the CreateTime of the first and last record each run
   wrote (outputs, and for the worker its state changelog, whose first record is written while the
   first input is handled and whose last is the sentinels' state). A run is complete when its
   outputs count the inputs (passthroughs) or its consumer group has committed the end of every
   input partition (worker). CPU is utime + stime of the process (from /proc/<pid>/stat, sampled
   every 50 ms and interpolated to the window), peak RSS is VmHWM. The broker's CPU and the
   machine's busy share over the same window are reported too: everything shares 2 cores here.
   Every worker run must give exactly replay's number of distinct conversion outcomes.
3. State: the latest value per key of the memory worker's users changelog (what a recovering worker
   reads), in bytes per active user; and the RocksDB worker's data directory size per user.
4. Latency: with the memory worker still running, new traffic (as many events per user as the
   inputs, over the same users and more as the rate needs; later timestamps, event time advancing
   with the wall clock) is produced at a steady rate, half the memory worker's
   measured throughput, with touches flowing; each conversion's produce time is kept, and its
   outcome's arrival on a consumer of the outcome topics gives the end-to-end latency, event-time
   holding included. The first seconds are warm-up and not measured; the last second carries
   touches only, so that no measured conversion waits for the bounded wait.
5. Recovery: the encoded states of `--recovery-users` users (sizes drawn from the real states of
   step 3) are written to a fresh app's users changelog, on each user's partition; a worker with
   the memory store, then one with RocksDB (fresh data directory), is started and timed from
   Faust's "Restoring state from changelog topics" to "Done reading from changelog topics", and
   from process start to "Worker ready".

This module is the command line; the harness is the `bench.stream` package (one module per part:
measurement, Kafka helpers, inputs, contenders, phases, report).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.stream.common import FULL, SMOKE, Size, log
from bench.stream.driver import run
from bench.stream.report import markdown, summarize_profile
from bench.stream.run import Bench


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, help=f"input events (default {FULL.events:,})")
    parser.add_argument("--users", type=int, help=f"distinct users (default {FULL.users:,})")
    parser.add_argument(
        "--recovery-users", type=int, help=f"users in the recovery test (default {FULL.recovery_users:,})"
    )
    parser.add_argument(
        "--latency-s", type=float, help=f"measured seconds of the latency phase (default {FULL.latency_s:g})"
    )
    parser.add_argument(
        "--latency-rate", type=float, help="events/s of the latency phase (default: half the saturation)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a check that the harness works")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--profile", type=Path, help="write py-spy profiles of the contenders into this directory")
    parser.add_argument(
        "--only", default="", help="comma-separated phases: replay,raw,faust,rocksdb,memory,memory2,latency,recovery"
    )
    parser.add_argument("--keep", action="store_true", help="keep the topics and the work directory")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of the throughput contenders; each keeps its median run"
    )
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else FULL
    size = Size(
        events=args.events or base.events,
        users=args.users or base.users,
        latency_s=args.latency_s or base.latency_s,
        warmup_s=base.warmup_s,
        recovery_users=args.recovery_users or base.recovery_users,
        timeout_s=base.timeout_s if args.smoke else FULL.timeout_s,
    )
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # leader elections of new topics: retried
    workdir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    only = {p for p in args.only.split(",") if p}
    bench = Bench(size, args.seed, workdir, args.profile, only)
    bench.latency_rate = args.latency_rate
    bench.repeat = max(1, args.repeat)
    command = "python -m bench.stream_bench " + " ".join(argv if argv is not None else sys.argv[1:])

    async def go() -> dict[str, Any]:
        try:
            return await run(bench)
        finally:
            if not args.keep:
                with contextlib.suppress(Exception):
                    n = await bench.kafka.delete_prefix(bench.prefix)
                    log(f"deleted {n} topics of {bench.prefix}")
            await bench.kafka.close()

    try:
        results = asyncio.run(go())
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work directory kept: {workdir}")
    results["command"] = command
    results["size"] = size.__dict__
    if args.profile:
        results["profiles"] = {p.stem: summarize_profile(p) for p in sorted(args.profile.glob("*.txt"))}
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    else:
        print(markdown(results, command))
        for text in results.get("profiles", {}).values():
            print("\n```\n" + text + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
