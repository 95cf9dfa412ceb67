"""The reporting side of one worker: the outcome window and the figures derived from it.

Figures are recomputed at most once a second, and only when the window changed; the per-minute
and per-hour tallies they are made of are cached until they change, so a recomputation merges
about 25 hours and 60 minutes of tallies instead of passing over every outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attribution.app.reports import (
    Bucket,
    Outcome,
    Tally,
    TallySource,
    empty_health,
    health_of_buckets,
    pixel_tallies,
    summarize_buckets,
)
from attribution.web.outcomes import OutcomeWindow


class CachedTallies(TallySource):
    """Per-minute and per-hour tallies of a window, each kept until its minutes change."""

    def __init__(self, window: OutcomeWindow) -> None:
        self.window = window
        self._minutes: dict[int, tuple[int, Mapping[int, Tally]]] = {}
        self._hours: dict[int, tuple[tuple[int, ...], Mapping[int, Tally]]] = {}

    def minute(self, minute: int, outcomes: Sequence[Outcome]) -> Mapping[int, Tally]:
        stamp = self.window.stamps.get(minute, -1)
        hit = self._minutes.get(minute)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        tallies = pixel_tallies(outcomes)
        self._minutes[minute] = (stamp, tallies)
        return tallies

    def hour(self, hour: int, buckets: Sequence[Bucket]) -> Mapping[int, Tally]:
        key = tuple(self.window.stamps.get(m, -1) for m, _ in buckets)
        hit = self._hours.get(hour)
        if hit is not None and hit[0] == key:
            return hit[1]
        tallies = super().hour(hour, buckets)
        self._hours[hour] = (key, tallies)
        return tallies

    def forget_old(self) -> None:
        """Drop the cached tallies of minutes and hours the window no longer has."""
        stamps = self.window.stamps
        self._minutes = {m: v for m, v in self._minutes.items() if m in stamps}
        hours = {m // 60 for m in stamps}
        self._hours = {h: v for h, v in self._hours.items() if h in hours}


class Reporting:
    def __init__(
        self, window: OutcomeWindow, clock: Callable[[], int], caught_up: Callable[[], bool] = lambda: True
    ) -> None:
        self.window = window
        self.clock = clock
        self.caught_up = caught_up
        self._memo: dict[str, tuple[tuple[int, int], Any]] = {}
        self.tallies = CachedTallies(window)

    def _cached(self, name: str, compute: Callable[[int], Any]) -> Any:
        now = self.clock()
        key = (self.window.version, now // 1000)
        hit = self._memo.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute(now)
        self._memo[name] = (key, value)
        if name == "stats":
            self.tallies.forget_old()
        return value

    def stats(self) -> dict[str, Any]:
        """The `/stats` document."""
        figures: dict[str, Any] = self._cached(
            "stats", lambda now: summarize_buckets(self.window.buckets(), now, self.tallies)
        )
        return {
            **figures,
            "source": {
                "outcomes": len(self.window),
                "oldest": self.window.oldest_ms(),
                "duplicates": self.window.duplicates,
                "evicted": self.window.evicted,
                "caught_up": self.caught_up(),
            },
        }

    def health(self, pixel_id: int) -> dict[str, Any]:
        """Load figures of one pixel (see `health`)."""
        every: dict[int, dict[str, Any]] = self._cached(
            "health", lambda now: health_of_buckets(self.window.buckets(), now, self.tallies)
        )
        return every.get(pixel_id) or empty_health()
