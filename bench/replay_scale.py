"""Replay at scale: events/s next to a bare orjson parse of the same file, and peak memory.

    python -m bench.replay_scale                                  # 1M events: project + heavy users
    python -m bench.replay_scale --events 10000000 --traffic project --modes input,replay
    python -m bench.replay_scale --before /tmp/base/src           # adds the former replay (a src dir)
    python -m bench.replay_scale --events 10000000 --traffic project --modes replay --memory 100000

`--memory MIB` is replay's budget of decoded states (`attribution.replay_states`; default its
`BUDGET_BYTES`): past it, the states used least recently are moved to a temporary file.

For each traffic file it runs, each in a fresh process so that its peak RSS is its own:

Ratios are of events per CPU-second (the machine is shared, so wall time varies more).

* `parse`: read the file line by line and `orjson.loads` each line (the bare parse);
* `input`: the replay's input side alone (read, validate and decode, order), no engine step:
  the memory of reading and ordering, whatever becomes of the users' state;
* `replay`: `replay_inputs` of the file, outputs written to files in a temporary directory;
* `sorted`: `replay` of a shuffled copy (config first), which takes the external sort;
* `before`: the former replay (`replay(path.read_bytes().splitlines())`) from the `src` directory
  given with `--before`.

Traffic: `project` is `attribution.synth` with 20 events per user on average, spread over
3 days per million events (so the users active at one time stay bounded); `heavy` has 1,000
events per user on average (the skew gives the top users several thousand touches each).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from attribution.domain.config import DAY_MS
from attribution.synth import TrafficSpec
from bench.generate import write

OUT = Path(__file__).resolve().parent / "out"
MODES = ("parse", "input", "replay", "sorted", "before")


def spec_of(traffic: str, events: int, seed: int = 1) -> TrafficSpec:
    users = max(1, events // (1000 if traffic == "heavy" else 20))
    days = max(3, 3 * events // 1_000_000)
    return TrafficSpec(users=users, events=events, seed=seed, duration_ms=days * DAY_MS)


def traffic_file(traffic: str, events: int) -> Path:
    path = OUT / f"scale-{traffic}-e{events}.jsonl"
    if not path.exists():
        write(spec_of(traffic, events), path)
    return path


def shuffled_file(path: Path) -> Path:
    out = path.with_name(path.stem + "-shuffled.jsonl")
    if not out.exists():
        lines = path.read_bytes().splitlines()
        config = [x for x in lines if b'"topic":"pixels"' in x or b'"topic":"line-items"' in x]
        events = [x for x in lines if x not in set(config)]
        random.Random(1).shuffle(events)
        out.write_bytes(b"\n".join(config + events) + b"\n")
    return out


# -- one measurement, in its own process ----------------------------------------------------------


def measure(mode: str, path: Path, memory: int | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    cpu = time.process_time()
    events = spilled = 0
    if mode == "parse":
        loads = orjson.loads
        with open(path, "rb") as f:
            for line in f:
                loads(line)
                events += 1
    elif mode == "input":
        from attribution.replay_input import Unordered
        from attribution.replay_order import ExternalSort, Streaming, Workspace, sources_of

        workspace = Workspace()
        try:
            try:
                order: Any = Streaming(sources_of([path], workspace), [])
                order.prime()
                events = sum(1 for _ in order.rows())
            except Unordered:
                order = ExternalSort(sources_of([path], workspace), [], workspace, 100_000)
                order.prime()
                events = sum(1 for _ in order.rows())
        finally:
            workspace.close()
    elif mode in ("replay", "sorted"):
        from attribution.replay import FileSink, replay_inputs
        from attribution.replay_states import BUDGET_BYTES

        with tempfile.TemporaryDirectory() as tmp:
            sink = FileSink(tmp)
            result = replay_inputs([path], sink, memory=BUDGET_BYTES if memory is None else memory)
            events = result.events
            spilled = getattr(result.users, "spilled", 0)
            sink.close()
    elif mode == "before":
        from attribution.replay import replay

        events = replay(path.read_bytes().splitlines()).events
    seconds = time.perf_counter() - started
    return {
        "spilled": spilled if mode in ("replay", "sorted") else 0,
        "mode": mode,
        "events": events,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "events_per_s": round(events / seconds) if seconds else 0,
        "peak_rss_mib": round(peak_rss_kib() / 1024),
    }


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM). Unlike `getrusage`'s maxrss, which a child keeps
    from its parent across fork and exec, it counts this program only."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_child(mode: str, path: Path, before: str | None, memory: int | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if mode == "before":
        assert before, "--before SRC is needed for the former replay"
        env["PYTHONPATH"] = os.pathsep.join([before, str(Path(__file__).resolve().parents[1])])
    target = shuffled_file(path) if mode == "sorted" else path
    cmd = [sys.executable, "-m", "bench.replay_scale", "--one", mode, str(target)]
    if memory is not None:
        cmd += ["--memory", str(memory)]
    done = subprocess.run(cmd, env=env, capture_output=True, check=True)
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.replay_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--traffic", default="project,heavy", help="project, heavy, or both (comma-separated)")
    p.add_argument("--modes", default="parse,input,replay,sorted", help=f"of {', '.join(MODES)}")
    p.add_argument("--before", help="a src directory holding the former replay, for the `before` mode")
    p.add_argument("--memory", type=int, help="replay's budget of decoded states, MiB (default: replay's)")
    p.add_argument("--one", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    memory = None if args.memory is None else args.memory * 2**20
    if args.one:
        sys.stdout.write(orjson.dumps(measure(args.one[0], Path(args.one[1]), memory)).decode())
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if args.before and "before" not in modes:
        modes.append("before")
    print(
        "| traffic | events | mode | events/s | events per CPU-s | vs bare parse (CPU) | wall s | CPU s | peak RSS MiB "
        "| states moved to disk |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for traffic in args.traffic.split(","):
        path = traffic_file(traffic, args.events)
        parse_rate = None
        for mode in modes:
            r = run_child(mode, path, args.before, args.memory)
            per_cpu = r["events"] / r["cpu_seconds"] if r["cpu_seconds"] else 0.0
            if mode == "parse":
                parse_rate = per_cpu
            ratio = f"{per_cpu / parse_rate:.3f}" if parse_rate and mode != "parse" else "-"
            print(
                f"| {traffic} | {r['events']:,} | {mode} | {r['events_per_s']:,} | {per_cpu:,.0f} | {ratio} "
                f"| {r['seconds']} | {r['cpu_seconds']} | {r['peak_rss_mib']:,} | {r.get('spilled', 0):,} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
