"""Per-user state and the rules that keep it bounded.

A user's state is what the rules need and nothing more:

* `touches`: the user's touches in timestamp order; equal timestamps stay in processing order, so
  walking the tuple backwards meets "the latest, processed later on ties" first.
* `counted`: `(pixel_id, timestamp)` of the last conversion counted by the repeat rule, per pixel.
* `processed`: `(event_id, timestamp)` of conversions already judged, for deduplication.
* `held`: conversions the stream holds until the touch streams have passed their timestamp, each
  with an opaque integer tag of the caller's (the stream keeps the source partition there).
* `watermark`: the latest event timestamp seen for the user. State depends only on the events and
  on the `horizon` passed in, never on a clock.

Pruning is relative to a **horizon**: a time no conversion judged from now on can precede. Offline
replay judges in timestamp order, so the horizon is the current event's time (the default here is
the user's watermark, the same thing for in-order input); the stream passes the lowest timestamp a
pending or future conversion of the partition can have, so touches that run ahead of a lagging
conversions topic are kept until those conversions are judged.

Bounds (see `Limits`): touches older than the horizon minus the longest window any pixel may have
(30 days for impressions, 90 for clicks) are dropped. Of the touches of one line item and kind (and
advertiser, should upstream ever disagree with itself) at or before the horizon only the latest `per_line_item` are kept: a conversion at or after the horizon
can only pick the latest of them, since eligibility depends on the line item, the kind and the
window, and the latest is the most recent within it (a plain "last N touches" cap would let one
advertiser's heavy impression stream evict another advertiser's click; this one cannot). Touches
after the horizon are all kept. `max_touches` is a last-resort cap per advertiser and kind that
drops the oldest: one advertiser's heavy traffic can only ever evict that advertiser's own touches,
so a user's state is bounded by (advertisers touched) x 2 x `max_touches` whatever the input.
Processed ids are kept for `dedup_retention_ms` behind the user's watermark.
"""

from __future__ import annotations

from dataclasses import dataclass

from attribution.domain.config import LONGEST_CLICK_WINDOW_MS, LONGEST_VIEW_WINDOW_MS
from attribution.domain.records import Conversion, Touch

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on per-user state. Defaults are what the product ships with."""

    dedup_retention_ms: int = 7 * DAY_MS
    per_line_item: int = 2
    max_touches: int = 64  # per advertiser and kind


@dataclass(frozen=True, slots=True)
class UserState:
    touches: tuple[Touch, ...] = ()
    counted: tuple[tuple[int, int], ...] = ()
    processed: tuple[tuple[str, int], ...] = ()
    watermark: int = 0
    held: tuple[tuple[Conversion, int], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.touches or self.counted or self.processed or self.held)

    def has_processed(self, event_id: str) -> bool:
        return any(eid == event_id for eid, _ in self.processed)

    def is_held(self, event_id: str) -> bool:
        return any(c.event_id == event_id for c, _ in self.held)

    def last_counted(self, pixel_id: int) -> int | None:
        for pid, ts in self.counted:
            if pid == pixel_id:
                return ts
        return None


EMPTY = UserState()


def add_touch(state: UserState, touch: Touch, limits: Limits, horizon: int | None = None) -> UserState:
    """Insert a touch in timestamp order (after equal timestamps), then prune. Idempotent.

    `horizon` defaults to the user's watermark after this touch (see the module docstring)."""
    touches = state.touches
    for t in touches:
        if t.event_id == touch.event_id and t.kind == touch.kind:
            return state  # redelivered touch: already known
    i = len(touches)
    while i and touches[i - 1].timestamp > touch.timestamp:
        i -= 1
    touches = (*touches[:i], touch, *touches[i:])
    watermark = max(state.watermark, touch.timestamp)
    horizon = watermark if horizon is None else horizon
    return UserState(_prune_touches(touches, horizon, limits), state.counted, state.processed, watermark, state.held)


def _prune_touches(touches: tuple[Touch, ...], horizon: int, limits: Limits) -> tuple[Touch, ...]:
    view_cutoff = horizon - LONGEST_VIEW_WINDOW_MS
    click_cutoff = horizon - LONGEST_CLICK_WINDOW_MS
    kept: list[Touch] = []
    per_line_item: dict[tuple[int, int, str], int] = {}
    per_advertiser: dict[tuple[int, str], int] = {}
    # Walk newest first so that both caps keep the latest touches.
    for t in reversed(touches):
        if t.timestamp < (click_cutoff if t.kind == "click" else view_cutoff):
            continue
        if t.timestamp <= horizon:
            key = (t.advertiser_id, t.line_item_id, t.kind)
            n = per_line_item.get(key, 0)
            if n >= limits.per_line_item:
                continue
            per_line_item[key] = n + 1
        group = (t.advertiser_id, t.kind)
        n = per_advertiser.get(group, 0)
        if n >= limits.max_touches:
            continue
        per_advertiser[group] = n + 1
        kept.append(t)
    if len(kept) == len(touches):
        return touches
    kept.reverse()
    return tuple(kept)


def record_conversion(
    state: UserState,
    event_id: str,
    timestamp: int,
    counted_pixel: int | None,
    limits: Limits,
    horizon: int | None = None,
) -> UserState:
    """Remember a judged conversion (and, when the repeat rule counted it, its pixel's counter)."""
    watermark = max(state.watermark, timestamp)
    dedup_cutoff = watermark - limits.dedup_retention_ms
    processed = (*(p for p in state.processed if p[1] >= dedup_cutoff), (event_id, timestamp))
    counted = state.counted
    if counted_pixel is not None:
        counted = (*(c for c in counted if c[0] != counted_pixel), (counted_pixel, timestamp))
    touches = _prune_touches(state.touches, watermark if horizon is None else horizon, limits)
    return UserState(touches, counted, processed, watermark, state.held)


def hold(state: UserState, conv: Conversion, tag: int) -> UserState:
    """Park a conversion until it can be judged. Idempotent: a conversion already held or
    already processed leaves the state as it is. Held conversions stay in arrival order."""
    if state.is_held(conv.event_id) or state.has_processed(conv.event_id):
        return state
    return UserState(state.touches, state.counted, state.processed, state.watermark, (*state.held, (conv, tag)))


def take_held(state: UserState, through: int) -> tuple[UserState, list[Conversion]]:
    """Remove and return the held conversions with `timestamp <= through`, in timestamp order
    (arrival order on ties), which is the order they must be judged in."""
    ready = [h for h in state.held if h[0].timestamp <= through]
    if not ready:
        return state, []
    rest = tuple(h for h in state.held if h[0].timestamp > through)
    ready.sort(key=lambda h: h[0].timestamp)  # stable: arrival order on ties
    released = UserState(state.touches, state.counted, state.processed, state.watermark, rest)
    return released, [c for c, _ in ready]
