"""Pixel health: a pure function of the outcomes and `now` (no clock, no I/O).

Per pixel:

* `loads_12h`: conversions of the pixel (every outcome, attributed or not: each is one load of the
  pixel) published in the last 12 hours;
* `last_load_at`: the conversion timestamp (ms, UTC) of the pixel's latest load among the outcomes
  kept (the last 24 h), or null;
* `attributed_today`: post-click and post-view attributed conversions published since 00:00 UTC.

Like `/stats`, windows are in publish time (see `outcomes.Outcome`). The API shows these next to
the pixel's `status` (`active`, `paused` or `inactive`: DESIGN §2.2, `Config.status`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from attribution.web.outcomes import Outcome

HOUR_MS = 3_600_000
LOADS_WINDOW_MS = 12 * HOUR_MS
DAY_MS = 24 * HOUR_MS


def start_of_day(now_ms: int) -> int:
    """00:00 UTC of the day `now_ms` falls in."""
    return now_ms - now_ms % DAY_MS


def empty_health() -> dict[str, Any]:
    return {"loads_12h": 0, "last_load_at": None, "attributed_today": {"post_click": 0, "post_view": 0}}


def pixel_health(outcomes: Iterable[Outcome], now_ms: int) -> dict[int, dict[str, Any]]:
    """Load figures of every pixel that has outcomes; a pixel without any has `empty_health()`."""
    health: dict[int, dict[str, Any]] = {}
    loads_from = now_ms - LOADS_WINDOW_MS
    today = start_of_day(now_ms)
    for o in outcomes:
        h = health.get(o.pixel_id)
        if h is None:
            h = health[o.pixel_id] = empty_health()
        if o.published_ms > loads_from:
            h["loads_12h"] += 1
        if h["last_load_at"] is None or o.conversion_ms > h["last_load_at"]:
            h["last_load_at"] = o.conversion_ms
        if o.attributed and o.published_ms >= today and o.kind in ("post_click", "post_view"):
            h["attributed_today"][o.kind] += 1
    return health
