"""Replay benchmark: throughput, phase costs, memory and per-user state size of `attribution.replay`.

    python -m bench.replay_bench --events 1000000 --users 100000
    python -m bench.replay_bench --smoke            # 2,000 events, a couple of seconds
    python -m bench.replay_bench --json             # machine-readable results on stdout

Generates the traffic file with `bench.generate` (or reuses it when it is newer than the
generator), reads it, and in one process:

1. runs `attribution.replay.replay` over its lines: the whole pipeline (parse, validate and decode,
   order, step, encode); events/s is over this run;
2. measures each phase on its own, in the same process and on the same lines: JSON parse only;
   parse + schema validation; parse + validate + decode into domain objects; sort into replay
   order; `step` only (no encoding); encode only (the outputs of the step phase). The phases
   assume well-formed input, as generated: config records first, no bad records;
3. measures per-user state: the size of each active user's state encoded with the project's
   state codec (`attribution.contract.state_codec.encode_state`, the state table's value format),
   and the deep `sys.getsizeof` of the in-memory state objects (on a sample of users, objects
   shared between users counted once);
4. counts the outputs: attributed by kind, unattributed by reason, piggyback fires, dead letters.

`--profile` then runs the replay once more under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from attribution.contract import decode_value, encode, topic_of, validator
from attribution.contract.codec import parse_json
from attribution.contract.state_codec import encode_state
from attribution.domain import EMPTY, Config, Conversion, LineItem, Pixel, Touch, UserState, step
from attribution.replay import OUTPUT_FILES, replay
from attribution.synth import TrafficSpec
from bench.generate import default_path, write

SMOKE_EVENTS = 2_000
SMOKE_USERS = 300
#: Users whose in-memory state is measured deeply (getsizeof over the object graph).
DEEP_SAMPLE = 10_000

_SCHEMA_OF_TOPIC = {
    "impressions": "impression",
    "clicks": "click",
    "conversions": "conversion",
    "pixels": "pixel",
    "line-items": "line_item",
}


def deep_size(obj: Any, seen: set[int]) -> int:
    """`sys.getsizeof` of `obj` and everything it references (slots, tuples), each object once."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, (tuple, list)):
        size += sum(deep_size(x, seen) for x in obj)
    elif hasattr(obj, "__slots__"):
        size += sum(deep_size(getattr(obj, s), seen) for s in obj.__slots__)
    return size


def _rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _GcTimer:
    """Wall time spent in the cyclic garbage collector, via `gc.callbacks`."""

    def __init__(self) -> None:
        self.total = 0.0
        self.collections = 0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start
            self.collections += 1

    def __enter__(self) -> _GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - started, value


# -- the phases, each on its own ------------------------------------------------------------------


def _phase_parse(lines: Sequence[bytes]) -> int:
    loads = orjson.loads
    n = 0
    for line in lines:
        loads(line)
        n += 1
    return n


def _phase_validate(lines: Sequence[bytes]) -> int:
    validators = {t: validator(s, defaults=t in ("pixels", "line-items")) for t, s in _SCHEMA_OF_TOPIC.items()}
    n = 0
    for line in lines:
        entry = parse_json(line)
        value = entry["value"]
        if value is not None:
            validators[entry["topic"]](value)
            n += 1
    return n


def _phase_decode(lines: Sequence[bytes]) -> list[tuple[int, int, int, Touch | Conversion]]:
    decoded: list[tuple[int, int, int, Touch | Conversion]] = []
    append = decoded.append
    for lineno, line in enumerate(lines):
        entry = parse_json(line)
        value = entry["value"]
        if value is None:
            continue
        obj = decode_value(entry["topic"], value)
        if isinstance(obj, Touch):
            append((obj.timestamp, 0, lineno, obj))
        elif isinstance(obj, Conversion):
            append((obj.timestamp, 1, lineno, obj))
    return decoded


def _phase_sort(decoded: list[tuple[int, int, int, Touch | Conversion]]) -> list[Touch | Conversion]:
    decoded.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in decoded]


