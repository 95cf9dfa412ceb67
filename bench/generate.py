"""Write synthetic traffic as replay input: JSON lines `{"topic", "key", "value"}`, config first.

    python -m bench.generate --events 1000000 --users 100000 --seed 1 --out bench/out/traffic.jsonl

The records are those of `attribution.synth` (deterministic by seed). The file is written to a
temporary name and renamed, so an interrupted run never leaves a partial file behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from attribution.synth import TrafficSpec, config_records, events

_CHUNK = 16_384
_NL = orjson.OPT_APPEND_NEWLINE


def write(spec: TrafficSpec, path: str | os.PathLike[str]) -> int:
    """Write the config records then the events of `spec` to `path`; returns the number of lines."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    dumps = orjson.dumps
    lines = 0
    try:
        with open(tmp, "wb") as f:
            buf = [dumps({"topic": t, "key": k, "value": v}, option=_NL) for t, k, v in config_records(spec)]
            lines += len(buf)
            f.write(b"".join(buf))
            buf.clear()
            append = buf.append
            for t, k, v in events(spec):
                append(dumps({"topic": t, "key": k, "value": v}, option=_NL))
                if len(buf) >= _CHUNK:
                    f.write(b"".join(buf))
                    lines += len(buf)
                    buf.clear()
            f.write(b"".join(buf))
            lines += len(buf)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return lines


def default_path(spec: TrafficSpec) -> Path:
    """Where the benchmark keeps the file of a spec (`bench/out/`, ignored by git)."""
    return Path(__file__).resolve().parent / "out" / f"traffic-e{spec.events}-u{spec.users}-s{spec.seed}.jsonl"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000, help="event records (default 1,000,000)")
    p.add_argument("--users", type=int, default=100_000, help="distinct users (default 100,000)")
    p.add_argument("--advertisers", type=int, default=8, help="advertisers (default 8)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", help="output file (default bench/out/traffic-e<events>-u<users>-s<seed>.jsonl)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    spec = TrafficSpec(users=args.users, events=args.events, advertisers=args.advertisers, seed=args.seed)
    path = Path(args.out) if args.out else default_path(spec)
    started = time.perf_counter()
    lines = write(spec, path)
    elapsed = time.perf_counter() - started
    size = path.stat().st_size
    rate = args.events / elapsed if elapsed else 0.0
    print(
        f"wrote {lines:,} lines ({size / 1e6:,.1f} MB) to {path} in {elapsed:.2f}s ({rate:,.0f} events/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
