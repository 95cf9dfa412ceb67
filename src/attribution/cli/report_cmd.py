"""`attribution report`: what the pipeline has published so far, per pixel.

Reads the four output topics from the beginning to their current end (a group-less consumer: no
consumer group, nothing committed) and aggregates with `summarize`, a pure function. Delivery is
at least once, so records are deduplicated: conversions by `conversion_id`, piggyback fires by
`fire_id`, dead letters by where the bad record was (topic, partition, offset). A conversion id
with two different outcomes would break the contract; it is counted under `conflicts`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import click
import orjson

from attribution.app.reports import DAY_MS, HOUR_MS, MINUTE_MS, PERCENTILES, REASONS, Outcome, Tally
from attribution.cli.common import kafka_options, settings_from
from attribution.cli.config_cmd import call, table
from attribution.contract import OUTPUT_TOPICS
from attribution.settings import Settings


def _number(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else 0.0


def summarize(records_by_topic: Mapping[str, Iterable[bytes | Mapping[str, Any]]]) -> dict[str, Any]:
    """Aggregate output records (by default topic name; values as JSON bytes or parsed objects).

    Returns `{"pixels": {pixel_id: stats}, "totals": stats, "dead_letters": {"total", "by_code"},
    "records": {topic: {"read", "duplicates"}}, "conflicts": n, "unreadable": n}` where stats are
    attributed post_click/post_view counts, unattributed counts by reason, total value and booked
    revenue of attributed conversions, piggyback fires and latency_ms p50/p90/p99 (or None).
    """
    pixels: dict[int, Tally] = {}
    fires: Counter[int] = Counter()
    outcomes: dict[str, tuple[str, Mapping[str, Any]]] = {}  # conversion_id -> (topic, record)
    fire_ids: set[str] = set()
    letters: set[tuple[Any, Any, Any]] = set()
    dead: Counter[str] = Counter()
    records: dict[str, dict[str, int]] = {}
    conflicts: set[str] = set()
    unreadable = 0

    def pixel(record: Mapping[str, Any]) -> int:
        pid = record.get("pixel_id")
        key = pid if isinstance(pid, int) else 0
        if key not in pixels:
            pixels[key] = Tally()
        return key

    for topic in OUTPUT_TOPICS:
        read = duplicates = 0
        for raw in records_by_topic.get(topic, ()):
            read += 1
            try:
                record = orjson.loads(raw) if isinstance(raw, (bytes, bytearray, memoryview, str)) else raw
            except orjson.JSONDecodeError:
                record = None
            if not isinstance(record, Mapping):
                unreadable += 1
                continue
            if topic == "dead-letters":
                where = (record.get("topic"), record.get("partition"), record.get("offset"))
                if where in letters:
                    duplicates += 1
                    continue
                letters.add(where)
                error = record.get("error")
                code = error.get("code") if isinstance(error, Mapping) else None
                dead[str(code or "unknown")] += 1
            elif topic == "piggyback-fires":
                fire_id = str(record.get("fire_id"))
                if fire_id in fire_ids:
                    duplicates += 1
                    continue
                fire_ids.add(fire_id)
                fires[pixel(record)] += 1
            else:
                cid = str(record.get("conversion_id"))
                seen = outcomes.get(cid)
                if seen is not None:
                    duplicates += 1
                    if seen != (topic, record):
                        conflicts.add(cid)
                    continue
                outcomes[cid] = (topic, record)
                pid = pixel(record)
                ts = record.get("conversion_timestamp")
                ts = ts if isinstance(ts, int) else 0
                if topic == "unattributed-conversions":
                    pixels[pid].add(Outcome(cid, pid, str(record.get("reason")), False, ts, ts))
                    continue
                kind = "post_click" if record.get("attribution") == "post_click" else "post_view"
                latency = record.get("latency_ms")
                value, revenue = _number(record.get("value")), _number(record.get("booked_revenue"))
                pixels[pid].add(
                    Outcome(cid, pid, kind, True, ts, ts, value, revenue, latency if isinstance(latency, int) else None)
                )
        records[topic] = {"read": read, "duplicates": duplicates}

    totals = Tally()
    for stats in pixels.values():
        totals.merge(stats)

    def figures(t: Tally, fired: int) -> dict[str, Any]:
        return {**t.as_dict(delays=False), "piggyback_fires": fired}

    return {
        "pixels": {str(pid): figures(pixels[pid], fires[pid]) for pid in sorted(pixels)},
        "totals": figures(totals, sum(fires.values())),
        "dead_letters": {"total": sum(dead.values()), "by_code": dict(sorted(dead.items()))},
        "records": records,
        "conflicts": len(conflicts),
        "unreadable": unreadable,
    }


# --- rendering ------------------------------------------------------------------------------------


def duration(ms: float) -> str:
    """Milliseconds in a human unit: 850ms, 12.3s, 4.5m, 2.1h, 3.2d."""
    if ms < 1000:
        return f"{ms:.0f}ms"
    for unit, size in (("d", DAY_MS), ("h", HOUR_MS), ("m", MINUTE_MS), ("s", 1000)):
        if ms >= size:
            return f"{ms / size:.1f}{unit}"
    raise AssertionError("unreachable")


def money(x: float) -> str:
    return f"{x:,.2f}"


HEADERS = (
    "PIXEL",
    "CONV",
    "POST-CLICK",
    "POST-VIEW",
    "UNKNOWN",
    "INACTIVE",
    "PAUSED",
    "DUP-ORDER",
    "NO-TOUCH",
    "REPEAT",
    "VALUE",
    "REVENUE",
    "FIRES",
    "P50",
    "P90",
    "P99",
)


def _row(name: str, s: Mapping[str, Any]) -> list[str]:
    lat = s["latency_ms"]
    return [
        name,
        str(s["conversions"]),
        str(s["attributed"]["post_click"]),
        str(s["attributed"]["post_view"]),
        *(str(s["unattributed"][r]) for r in REASONS),
        money(s["value"]),
        money(s["booked_revenue"]),
        str(s["piggyback_fires"]),
        *((duration(lat[f"p{p}"]) for p in PERCENTILES) if lat else ("-",) * len(PERCENTILES)),
    ]


def render(summary: Mapping[str, Any]) -> str:
    """The human report: one row per pixel, a totals row, then dead letters (and any anomaly)."""
    rows = [_row(pid, s) for pid, s in summary["pixels"].items()]
    rows.append(_row("TOTAL", summary["totals"]))
    lines = [table(HEADERS, rows)]
    dead = summary["dead_letters"]
    codes = ", ".join(f"{code} {n}" for code, n in dead["by_code"].items())
    lines.append(f"dead letters: {dead['total']}" + (f" ({codes})" if codes else ""))
    if summary["conflicts"]:
        lines.append(f"CONFLICTS: {summary['conflicts']} conversions with two different outcomes")
    if summary["unreadable"]:
        lines.append(f"unreadable records: {summary['unreadable']}")
    return "\n".join(lines)


async def read_outputs(settings: Settings, timeout: float) -> dict[str, list[bytes | None]]:
    """The values of the output topics, by default topic name, to their current end."""
    from attribution.kafka.client import read_to_end

    names = {settings.topic(t): t for t in OUTPUT_TOPICS}
    records = await read_to_end(settings, list(names), timeout=timeout)
    return {names[t]: [r.value for r in recs] for t, recs in records.items()}


@click.command("report")
@kafka_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="S",
    help="Give up (exit 1) when the topics are not read to their end within S seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--hourly",
    is_flag=True,
    help="Print the live hourly rows of conversion-reports instead (per pixel, line item and UTC hour).",
)
def report_cmd(broker: str | None, topic_prefix: str | None, timeout: float, as_json: bool, hourly: bool) -> None:
    """Summarize the output topics per pixel.

    Reads attributed-conversions, unattributed-conversions, piggyback-fires and dead-letters from
    the beginning to their current end and prints, per pixel: attributed post-click and post-view
    conversions, unattributed ones by reason, total value and booked revenue of the attributed
    ones, piggyback fires and the touch-to-conversion latency (p50/p90/p99); then totals and dead
    letters by error code. Repeated records (at-least-once delivery) are counted once.

    With --hourly: the rows the worker keeps on conversion-reports (one per pixel, line item and
    UTC hour of the conversion, each conversion counted once), as a table or, with --json, a JSON
    array of the row records.
    """
    settings = settings_from(broker, topic_prefix)
    if hourly:
        from attribution.cli.hourly_cmd import hourly_report

        hourly_report(settings, timeout, as_json)
        return
    values = call(read_outputs(settings, timeout))
    summary = summarize({t: (v for v in vs if v is not None) for t, vs in values.items()})
    if as_json:
        click.echo(orjson.dumps(summary))
        return
    click.echo(render(summary))
    dups = sum(r["duplicates"] for r in summary["records"].values())
    read = sum(r["read"] for r in summary["records"].values())
    click.echo(f"read {read:,} records, {dups:,} repeated ones counted once", err=True)