def _phase_step(events: Iterable[Touch | Conversion], config: Config) -> list[Any]:
    users: dict[str, UserState] = {}
    outputs: list[Any] = []
    extend = outputs.extend
    for event in events:
        uid = event.user_id
        state, outs = step(users.get(uid, EMPTY), event, config)
        users[uid] = state
        extend(outs)
    return outputs


def _phase_encode(outputs: Iterable[Any]) -> dict[str, list[bytes]]:
    by_topic: dict[str, list[bytes]] = {t: [] for t in OUTPUT_FILES}
    for out in outputs:
        by_topic[topic_of(out)].append(encode(out))
    return by_topic


def _config_of(lines: Sequence[bytes]) -> Config:
    """The Config the replay builds, from the config records (all at the start of the file)."""
    pixels: dict[int, Pixel] = {}
    items: dict[int, LineItem] = {}
    for line in lines:
        entry = parse_json(line)
        topic = entry["topic"]
        if topic not in ("pixels", "line-items"):
            break
        target: dict[int, Any] = pixels if topic == "pixels" else items
        if entry["value"] is None:
            target.pop(int(entry["key"]), None)
            continue
        obj = decode_value(topic, entry["value"])
        assert isinstance(obj, (Pixel, LineItem))
        target[obj.id] = obj
    return Config(pixels, items)


# -- the run ------------------------------------------------------------------------------------


def ensure_file(spec: TrafficSpec, path: Path, regenerate: bool) -> tuple[bool, float]:
    """Generate the traffic file unless an up-to-date one exists; (generated?, seconds)."""
    import attribution.synth as synth

    stale = not path.exists() or path.stat().st_mtime < Path(synth.__file__).stat().st_mtime
    if not (regenerate or stale):
        return False, 0.0
    elapsed, _ = _timed(write, spec, path)
    return True, elapsed


