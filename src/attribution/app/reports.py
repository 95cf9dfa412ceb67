"""Reports of conversion outcomes, for every adapter: `/stats` and pixel health (the HTTP side) and
`attribution report` (the CLI). Pure functions of the outcomes and `now` (no clock, no I/O).

An `Outcome` is one conversion's result, as read from the output topics. A `Tally` sums outcomes
of one pixel (or of all): conversions, attributed post-click / post-view, unattributed by reason,
summed `value` and `booked_revenue` of attributed conversions, nearest-rank percentiles of
`latency_ms` (touch to conversion) and of `delay_ms` (conversion to publication: how far behind
the pipeline runs).

Windows are in publish time (when a worker published the outcome, normally within a second of the
pixel load), so they also make sense while history is replayed:

* `hour` and `day`: outcomes published in `(now - 1 h, now]` and `(now - 24 h, now]` (a record
  stamped a little in the future, by a worker whose clock runs ahead, counts as recent);
* `series`: attributed / unattributed outcomes per minute over the last hour, for charts;
* pixel health: `loads_12h` (every outcome of the pixel, attributed or not: each is one load of
  the pixel, published in the last 12 hours), `last_load_at` (the conversion timestamp of the
  pixel's latest load among the outcomes kept) and `attributed_today` (since 00:00 UTC).

The work is done per minute of publication: a `Tally` per (minute, pixel) and per (hour, pixel),
which the caller may cache until they change (`source=`), merged over the hours and minutes a
window covers. Only the minute a window starts in is looked at record by record, so the figures
are exact to the millisecond and cost a few hundred merges, not a pass over every record.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import orjson

from attribution.domain import REASONS
from attribution.domain.config import DAY_MS, HOUR_MS, MINUTE_MS

__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "PERCENTILES",
    "REASONS",
    "Bucket",
    "Outcome",
    "Tally",
    "TallySource",
    "by_minute",
    "empty_health",
    "health_of_buckets",
    "parse_outcome",
    "percentile",
    "percentiles",
    "pixel_health",
    "pixel_tallies",
    "start_of_day",
    "summarize",
    "summarize_buckets",
    "window_tallies",
]

N = TypeVar("N", int, float)
WINDOWS = {"hour": HOUR_MS, "day": DAY_MS}
PERCENTILES = (50, 90, 99)
ATTRIBUTED = ("post_click", "post_view")
SERIES_BUCKETS = 60
LOADS_WINDOW_MS = 12 * HOUR_MS


class Outcome(NamedTuple):
    """One conversion's outcome. `kind` is `post_click` / `post_view` for attributed conversions,
    else the unattributed reason. `published_ms` is when the worker published it (the Kafka record
    timestamp): the clock of every reporting window."""

    conversion_id: str
    pixel_id: int
    kind: str
    attributed: bool
    conversion_ms: int
    published_ms: int
    value: float | None = None
    booked_revenue: float | None = None
    latency_ms: int | None = None


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def parse_outcome(topic: str, raw: bytes | None, published_ms: int) -> Outcome | None:
    """An output record (default topic name) as an Outcome; None when it is not one (a foreign or
    damaged record never stops reporting)."""
    if raw is None:
        return None
    try:
        d = orjson.loads(raw)
        conversion_id = d["conversion_id"]
        pixel_id = d["pixel_id"]
        conversion_ms = d["conversion_timestamp"]
        if not isinstance(conversion_id, str) or not isinstance(pixel_id, int) or not isinstance(conversion_ms, int):
            return None
        if topic == "attributed-conversions":
            latency = d.get("latency_ms")
            return Outcome(
                conversion_id,
                pixel_id,
                str(d["attribution"]),
                True,
                conversion_ms,
                published_ms,
                _number(d.get("value")),
                _number(d.get("booked_revenue")),
                latency if isinstance(latency, int) else None,
            )
        if topic == "unattributed-conversions":
            return Outcome(conversion_id, pixel_id, str(d["reason"]), False, conversion_ms, published_ms)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return None


Bucket = tuple[int, Sequence[Outcome]]  # (minute = published_ms // 60000, its outcomes)


def percentile(sorted_values: Sequence[N], p: float) -> N:
    """Nearest-rank percentile (`p` from 0 to 100) of a non-empty sorted sequence."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def percentiles(values: list[int]) -> dict[str, int] | None:
    """p50/p90/p99 of `values` (sorted in place), None for no values."""
    if not values:
        return None
    values.sort()
    return {f"p{p}": percentile(values, p) for p in PERCENTILES}


