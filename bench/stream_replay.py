"""Contender 4 of `bench.stream_bench`: `attribution.replay` over the records the stream reads.

    python -m bench.stream_replay FILE      # prints one JSON object

The file is the replay input (JSON lines) of exactly the records produced to the broker. It is read
into memory first; the timed part is `replay()` itself (parse, validate, decode, order, step,
encode), the engine without a broker. Also reports the distinct conversions with an outcome, which
the stream's runs must match.
"""

from __future__ import annotations

import sys
import time

import orjson

from attribution.replay import replay


def vm_hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        lines = f.read().splitlines()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = replay(lines)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    outcomes = {
        orjson.loads(v)["conversion_id"]
        for t in ("attributed-conversions", "unattributed-conversions")
        for v in result.outputs[t]
    }
    print(
        orjson.dumps(
            {
                "events": result.events,
                "wall_s": wall,
                "cpu_s": cpu,
                "rss_bytes": vm_hwm_bytes(),
                "outcomes": len(outcomes),
                "attributed": len(result.outputs["attributed-conversions"]),
                "dead_letters": len(result.outputs["dead-letters"]),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
