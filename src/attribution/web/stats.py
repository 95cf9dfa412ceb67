"""Live reporting figures: pure functions of the outcomes and `now` (no clock, no I/O).

Windows are in publish time (when a worker published the outcome, normally within a second of the
pixel load; see `outcomes.Outcome`), so they also make sense while history is replayed:

* `hour` and `day`: outcomes published in `(now - 1 h, now]` and `(now - 24 h, now]` (a record
  stamped a little in the future, by a worker whose clock runs ahead, counts as recent);
* per pixel and in total: conversions, attributed post-click / post-view, unattributed by reason,
  summed `value` and `booked_revenue` of attributed conversions, percentiles of `latency_ms` (touch
  to conversion) and of `delay_ms` (conversion to publication: how far behind the pipeline runs);
* `series`: attributed / unattributed outcomes per minute over the last hour, for charts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from attribution.domain import REASONS
from attribution.web.outcomes import Outcome

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WINDOWS = {"hour": HOUR_MS, "day": DAY_MS}
PERCENTILES = (50, 90, 99)
SERIES_BUCKETS = 60


def percentile(sorted_values: Sequence[int], p: float) -> int:
    """Nearest-rank percentile of a non-empty sorted sequence."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def percentiles(values: list[int]) -> dict[str, int] | None:
    if not values:
        return None
    values.sort()
    return {f"p{p}": percentile(values, p) for p in PERCENTILES}


class Tally:
    """Running sums of one window for one pixel (or all)."""

    __slots__ = ("delays", "kinds", "latencies", "revenue", "value")

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}
        self.value = 0.0
        self.revenue = 0.0
        self.latencies: list[int] = []
        self.delays: list[int] = []

    def add(self, o: Outcome) -> None:
        self.kinds[o.kind] = self.kinds.get(o.kind, 0) + 1
        if o.attributed:
            self.value += o.value or 0.0
            self.revenue += o.booked_revenue or 0.0
            if o.latency_ms is not None:
                self.latencies.append(o.latency_ms)
        self.delays.append(max(0, o.published_ms - o.conversion_ms))

    def as_dict(self) -> dict[str, Any]:
        clicks = self.kinds.get("post_click", 0)
        views = self.kinds.get("post_view", 0)
        reasons = {r: self.kinds.get(r, 0) for r in REASONS}
        unattributed = sum(n for k, n in self.kinds.items() if k not in ("post_click", "post_view"))
        return {
            "conversions": clicks + views + unattributed,
            "attributed": {"post_click": clicks, "post_view": views, "total": clicks + views},
            "unattributed": {**reasons, "total": unattributed},
            "value": round(self.value, 6),
            "booked_revenue": round(self.revenue, 6),
            "latency_ms": percentiles(self.latencies),
            "delay_ms": percentiles(self.delays),
        }


def summarize(outcomes: Iterable[Outcome], now_ms: int) -> dict[str, Any]:
    """The `/stats` figures at `now_ms` (see the module docstring)."""
    cutoffs = {name: now_ms - span for name, span in WINDOWS.items()}
    totals = {name: Tally() for name in WINDOWS}
    pixels: dict[str, dict[int, Tally]] = {name: {} for name in WINDOWS}
    series_end = (now_ms // MINUTE_MS + 1) * MINUTE_MS
    series_start = series_end - SERIES_BUCKETS * MINUTE_MS
    attributed = [0] * SERIES_BUCKETS
    unattributed = [0] * SERIES_BUCKETS
    for o in outcomes:
        for name, cutoff in cutoffs.items():
            if o.published_ms > cutoff:
                totals[name].add(o)
                tally = pixels[name].get(o.pixel_id)
                if tally is None:
                    tally = pixels[name][o.pixel_id] = Tally()
                tally.add(o)
        if o.published_ms >= series_start:
            i = min(SERIES_BUCKETS - 1, (o.published_ms - series_start) // MINUTE_MS)
            (attributed if o.attributed else unattributed)[i] += 1
    return {
        "now": now_ms,
        "windows": {
            name: {
                "from": cutoffs[name],
                "to": now_ms,
                "totals": totals[name].as_dict(),
                "pixels": {str(pid): t.as_dict() for pid, t in sorted(pixels[name].items())},
            }
            for name in WINDOWS
        },
        "series": {
            "bucket_ms": MINUTE_MS,
            "from": series_start,
            "attributed": attributed,
            "unattributed": unattributed,
        },
    }
