"""The throughput targets in one run: each measure, its target, the figure, met or not.

    python -m bench.targets            # stream 150,000 events, 3 rounds; replay 1M (project, heavy) and 10M; ~20 min
    python -m bench.targets --quick    # stream 20,000 events; replay 100,000 and 1M; ~3 min

It runs the two harnesses and reads their figures: the stream harness (`bench.stream_bench`: raw
aiokafka, bare Faust, the worker with each store, two workers, each the median of 3 rounds; latency
at half the memory worker's backlog rate) against a broker on 127.0.0.1:9092 (`make kafka-up`), and the replay harness
(`bench.replay_scale`: each measurement in its own process, so its peak RSS is its own). Every
ratio is taken against a baseline measured in the same run. The 10-million-event traffic file is
written on first use (about 2.7 GB in `bench/out/`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bench.replay_scale import run_child, traffic_file

#: MiB: the replay memory target (300 MB).
REPLAY_RSS_MIB = 300_000_000 / 2**20


@dataclass(frozen=True)
class Row:
    measure: str
    target: str
    figure: str
    met: bool


def stream_figures(events: int, users: int, latency_s: float, repeat: int = 1) -> dict[str, Any]:
    """The stream harness's JSON for raw, bare Faust, both stores, two workers and latency; each
    throughput contender's median of `repeat` rounds."""
    cmd = [
        sys.executable,
        "-m",
        "bench.stream_bench",
        "--events",
        str(events),
        "--users",
        str(users),
        "--latency-s",
        str(latency_s),
        "--only",
        "raw,faust,rocksdb,memory,memory2,latency",
        "--json",
        "--repeat",
        str(repeat),
    ]
    done = subprocess.run(cmd, capture_output=True, check=True)
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def stream_rows(result: dict[str, Any]) -> list[Row]:
    runs = {r["name"]: r for r in result["runs"]}
    raw = runs["passthrough-raw"]["events_per_s"]
    memory = runs["worker-memory"]["events_per_s"]
    rocksdb = runs["worker-rocksdb"]["events_per_s"]
    pair = runs["worker-memory-x2"]["events_per_s"]
    latency = result["latency"]
    return [
        Row(
            "worker (memory store) vs raw aiokafka",
            ">= 0.30",
            f"{memory / raw:.3f} ({memory:,.0f} / {raw:,.0f})",
            memory / raw >= 0.30,
        ),
        Row(
            "worker (RocksDB) vs raw aiokafka",
            ">= 0.20",
            f"{rocksdb / raw:.3f} ({rocksdb:,.0f})",
            rocksdb / raw >= 0.20,
        ),
        Row(
            "conversion p99 at half the memory worker's saturation",
            "< 250 ms",
            f"{latency['p99_ms']:,.0f} ms at {latency['rate_events_per_s']:,.0f} events/s",
            latency["p99_ms"] < 250 and not latency["conversions_without_outcome"],
        ),
        Row("2 workers vs 1 (memory store)", ">= 1.6x", f"{pair / memory:.2f}x ({pair:,.0f})", pair / memory >= 1.6),
    ]


def replay_rows(small: int, large: int) -> list[Row]:
    """Replay against a bare parse of the same file (events per CPU-second), and its peak memory."""
    ratios: list[str] = []
    lowest = 1.0
    small_rss = 0
    for traffic in ("project", "heavy"):
        path = traffic_file(traffic, small)
        parse, replay = run_child("parse", path, None, None), run_child("replay", path, None, None)
        ratio = (replay["events"] / replay["cpu_seconds"]) / (parse["events"] / parse["cpu_seconds"])
        lowest = min(lowest, ratio)
        ratios.append(f"{traffic} {ratio:.3f}")
        small_rss = max(small_rss, replay["peak_rss_mib"])
    large_rss = run_child("replay", traffic_file("project", large), None, None)["peak_rss_mib"]
    return [
        Row(f"replay vs bare orjson parse ({small:,} events)", ">= 0.25", ", ".join(ratios), lowest >= 0.25),
        Row(
            f"replay peak RSS at {small:,} (highest of both traffics) / {large:,} events",
            "flat, < 300 MB",
            f"{small_rss} / {large_rss} MiB",
            max(small_rss, large_rss) < REPLAY_RSS_MIB,
        ),
    ]


def table(rows: Sequence[Row]) -> str:
    lines = ["| measure | target | measured | met? |", "|---|---|---|---|"]
    lines += [f"| {r.measure} | {r.target} | {r.figure} | {'yes' if r.met else 'no'} |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.targets", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller runs: a look, not figures to quote")
    args = p.parse_args(argv)
    if args.quick:
        stream = stream_figures(20_000, 5_000, 10)
        replay = replay_rows(100_000, 1_000_000)
    else:
        stream = stream_figures(150_000, 15_000, 30, repeat=3)
        replay = replay_rows(1_000_000, 10_000_000)
    if args.quick:
        print("Quick sizes: start-up weighs on every contender differently; not figures to quote.\n")
    print(table([*stream_rows(stream), *replay]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
