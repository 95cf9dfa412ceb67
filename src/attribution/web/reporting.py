"""The reporting side of one worker: the outcome window and the figures derived from it.

Figures are recomputed at most once a second, and only when the window changed (a dashboard
polling every second and an API listing pixels share the work).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attribution.web.health import empty_health, pixel_health
from attribution.web.outcomes import OutcomeWindow
from attribution.web.stats import summarize


class Reporting:
    def __init__(
        self, window: OutcomeWindow, clock: Callable[[], int], caught_up: Callable[[], bool] = lambda: True
    ) -> None:
        self.window = window
        self.clock = clock
        self.caught_up = caught_up
        self._memo: dict[str, tuple[tuple[int, int], Any]] = {}

    def _cached(self, name: str, compute: Callable[[int], Any]) -> Any:
        now = self.clock()
        key = (self.window.version, now // 1000)
        hit = self._memo.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute(now)
        self._memo[name] = (key, value)
        return value

    def stats(self) -> dict[str, Any]:
        """The `/stats` document."""
        figures: dict[str, Any] = self._cached("stats", lambda now: summarize(self.window, now))
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
        """Load figures of one pixel (see `health.pixel_health`)."""
        all_health: dict[int, dict[str, Any]] = self._cached("health", lambda now: pixel_health(self.window, now))
        return all_health.get(pixel_id) or empty_health()