class Tally:
    """Sums over some outcomes of one pixel (or of all)."""

    __slots__ = ("delays", "kinds", "last_conversion_ms", "latencies", "revenue", "value")

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}
        self.value = 0.0
        self.revenue = 0.0
        self.latencies: list[int] = []
        self.delays: list[int] = []
        self.last_conversion_ms: int | None = None

    @property
    def count(self) -> int:
        return sum(self.kinds.values())

    def add(self, o: Outcome) -> None:
        self.kinds[o.kind] = self.kinds.get(o.kind, 0) + 1
        if o.attributed:
            self.value += o.value or 0.0
            self.revenue += o.booked_revenue or 0.0
            if o.latency_ms is not None:
                self.latencies.append(o.latency_ms)
        self.delays.append(max(0, o.published_ms - o.conversion_ms))
        if self.last_conversion_ms is None or o.conversion_ms > self.last_conversion_ms:
            self.last_conversion_ms = o.conversion_ms

    def merge(self, other: Tally, samples: bool = True) -> None:
        """Add `other` in; without `samples`, leave out the latency and delay samples (counts and
        sums only: cheaper, and enough for health)."""
        for kind, n in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + n
        self.value += other.value
        self.revenue += other.revenue
        if samples:
            self.latencies += other.latencies
            self.delays += other.delays
        if other.last_conversion_ms is not None and (
            self.last_conversion_ms is None or other.last_conversion_ms > self.last_conversion_ms
        ):
            self.last_conversion_ms = other.last_conversion_ms

    def as_dict(self, delays: bool = True) -> dict[str, Any]:
        """The figures; unattributed by every reason of the contract, then any other seen;
        `delay_ms` only with `delays` (publication times known)."""
        clicks = self.kinds.get("post_click", 0)
        views = self.kinds.get("post_view", 0)
        reasons: dict[str, int] = {r: self.kinds.get(r, 0) for r in REASONS}
        reasons.update(sorted((k, n) for k, n in self.kinds.items() if k not in reasons and k not in ATTRIBUTED))
        unattributed = sum(reasons.values())
        figures: dict[str, Any] = {
            "conversions": clicks + views + unattributed,
            "attributed": {"post_click": clicks, "post_view": views, "total": clicks + views},
            "unattributed": {**reasons, "total": unattributed},
            "value": round(self.value, 6),
            "booked_revenue": round(self.revenue, 6),
            "latency_ms": percentiles(list(self.latencies)),
        }
        if delays:
            figures["delay_ms"] = percentiles(list(self.delays))
        return figures


def pixel_tallies(outcomes: Iterable[Outcome], after_ms: int | None = None) -> dict[int, Tally]:
    """A Tally per pixel of the outcomes (only those published after `after_ms`, if given)."""
    tallies: dict[int, Tally] = {}
    for o in outcomes:
        if after_ms is not None and o.published_ms <= after_ms:
            continue
        t = tallies.get(o.pixel_id)
        if t is None:
            t = tallies[o.pixel_id] = Tally()
        t.add(o)
    return tallies


