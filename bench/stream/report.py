"""The results as a markdown report (the tables of BENCHMARKS.md), and py-spy profile summaries."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any


def markdown(results: dict[str, Any], command: str) -> str:
    """The machine, the command, the inputs and one table per phase that ran."""
    m = results["machine"]
    lines = [
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB, {m['os']}; Python {m['python']}, "
        f"Kafka {m['kafka']} (single local broker on the same machine), faust-streaming {m['faust_streaming']}, "
        f"aiokafka {m['aiokafka']}, orjson {m['orjson']}.",
        "",
        f"Command: `{command}`",
        "",
        f"Inputs: {results['inputs']['records']:,} records ({results['inputs']['by_topic']}), "
        f"{results['inputs']['users']:,} users, {results['inputs']['partitions']} partitions.",
        "",
        "| contender | events/s | ratio to raw | wall s | CPU ms / 1k events | peak RSS MiB | broker CPU ms / 1k | machine busy | outcomes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['name']} | {r['events_per_s']:,.0f} | {_num(r['ratio_to_raw'], '.2f')} | {r['wall_s']:.1f} "
            f"| {_num(r['cpu_ms_per_1k'], '.1f')} | {r['rss_mib']:.0f} | {_num(r['broker_cpu_ms_per_1k'], '.1f')} "
            f"| {_num(r['machine_busy_pct'], '.0f', '%')} | {_num(r['outcomes'], 'd')} |"
        )
    rounds = [f"{r['name']} {', '.join(f'{x:,.0f}' for x in r['rates'])}" for r in results["runs"] if "rates" in r]
    if rounds:
        lines.append("\nEach row is its contender's median round; the rounds (events/s): " + "; ".join(rounds) + ".")
    lines.append(f"\nReplay's distinct conversion outcomes: {results['expected_outcomes']}.")
    by_name = {r["name"]: r for r in results["runs"]}
    one, two = by_name.get("worker-memory"), by_name.get("worker-memory-x2")
    if one and two:
        lines.append(
            f"\nTwo worker processes (one group) against one: {two['events_per_s'] / one['events_per_s']:.2f}x."
        )
    if "latency" in results:
        la = results["latency"]
        lines += [
            "",
            "| latency (produce -> outcome readable) | value |",
            "|---|---:|",
            f"| rate (default: half the memory worker's throughput) | {la['rate_events_per_s']:,.0f} events/s "
            f"(achieved {la['achieved_events_per_s']:,.0f}) |",
            f"| conversions measured ({la['measured_s']} s after warm-up) | {la['conversions_measured']} "
            f"({la['conversions_without_outcome']} without outcome) |",
            f"| p50 / p90 / p99 / max | {la['p50_ms']} / {la['p90_ms']} / {la['p99_ms']} / {la['max_ms']} ms |",
            f"| p50 / p99 to the outcome's send (its CreateTime) | {la['p50_to_outcome_sent_ms']} / "
            f"{la['p99_to_outcome_sent_ms']} ms |",
            f"| worker CPU at this rate | {100 * la['worker_cpu_share']:.0f}% of one core |",
            f"| worker peak RSS (the whole run) | {la.get('worker_peak_rss_mib', '-')} MiB |",
            f"| generator and outcome reader CPU | {100 * la.get('generator_cpu_share', 0):.0f}% of one core |",
        ]
    if "state" in results:
        st = results["state"]
        rocks = next((r for r in results["runs"] if r["name"] == "worker-rocksdb"), None)
        lines += [
            "",
            "| state per active user | bytes |",
            "|---|---:|",
            f"| encoded value, mean ({st['active_users']:,} users) | {st['value_bytes_mean']} |",
            f"| encoded value p50 / p99 / max | {st['value_bytes_p50']} / {st['value_bytes_p99']} / "
            f"{st['value_bytes_max']} |",
            f"| memory store (key + value objects + dict slot), mean | {st['memory_store_bytes_mean']} |",
        ]
        if rocks and rocks.get("rocksdb_dir_bytes"):
            lines.append(f"| RocksDB data dir / user | {rocks['rocksdb_dir_bytes'] / st['active_users']:.0f} |")
    if "recovery" in results:
        rc = results["recovery"]
        lines += [
            "",
            f"Recovery of {rc['users']:,} users' state ({rc['changelog_mib']} MiB of changelog, written in "
            f"{rc['write_s']} s):",
            "",
            "| store | changelog read (s) | process start -> worker ready (s) | CPU s | peak RSS MiB |",
            "|---|---:|---:|---:|---:|",
        ]
        for store in ("memory", "rocksdb"):
            r = rc.get(store)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {store} | {r['error']} | | | |")
            else:
                lines.append(
                    f"| {store} | {r['recovery_s']} | {r['start_to_ready_s']} | {r['cpu_s']} | {r['rss_mib']:.0f} |"
                )
    return "\n".join(lines)


def _num(value: Any, fmt: str, suffix: str = "") -> str:
    """A figure for the table; '-' for a missing one (None, or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{fmt}}{suffix}"


def summarize_profile(path: Path, top: int = 25) -> str:
    """Top functions of a py-spy raw (collapsed) profile: self and inclusive share of samples."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"{path.name}: {total} samples", "self%  incl%  function"]
    for f, n in own.most_common(top):
        lines.append(f"{100 * n / total:5.1f}  {100 * incl[f] / total:5.1f}  {f}")
    return "\n".join(lines)


def _frame(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{name} ({file})"
