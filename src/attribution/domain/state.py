"""Per-user state and the rules that keep it bounded.

A user's state is what the rules need and nothing more:

* `touches`: the user's touches in timestamp order; equal timestamps stay in processing order, so
  walking the tuple backwards meets "the latest, processed later on ties" first.
* `counted`: `(pixel_id, timestamp)` of the last conversion counted by the repeat rule, per pixel.
* `processed`: `(event_id, timestamp)` of conversions already judged, for deduplication.
* `watermark`: the latest event timestamp seen for the user; pruning is relative to it, so state
  depends only on the events, never on a clock.

Bounds (see `Limits`): touches older than the longest window any pixel may have (30 days for
impressions, 90 for clicks) are dropped; of the touches of one line item and kind only the latest
`per_line_item` are kept (for in-order input the latest is the only one the rules can pick, since
eligibility depends on the line item, the kind and the window, and the latest is always the most
recent within it; the extra ones absorb out-of-order conversions); `max_touches` is a last-resort
cap that drops the oldest. Processed ids are kept for `dedup_retention_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass

from attribution.domain.config import LONGEST_CLICK_WINDOW_MS, LONGEST_VIEW_WINDOW_MS
from attribution.domain.records import Touch

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on per-user state. Defaults are what the product ships with."""

    dedup_retention_ms: int = 7 * DAY_MS
    per_line_item: int = 2
    max_touches: int = 64


@dataclass(frozen=True, slots=True)
class UserState:
    touches: tuple[Touch, ...] = ()
    counted: tuple[tuple[int, int], ...] = ()
    processed: tuple[tuple[str, int], ...] = ()
    watermark: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.touches or self.counted or self.processed)

    def has_processed(self, event_id: str) -> bool:
        return any(eid == event_id for eid, _ in self.processed)

    def last_counted(self, pixel_id: int) -> int | None:
        for pid, ts in self.counted:
            if pid == pixel_id:
                return ts
        return None


EMPTY = UserState()


def add_touch(state: UserState, touch: Touch, limits: Limits) -> UserState:
    """Insert a touch in timestamp order (after equal timestamps), then prune. Idempotent."""
    touches = state.touches
    for t in touches:
        if t.event_id == touch.event_id and t.kind == touch.kind:
            return state  # redelivered touch: already known
    i = len(touches)
    while i and touches[i - 1].timestamp > touch.timestamp:
        i -= 1
    touches = (*touches[:i], touch, *touches[i:])
    watermark = max(state.watermark, touch.timestamp)
    return UserState(_prune_touches(touches, watermark, limits), state.counted, state.processed, watermark)


def _prune_touches(touches: tuple[Touch, ...], watermark: int, limits: Limits) -> tuple[Touch, ...]:
    view_horizon = watermark - LONGEST_VIEW_WINDOW_MS
    click_horizon = watermark - LONGEST_CLICK_WINDOW_MS
    kept: list[Touch] = []
    seen: dict[tuple[int, str], int] = {}
    # Walk newest first so the per-line-item cap keeps the latest ones.
    for t in reversed(touches):
        if t.timestamp < (click_horizon if t.kind == "click" else view_horizon):
            continue
        key = (t.line_item_id, t.kind)
        n = seen.get(key, 0)
        if n >= limits.per_line_item:
            continue
        seen[key] = n + 1
        kept.append(t)
        if len(kept) >= limits.max_touches:
            break
    if len(kept) == len(touches):
        return touches
    kept.reverse()
    return tuple(kept)


def record_conversion(
    state: UserState, event_id: str, timestamp: int, counted_pixel: int | None, limits: Limits
) -> UserState:
    """Remember a judged conversion (and, when the repeat rule counted it, its pixel's counter)."""
    watermark = max(state.watermark, timestamp)
    horizon = watermark - limits.dedup_retention_ms
    processed = (*(p for p in state.processed if p[1] >= horizon), (event_id, timestamp))
    counted = state.counted
    if counted_pixel is not None:
        counted = (*(c for c in counted if c[0] != counted_pixel), (counted_pixel, timestamp))
    touches = state.touches
    if watermark != state.watermark:
        touches = _prune_touches(touches, watermark, limits)
    return UserState(touches, counted, processed, watermark)