def by_minute(outcomes: Iterable[Outcome]) -> list[Bucket]:
    """Outcomes grouped by minute of publication, in time order."""
    minutes: dict[int, list[Outcome]] = {}
    for o in outcomes:
        minutes.setdefault(o.published_ms // MINUTE_MS, []).append(o)
    return sorted(minutes.items())


class TallySource:
    """Per-pixel tallies of one minute, or of the minutes of one hour, computed afresh. A caller
    that reports repeatedly caches them (the worker does); the figures are the same."""

    def minute(self, minute: int, outcomes: Sequence[Outcome]) -> Mapping[int, Tally]:
        return pixel_tallies(outcomes)

    def hour(self, hour: int, buckets: Sequence[Bucket]) -> Mapping[int, Tally]:
        return merge_all(self.minute(m, outcomes) for m, outcomes in buckets)


DIRECT = TallySource()


def merge_all(parts: Iterable[Mapping[int, Tally]], samples: bool = True) -> dict[int, Tally]:
    """Per-pixel tallies added up into fresh ones (the parts are left as they were)."""
    merged: dict[int, Tally] = {}
    for part in parts:
        for pid, t in part.items():
            into = merged.get(pid)
            if into is None:
                into = merged[pid] = Tally()
            into.merge(t, samples)
    return merged


def window_tallies(
    buckets: Sequence[Bucket], since_ms: int, source: TallySource = DIRECT, samples: bool = True
) -> dict[int, Tally]:
    """Per pixel, everything published after `since_ms`: whole hours and minutes from `source`,
    the minute `since_ms` falls in record by record (`samples`: see `Tally.merge`)."""
    first = since_ms // MINUTE_MS
    parts: list[Mapping[int, Tally]] = []
    for hour, group in itertools.groupby(buckets, key=lambda b: b[0] // 60):
        minutes = list(group)
        if hour * 60 > first:  # every minute of this hour is inside the window
            parts.append(source.hour(hour, minutes))
            continue
        for minute, outcomes in minutes:
            if minute > first:
                parts.append(source.minute(minute, outcomes))
            elif minute == first:
                parts.append(pixel_tallies(outcomes, since_ms))
    return merge_all(parts, samples)


def summarize_buckets(buckets: Sequence[Bucket], now_ms: int, source: TallySource = DIRECT) -> dict[str, Any]:
    """The `/stats` figures at `now_ms` (see the module docstring)."""
    windows: dict[str, Any] = {}
    for name, span in WINDOWS.items():
        per_pixel = window_tallies(buckets, now_ms - span, source)
        total = Tally()
        for t in per_pixel.values():
            total.merge(t)
        windows[name] = {
            "from": now_ms - span,
            "to": now_ms,
            "totals": total.as_dict(),
            "pixels": {str(pid): t.as_dict() for pid, t in sorted(per_pixel.items())},
        }
    last = now_ms // MINUTE_MS
    first = last - SERIES_BUCKETS + 1
    attributed = [0] * SERIES_BUCKETS
    unattributed = [0] * SERIES_BUCKETS
    for minute, outcomes in buckets:
        if minute < first:
            continue
        i = min(SERIES_BUCKETS - 1, minute - first)  # a minute in the future counts as the last
        for o in outcomes:
            (attributed if o.attributed else unattributed)[i] += 1
    return {
        "now": now_ms,
        "windows": windows,
        "series": {
            "bucket_ms": MINUTE_MS,
            "from": first * MINUTE_MS,
            "attributed": attributed,
            "unattributed": unattributed,
        },
    }


def summarize(outcomes: Iterable[Outcome], now_ms: int) -> dict[str, Any]:
    """`summarize_buckets` of outcomes in any order."""
    return summarize_buckets(by_minute(outcomes), now_ms)


# --- pixel health ---------------------------------------------------------------------------------


def start_of_day(now_ms: int) -> int:
    """00:00 UTC of the day `now_ms` falls in."""
    return now_ms - now_ms % DAY_MS


def empty_health() -> dict[str, Any]:
    return {"loads_12h": 0, "last_load_at": None, "attributed_today": {"post_click": 0, "post_view": 0}}


def health_of_buckets(
    buckets: Sequence[Bucket], now_ms: int, source: TallySource = DIRECT
) -> dict[int, dict[str, Any]]:
    """Load figures of every pixel that has outcomes; a pixel without any has `empty_health()`."""
    health: dict[int, dict[str, Any]] = {}
    everything = window_tallies(buckets, -1, source, samples=False)
    loads = window_tallies(buckets, now_ms - LOADS_WINDOW_MS, source, samples=False)
    today = window_tallies(buckets, start_of_day(now_ms) - 1, source, samples=False)
    for pid, t in everything.items():
        h = health[pid] = empty_health()
        h["last_load_at"] = t.last_conversion_ms
        if pid in loads:
            h["loads_12h"] = loads[pid].count
        if pid in today:
            kinds = today[pid].kinds
            h["attributed_today"] = {"post_click": kinds.get("post_click", 0), "post_view": kinds.get("post_view", 0)}
    return health


def pixel_health(outcomes: Iterable[Outcome], now_ms: int) -> dict[int, dict[str, Any]]:
    """`health_of_buckets` of outcomes in any order."""
    return health_of_buckets(by_minute(outcomes), now_ms)