def run(spec: TrafficSpec, path: Path, regenerate: bool = False) -> dict[str, Any]:
    generated, gen_seconds = ensure_file(spec, path, regenerate)
    rss_start = _rss_bytes()
    read_seconds, lines = _timed(lambda: path.read_bytes().splitlines())
    n_lines = len(lines)
    rss_loaded = _rss_bytes()

    # 1. The whole replay.
    load_before = os.getloadavg()[0]
    cpu_started = time.process_time()
    with _GcTimer() as gct:
        replay_seconds, result = _timed(replay, lines)
    replay_cpu = time.process_time() - cpu_started
    rss_replay = _rss_bytes()
    events = result.events

    # 2. State per user.
    states = [s for s in result.users.values() if not s.is_empty]
    sizes = [len(encode_state(s)) for s in states]
    touches = [len(s.touches) for s in states]
    stride = max(1, len(states) // DEEP_SAMPLE)
    sample = states[::stride][:DEEP_SAMPLE]
    seen: set[int] = {id(None), id(EMPTY)}
    deep = [deep_size(s, seen) for s in sample]
    n_users, n_active, n_sample = len(result.users), len(states), len(sample)
    del states, sample, seen

    # 3. Outputs.
    outs = result.outputs
    attributed = outs["attributed-conversions"]
    post_click = sum(1 for r in attributed if b'"attribution":"post_click"' in r)
    reasons = Counter(orjson.loads(r)["reason"] for r in outs["unattributed-conversions"])
    dead_codes = Counter(orjson.loads(r)["error"]["code"] for r in outs["dead-letters"])
    counts = {t: len(v) for t, v in outs.items()}
    del result, outs, attributed
    gc.collect()

    # 4. The phases, one at a time, on a heap as clean as the replay's was: each keeps what the
    # replay keeps at that point (the decoded events; the outputs) and nothing else.
    phases: dict[str, tuple[float, float]] = {}

    def measure(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        with _GcTimer() as timer:
            seconds, value = _timed(fn, *args)
        phases[name] = (seconds, timer.total)
        return value

    measure("parse", _phase_parse, lines)
    measure("parse+validate", _phase_validate, lines)
    decoded = measure("parse+validate+decode", _phase_decode, lines)
    ordered = measure("sort", _phase_sort, decoded)
    del decoded
    config = _config_of(lines)
    outputs = measure("step", _phase_step, ordered, config)
    del ordered
    measure("encode", _phase_encode, outputs)
    del outputs
    gc.collect()

    return {
        "spec": {"events": spec.events, "users": spec.users, "advertisers": spec.advertisers, "seed": spec.seed},
        "gc_enabled": gc.isenabled(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_before_replay": round(load_before, 2),
            "load_average_end": round(os.getloadavg()[0], 2),
        },
        "file": {
            "path": str(path),
            "lines": n_lines,
            "bytes": path.stat().st_size,
            "generated": generated,
            "generate_seconds": round(gen_seconds, 3),
            "read_seconds": round(read_seconds, 3),
        },
        "replay": {
            "events": events,
            "seconds": round(replay_seconds, 3),
            "events_per_s": round(events / replay_seconds) if replay_seconds else 0,
            "records_per_s": round(n_lines / replay_seconds) if replay_seconds else 0,
            "us_per_event": round(replay_seconds / events * 1e6, 2) if events else 0,
            "cpu_seconds": round(replay_cpu, 3),
            "events_per_cpu_s": round(events / replay_cpu) if replay_cpu else 0,
            "gc_seconds": round(gct.total, 3),
            "gc_collections": gct.collections,
        },
        "phases": {
            name: {
                "seconds": round(sec, 4),
                "gc_seconds": round(gc_sec, 4),
                "us_per_event": round(sec / events * 1e6, 3) if events else 0,
                "share_of_replay": round(sec / replay_seconds, 3) if replay_seconds else 0,
            }
            for name, (sec, gc_sec) in phases.items()
        },
        "memory": {
            "peak_rss_before_read_bytes": rss_start,
            "peak_rss_after_read_bytes": rss_loaded,
            "peak_rss_after_replay_bytes": rss_replay,
            "peak_rss_end_bytes": _rss_bytes(),
        },
        "state": {
            "users": n_users,
            "active_users": n_active,
            "state_bytes_mean": round(statistics.fmean(sizes), 1) if sizes else 0,
            "state_bytes_p50": _pct(sizes, 0.50),
            "state_bytes_p99": _pct(sizes, 0.99),
            "state_bytes_max": max(sizes, default=0),
            "touches_mean": round(statistics.fmean(touches), 2) if touches else 0,
            "touches_max": max(touches, default=0),
            "deep_sample_users": n_sample,
            "deep_bytes_mean": round(statistics.fmean(deep), 1) if deep else 0,
        },
        "outputs": {
            "attributed": counts["attributed-conversions"],
            "post_click": post_click,
            "post_view": counts["attributed-conversions"] - post_click,
            "unattributed": counts["unattributed-conversions"],
            "unattributed_by_reason": dict(sorted(reasons.items())),
            "piggyback_fires": counts["piggyback-fires"],
            "dead_letters": counts["dead-letters"],
            "dead_letters_by_code": dict(sorted(dead_codes.items())),
        },
    }


def _pct(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def profile(path: Path, top: int = 25) -> str:
    """cProfile of one replay of the file, top functions by own time and by cumulative time."""
    lines = path.read_bytes().splitlines()
    prof = cProfile.Profile()
    prof.enable()
    replay(lines)
    prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()


# -- the report ---------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def markdown(r: dict[str, Any]) -> str:
    rp, st, mem, out, fl = r["replay"], r["state"], r["memory"], r["outputs"], r["file"]
    reasons = ", ".join(f"{k} {v:,}" for k, v in out["unattributed_by_reason"].items()) or "none"
    rows = [
        ("events replayed", f"{rp['events']:,} ({fl['lines']:,} input lines, {fl['bytes'] / 1e6:,.1f} MB)"),
        ("replay wall time", f"{rp['seconds']:.2f} s (of which cyclic GC {rp['gc_seconds']:.2f} s)"),
        ("**replay throughput**", f"**{rp['events_per_s']:,} events/s** ({rp['us_per_event']} µs/event)"),
        ("replay vs bare orjson parse of the same lines", _vs_parse(r)),
        (
            "replay CPU time (process)",
            f"{rp['cpu_seconds']:.2f} s = {rp['events_per_cpu_s']:,} events per CPU-second",
        ),
        ("file read + split (not in the above)", f"{fl['read_seconds']:.2f} s"),
        (
            "load average (1 min) before replay / at end",
            f"{r['machine']['load_average_before_replay']} / {r['machine']['load_average_end']}"
            f" on {r['machine']['cpus']} CPUs",
        ),
        ("peak RSS after replay", _mib(mem["peak_rss_after_replay_bytes"])),
        ("peak RSS before replay (file + lines)", _mib(mem["peak_rss_after_read_bytes"])),
        ("peak RSS at end of benchmark", _mib(mem["peak_rss_end_bytes"])),
        ("users / with non-empty state", f"{st['users']:,} / {st['active_users']:,}"),
        (
            "**state bytes per active user (project state codec)**",
            f"**{st['state_bytes_mean']:,}** mean, p50 {st['state_bytes_p50']:,}, "
            f"p99 {st['state_bytes_p99']:,}, max {st['state_bytes_max']:,}",
        ),
        (
            "in-memory state per active user (deep getsizeof)",
            f"{st['deep_bytes_mean']:,} bytes mean (sample of {st['deep_sample_users']:,})",
        ),
        ("touches kept per active user", f"{st['touches_mean']} mean, max {st['touches_max']}"),
        (
            "attributed",
            f"{out['attributed']:,} (post_click {out['post_click']:,}, post_view {out['post_view']:,})",
        ),
        ("unattributed", f"{out['unattributed']:,} ({reasons})"),
        ("piggyback fires", f"{out['piggyback_fires']:,}"),
        ("dead letters", f"{out['dead_letters']:,}"),
    ]
    lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    lines += [
        "| phase (measured alone) | seconds | of which GC | µs/event | share of replay time | events/s if alone |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, ph in r["phases"].items():
        rate = f"{1e6 / ph['us_per_event']:,.0f}" if ph["us_per_event"] else "-"
        share = f"{ph['share_of_replay']:.0%}"
        cells = f"{ph['seconds']:.2f} | {ph['gc_seconds']:.2f} | {ph['us_per_event']:.2f} | {share} | {rate}"
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def _vs_parse(r: dict[str, Any]) -> str:
    parse = r["phases"].get("parse", {}).get("seconds", 0)
    if not parse or not r["replay"]["seconds"]:
        return "-"
    return f"{parse / r['replay']['seconds']:.3f} (parse alone {r['file']['lines'] / parse:,.0f} lines/s)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.replay_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000, help="event records (default 1,000,000)")
    p.add_argument("--users", type=int, default=100_000, help="distinct users (default 100,000)")
    p.add_argument("--advertisers", type=int, default=8, help="advertisers (default 8)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--file", help="traffic file (default bench/out/traffic-e<events>-u<users>-s<seed>.jsonl)")
    p.add_argument("--regenerate", action="store_true", help="write the traffic file even if it exists")
    p.add_argument("--smoke", action="store_true", help=f"a tiny run: {SMOKE_EVENTS:,} events, {SMOKE_USERS} users")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of markdown")
    p.add_argument("--profile", action="store_true", help="also profile one replay with cProfile (stderr)")
    p.add_argument("--no-gc", action="store_true", help="disable the cyclic garbage collector (to measure its cost)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    events, users = (SMOKE_EVENTS, SMOKE_USERS) if args.smoke else (args.events, args.users)
    spec = TrafficSpec(users=users, events=events, advertisers=args.advertisers, seed=args.seed)
    if args.no_gc:
        gc.disable()
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        if args.file:
            path = Path(args.file)
        elif args.smoke:
            path = Path(tmp) / "traffic.jsonl"
        else:
            path = default_path(spec)
        results = run(spec, path, regenerate=args.regenerate)
        if args.profile:
            sys.stderr.write(profile(path))
    if args.json:
        sys.stdout.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
