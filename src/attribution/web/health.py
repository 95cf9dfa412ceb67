"""Pixel health: a pure function of the outcomes and `now` (no clock, no I/O).

Per pixel:

* `loads_12h`: conversions of the pixel (every outcome, attributed or not: each is one load of the
  pixel) published in the last 12 hours;
* `last_load_at`: the conversion timestamp (ms, UTC) of the pixel's latest load among the outcomes
  kept (the last 24 h), or null;
* `attributed_today`: post-click and post-view attributed conversions published since 00:00 UTC.

Like `/stats`, windows are in publish time (see `outcomes.Outcome`) and the work is done per
minute (`stats.window_tallies`). The API shows these next to the pixel's `status` (`active`,
`paused` or `inactive`: docs/design.md, Pixel status; `Config.status`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from attribution.web.outcomes import Outcome
from attribution.web.stats import DIRECT, Bucket, TallySource, by_minute, window_tallies

HOUR_MS = 3_600_000
LOADS_WINDOW_MS = 12 * HOUR_MS
DAY_MS = 24 * HOUR_MS


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
