"""Per-user state and the rules that keep it bounded, over time and in size.

A user's state is what the rules need and nothing more:

* `touches`: the user's touches in timestamp order; equal timestamps stay in processing order, so
  walking the tuple backwards meets "the latest, processed later on ties" first.
* `counted`: `(pixel_id, timestamp)` of the last conversion counted by the repeat rule, per pixel.
* `processed`: `(event_id, timestamp)` of conversions already judged, for deduplication, in the
  order they were judged.
* `held`: conversions the stream holds until the touch streams have passed their timestamp, each
  with an opaque integer tag of the caller's (the stream keeps the source partition there).
* `orders`: `(pixel_id, order_id, timestamp)` of the conversions of pixels with `dedupe_order_id`
  that reached the touch rule or later, for order-id deduplication, in the order remembered.
* `watermark`: the latest event timestamp seen for the user. State depends only on the events and
  on the `horizon` passed in, never on a clock.

Pruning is relative to a **horizon**: a time no conversion judged from now on can precede. Offline
replay judges in timestamp order, so the horizon is the current event's time (the default here is
the user's watermark, the same thing for in-order input); the stream passes the lowest timestamp a
pending or future conversion of the partition can have, so touches that run ahead of a lagging
conversions topic are kept until those conversions are judged.

Every part is bounded; each rule is written once, here (`Limits` holds the figures):

* **Touches by age**: kept for the configuration's retention of their kind (`Config.retention`:
  the longest post-view / post-click window among the pixels, at least the product defaults of
  1 and 14 days, at most 30 and 90) behind the horizon; older ones can never be credited.
* **Touches per line item**: of the touches of one line item and kind (and advertiser, should
  upstream ever disagree with itself) at or before the horizon only the latest `per_line_item`
  are kept: a conversion at or after the horizon can only pick the latest of them, since
  eligibility depends on the line item, the kind and the window, and the latest is the most recent
  within it. Touches after the horizon are all kept. This never changes an answer.
* **Touches per advertiser** (`max_touches`, per advertiser and kind, oldest dropped): one
  advertiser's heavy traffic can only evict that advertiser's own touches.
* **Touches per user** (`max_user_touches`, all advertisers and both kinds, counted separately at
  or before the horizon and after it, so touches running ahead of a lagging conversions stream
  never evict what its held conversions need): over it, the oldest impressions are dropped first,
  then the oldest clicks. Both last-resort caps keep the latest, the
  touches the rules pick; they only change an answer for a user touched by more line items within
  the windows than the caps hold, and clicks (longer windows, preferred by hybrid pixels) are
  protected from floods of impressions.
* **Dedup ids**: kept `dedup_retention_ms` behind the user's watermark, and the latest
  `max_processed` of them (the earliest judged forgotten first). At judgement time an id counts as
  processed only if the conversion is within the retention of it, so the answer never depends on
  when pruning happened.
* **Order ids** (pixels with `dedupe_order_id` only): like dedup ids, kept `dedup_retention_ms`
  behind the user's watermark, at most `max_orders` of them (the earliest remembered forgotten
  first, counted with the dedup ids in `Forgotten`), and only within the retention at judgement.
* **Repeat counters**: a last counted conversion `repeat_retention_ms` (90 days, the longest click
  window) or more before a conversion counts as absent, so "one per user" means one per user
  within 90 days (N-minute rules, N <= 32767 minutes, are unaffected); counters that old behind the
  horizon are pruned, and at most `max_counters` pixels keep one (the oldest dropped).
* **Held conversions** are never pruned here: they are judged, then recorded as above.

A state the engine built carries an index of its touches (`touch_index`), outside its value: with
it, an in-order touch is inserted and a conversion's touches pruned without walking them all, with
the same result as the full walk (`_prune_touches`), which runs whenever the index cannot tell.

`expires_at` gives the event time after which nothing in a state can change any answer: a state
whose `expires_at` is before the horizon can be deleted as a whole. What a cap forgot is counted in
a `Forgotten` tally when the caller passes one (the only mutable object here: the rules never read
it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter

from attribution.domain import touch_index
from attribution.domain.config import DAY_MS, LONGEST_RETENTION, Config, Retention
from attribution.domain.records import Conversion, Touch
from attribution.domain.touch_index import TouchIndex


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on per-user state. Defaults are what the product ships with; with them the largest
    encoded state without held conversions is under `contract.state_codec.MAX_STATE_BYTES`."""

    dedup_retention_ms: int = 7 * DAY_MS
    per_line_item: int = 2
    max_touches: int = 64  # per advertiser and kind
    #: All advertisers and kinds: 128 touches of the longest ids allowed encode to about 213 KB.
    max_user_touches: int = 128
    #: Touches after the horizon are not capped by count (`visible_touches` applies the caps when
    #: a conversion is judged), only by this estimate of their encoded size, newest kept: a last
    #: resort (the stream paces touch partitions to stay near the conversions' event time).
    ahead_bytes: int = 300_000
    #: 256 ids of the longest form allowed (128 characters, each escaped to 6 bytes) encode to
    #: about 201 KB (1,000 would be 787 KB); a typical 36-character id takes 57 bytes.
    max_processed: int = 256
    #: A repeat counter older than this counts as absent: the longest post-click window.
    repeat_retention_ms: int = 90 * DAY_MS
    max_counters: int = 128  # pixels with a repeat counter, per user
    #: Order ids remembered per user (all pixels): 128 of the longest (36 characters, each escaped
    #: to 6 bytes) encode to about 35 KB.
    max_orders: int = 128


class Forgotten:
    """What the caps forgot, summed over the calls it was passed to (for metrics)."""

    __slots__ = ("counters", "dedup_ids", "touches")

    def __init__(self) -> None:
        self.dedup_ids = 0
        self.touches = 0
        self.counters = 0


@dataclass(frozen=True, slots=True)
class UserState:
    touches: tuple[Touch, ...] = ()
    counted: tuple[tuple[int, int], ...] = ()
    processed: tuple[tuple[str, int], ...] = ()
    watermark: int = 0
    held: tuple[tuple[Conversion, int], ...] = ()
    orders: tuple[tuple[int, str, int], ...] = ()
    #: `(kind, event_id, timestamp)` of touches a cap evicted on a timestamp tie with a touch it
    #: kept: a redelivery of one is recognised as such (`add_touch`), at most `MAX_TIED`.
    tied: tuple[tuple[str, str, int], ...] = ()
    #: What the caps know about `touches` (`touch_index`), when the engine built this state: not
    #: part of the value (equality, hash, repr and the codec ignore it), only a shortcut.
    _index: TouchIndex | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_empty(self) -> bool:
        return not (self.touches or self.counted or self.processed or self.held or self.orders)

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
_event_id = attrgetter("event_id")
_DEFAULT_LIMITS = Limits()


def is_duplicate(state: UserState, conv: Conversion, limits: Limits) -> bool:
    """Rule 1: the conversion's id was judged within the dedup retention of its timestamp."""
    eid, ts, retention = conv.event_id, conv.timestamp, limits.dedup_retention_ms
    return any(e == eid and ts - t <= retention for e, t in state.processed)


def is_duplicate_order(state: UserState, pixel_id: int, conv: Conversion, limits: Limits) -> bool:
    """Order-id rule: this user sent the conversion's `order_id` for this pixel before, in a
    conversion that reached the touch rule or later, within the dedup retention of its timestamp.
    A conversion without `order_id` is never a duplicate by order."""
    order, ts, retention = conv.order_id, conv.timestamp, limits.dedup_retention_ms
    if order is None:
        return False
    return any(p == pixel_id and o == order and ts - t <= retention for p, o, t in state.orders)


def last_counted_within(state: UserState, pixel_id: int, timestamp: int, limits: Limits) -> int | None:
    """Rule 7's last counted conversion of the pixel, or None when there is none less than the
    repeat retention before `timestamp`."""
    last = state.last_counted(pixel_id)
    if last is None or timestamp - last >= limits.repeat_retention_ms:
        return None
    return last


def add_touch(
    state: UserState,
    touch: Touch,
    limits: Limits,
    horizon: int | None = None,
    retention: Retention = LONGEST_RETENTION,
    forgotten: Forgotten | None = None,
) -> UserState:
    """Insert a touch in timestamp order (after equal timestamps), then prune. Idempotent.

    `horizon` defaults to the user's watermark after this touch (see the module docstring)."""
    touches = state.touches
    index = touch_index.usable(state._index, touches, limits)
    event_id = touch.event_id
    if event_id in (map(_event_id, touches) if index is None or index.ids is None else index.ids):
        for t in touches:
            if t.event_id == event_id and t.kind == touch.kind:
                return state  # redelivered touch: already known
    for kind, tied_id, _ in state.tied:
        if tied_id == event_id and kind == touch.kind:
            # Redelivered after a cap evicted it on a tie: inserted again it would come after the
            # touches it tied with, as if processed later, and could win over them.
            return state
    watermark = max(state.watermark, touch.timestamp)
    horizon = watermark if horizon is None else horizon
    added = None if index is None else touch_index.add(index, touch, horizon, retention, _TOUCH_BYTES_MAX)
    if added is not None:
        pruned, index, tied = added
    else:
        i = len(touches)
        while i and touches[i - 1].timestamp > touch.timestamp:
            i -= 1
        evicted: list[tuple[str, str, int]] = []
        pruned = _prune_touches((*touches[:i], touch, *touches[i:]), horizon, limits, retention, forgotten, evicted)
        index, tied = touch_index.index_of(pruned, horizon, limits), tuple(evicted)
    return _state(
        pruned,
        state.counted,
        state.processed,
        watermark,
        state.held,
        state.orders,
        _tied(state, tied, horizon, retention),
        index,
    )


def _state(
    touches: tuple[Touch, ...],
    counted: tuple[tuple[int, int], ...],
    processed: tuple[tuple[str, int], ...],
    watermark: int,
    held: tuple[tuple[Conversion, int], ...],
    orders: tuple[tuple[int, str, int], ...],
    tied: tuple[tuple[str, str, int], ...],
    index: TouchIndex | None,
) -> UserState:
    """A `UserState` with the index of its touches (None: without)."""
    state = UserState(touches, counted, processed, watermark, held, orders, tied)
    if index is not None:
        object.__setattr__(state, "_index", index)  # a frozen dataclass's own way to set a field
    return state


#: Tie-evicted touches remembered per user (`UserState.tied`), the latest kept.
MAX_TIED = 8


def _tied(
    state: UserState, new: tuple[tuple[str, str, int], ...], horizon: int, retention: Retention
) -> tuple[tuple[str, str, int], ...]:
    """`state.tied` with `new` added, without those past their kind's retention, at most `MAX_TIED`."""
    if not new and not state.tied:
        return ()
    view_cutoff, click_cutoff = horizon - retention.view_ms, horizon - retention.click_ms
    if not new and all(x[2] >= (click_cutoff if x[0] == "click" else view_cutoff) for x in state.tied):
        return state.tied  # nothing added, nothing past its retention: the common case, shared
    known = {(k, e) for k, e, _ in state.tied}
    merged = [*state.tied, *(n for n in new if (n[0], n[1]) not in known)]
    kept = [x for x in merged if x[2] >= (click_cutoff if x[0] == "click" else view_cutoff)]
    if len(kept) > MAX_TIED:
        kept = sorted(kept, key=lambda x: x[2])[-MAX_TIED:]
    return tuple(kept)


def _prune_touches(
    touches: tuple[Touch, ...],
    horizon: int,
    limits: Limits,
    retention: Retention,
    forgotten: Forgotten | None,
    tied: list[tuple[str, str, int]] | None = None,
) -> tuple[Touch, ...]:
    """The touches kept as of `horizon` (see the module docstring). With `tied`, the touches the
    per-line-item and per-advertiser caps evict on a timestamp tie with the oldest touch they keep
    are added to it."""
    oldest_kept: dict[tuple[int, int, str] | tuple[int, str], int] = {}
    view_cutoff = horizon - retention.view_ms
    click_cutoff = horizon - retention.click_ms
    kept: list[Touch] = []
    per_line_item: dict[tuple[int, int, str], int] = {}
    per_advertiser: dict[tuple[int, str], int] = {}
    capped = 0
    ahead: list[Touch] = []  # touches after the horizon, newest first
    # Walk newest first so that every cap keeps the latest touches.
    for t in reversed(touches):
        if t.timestamp < (click_cutoff if t.kind == "click" else view_cutoff):
            continue
        if t.timestamp > horizon:
            # Ahead of every conversion still to be judged (a touch stream running ahead of a
            # lagging conversions stream): the caps below are applied to them when a conversion
            # is judged (`visible_touches`), so that they never evict what it needs.
            ahead.append(t)
            continue
        key = (t.advertiser_id, t.line_item_id, t.kind)
        n = per_line_item.get(key, 0)
        if n >= limits.per_line_item:
            if tied is not None and oldest_kept.get(key) == t.timestamp:
                tied.append((t.kind, t.event_id, t.timestamp))
            continue
        per_line_item[key] = n + 1
        group = (t.advertiser_id, t.kind)
        n = per_advertiser.get(group, 0)
        if n >= limits.max_touches:
            capped += 1
            if tied is not None and oldest_kept.get(group) == t.timestamp:
                tied.append((t.kind, t.event_id, t.timestamp))
            continue
        per_advertiser[group] = n + 1
        if tied is not None:
            oldest_kept[key] = oldest_kept[group] = t.timestamp  # walking newest first
        kept.append(t)
    if len(kept) > limits.max_user_touches:
        before = len(kept)
        kept = _cap_impressions_first(kept, limits.max_user_touches)
        capped += before - len(kept)
    if len(ahead) * _TOUCH_BYTES_MAX > limits.ahead_bytes:
        # A last resort for the record's size: a user with this many touches ahead of the
        # conversions is a bot, or the touch stream is far ahead.
        used = 0
        for i, t in enumerate(ahead):
            used += touch_bytes(t)
            if used > limits.ahead_bytes:
                capped += len(ahead) - i
                del ahead[i:]
                break
    kept = ahead + kept  # newest first, as walked
    if capped and forgotten is not None:
        forgotten.touches += capped
    if len(kept) == len(touches):
        return touches
    kept.reverse()
    return tuple(kept)


#: The most a touch's integers and punctuation take encoded; `touch_bytes` adds its two ids, escaped
#: as JSON would at worst; and the most any touch takes (ids of 128 characters, all escaped).
_TOUCH_BYTES_FIXED = 130
_TOUCH_BYTES_MAX = _TOUCH_BYTES_FIXED + 2 * 6 * 128


def touch_bytes(t: Touch) -> int:
    """An upper bound of a touch's encoded size (bytes): ids of printable ASCII count once, others
    as if every character were escaped (6 bytes)."""
    size = _TOUCH_BYTES_FIXED
    for text in (t.event_id, t.auction_id):
        size += len(text) if text.isascii() and text.isprintable() else 6 * len(text)
    return size


def visible_touches(touches: tuple[Touch, ...], at: int, limits: Limits, retention: Retention) -> tuple[Touch, ...]:
    """The touches a conversion at `at` may be credited to: those at or before it, pruned as of
    `at` (windows and caps), as they would have been had every event been handled in timestamp
    order (what `replay` does: there this changes nothing). The stream keeps touches that ran
    ahead of the conversions uncapped (`_prune_touches`), so a flood of later touches can never
    evict the one an earlier conversion is credited to, and caps them here as of its time."""
    if not touches or touches[0].timestamp > at:
        return ()
    if touches[-1].timestamp > at:
        touches = tuple(t for t in touches if t.timestamp <= at)
    return _prune_touches(touches, at, limits, retention, None)


def visible_touches_of(state: UserState, at: int, limits: Limits, retention: Retention) -> tuple[Touch, ...]:
    """`visible_touches(state.touches, ...)`, from the touches' index when it can tell."""
    index = touch_index.usable(state._index, state.touches, limits)
    if index is not None:
        touches = touch_index.visible(index, at, retention)
        if touches is not None:
            return touches
    return visible_touches(state.touches, at, limits, retention)


def _cap_impressions_first(newest_first: list[Touch], cap: int) -> list[Touch]:
    """The latest `cap` touches, taking clicks before impressions (newest first in and out)."""
    clicks = min(cap, sum(1 for t in newest_first if t.kind == "click"))
    impressions = cap - clicks
    kept: list[Touch] = []
    for t in newest_first:
        if t.kind == "click":
            if clicks:
                clicks -= 1
                kept.append(t)
        elif impressions:
            impressions -= 1
            kept.append(t)
    return kept


def record_conversion(
    state: UserState,
    event_id: str,
    timestamp: int,
    counted_pixel: int | None,
    limits: Limits,
    horizon: int | None = None,
    retention: Retention = LONGEST_RETENTION,
    forgotten: Forgotten | None = None,
    order: tuple[int, str] | None = None,
) -> UserState:
    """Remember a judged conversion (and, when the repeat rule counted it, its pixel's counter;
    and `order`, `(pixel_id, order_id)`, for the order-id rule when given)."""
    watermark = max(state.watermark, timestamp)
    horizon = watermark if horizon is None else horizon
    dedup_cutoff = watermark - limits.dedup_retention_ms
    processed = (*(p for p in state.processed if p[1] >= dedup_cutoff), (event_id, timestamp))
    if len(processed) > limits.max_processed:
        if forgotten is not None:
            forgotten.dedup_ids += len(processed) - limits.max_processed
        processed = processed[-limits.max_processed :]  # the earliest judged are forgotten first
    counted = state.counted
    if counted_pixel is not None:
        counted = (*(c for c in counted if c[0] != counted_pixel), (counted_pixel, timestamp))
    counted = _prune_counters(counted, horizon, limits, forgotten)
    touches, index, tied = _touches_as_of(state, horizon, limits, retention, forgotten)
    orders = state.orders
    if order is not None or orders:
        orders = tuple(o for o in orders if o[2] >= dedup_cutoff and o[:2] != order)
        if order is not None:
            orders = (*orders, (order[0], order[1], timestamp))
        if len(orders) > limits.max_orders:
            if forgotten is not None:
                forgotten.dedup_ids += len(orders) - limits.max_orders
            orders = orders[-limits.max_orders :]  # the earliest remembered are forgotten first
    return _state(
        touches, counted, processed, watermark, state.held, orders, _tied(state, tied, horizon, retention), index
    )


def _touches_as_of(
    state: UserState, horizon: int, limits: Limits, retention: Retention, forgotten: Forgotten | None
) -> tuple[tuple[Touch, ...], TouchIndex | None, tuple[tuple[str, str, int], ...]]:
    """`state`'s touches pruned as of `horizon`, their index, and the touches evicted on a tie."""
    index = touch_index.usable(state._index, state.touches, limits)
    if index is not None:
        advanced = touch_index.advance(index, horizon, retention)
        if advanced is not None:
            return state.touches, advanced, ()
    evicted: list[tuple[str, str, int]] = []
    touches = _prune_touches(state.touches, horizon, limits, retention, forgotten, evicted)
    return touches, touch_index.index_of(touches, horizon, limits), tuple(evicted)


def _prune_counters(
    counted: tuple[tuple[int, int], ...], horizon: int, limits: Limits, forgotten: Forgotten | None
) -> tuple[tuple[int, int], ...]:
    # A counter at or before this cannot matter to a conversion at or after the horizon.
    cutoff = horizon - limits.repeat_retention_ms
    if any(ts <= cutoff for _, ts in counted):
        counted = tuple(c for c in counted if c[1] > cutoff)
    excess = len(counted) - limits.max_counters
    if excess > 0:
        dropped = set(sorted(counted, key=lambda c: c[1])[:excess])  # the oldest
        counted = tuple(c for c in counted if c not in dropped)
        if forgotten is not None:
            forgotten.counters += excess
    return counted


def expires_at(state: UserState, config: Config, limits: Limits = _DEFAULT_LIMITS) -> int | None:
    """The event time after which nothing in `state` can change any answer, or None while it holds
    conversions (those are never expired). A state whose `expires_at` is before the horizon can be
    deleted without changing any output: touches past their kind's retention are never credited,
    dedup ids and repeat counters past theirs are absent to rule 1 and rule 7. An empty state
    expires at its watermark."""
    if state.held:
        return None
    return latest_use(state, config.retention, limits)


def latest_use(state: UserState, retention: Retention, limits: Limits) -> int:
    """`expires_at` ignoring held conversions."""
    latest = state.watermark if state.is_empty else -(2**62)
    view, click = retention.view_ms, retention.click_ms
    longest = max(view, click)
    # Touches are in timestamp order: newest first, stop once no older touch can count longer.
    for t in reversed(state.touches):
        if t.timestamp + longest <= latest:
            break
        latest = max(latest, t.timestamp + (click if t.kind == "click" else view))
    return _latest_id_use(state, latest, limits)


def latest_use_floor(state: UserState, retention: Retention, limits: Limits) -> int:
    """A time at or before `latest_use`, in time that does not grow with the touches a user holds:
    the newest touch counts its own kind's retention, older ones are not looked at (an older click
    can outlive a newer impression). Exact for a state without touches."""
    touches = state.touches
    if not touches:
        return latest_use(state, retention, limits)
    newest = touches[-1]
    latest = newest.timestamp + (retention.click_ms if newest.kind == "click" else retention.view_ms)
    return _latest_id_use(state, latest, limits)


def _latest_id_use(state: UserState, latest: int, limits: Limits) -> int:
    """`latest`, or later when a dedup id, an order id or a repeat counter of `state` outlives it."""
    if state.processed:
        latest = max(latest, max(ts for _, ts in state.processed) + limits.dedup_retention_ms)
    if state.counted:
        latest = max(latest, max(ts for _, ts in state.counted) + limits.repeat_retention_ms)
    if state.orders:
        latest = max(latest, max(ts for _, _, ts in state.orders) + limits.dedup_retention_ms)
    return latest


def compact(state: UserState, horizon: int, retention: Retention, limits: Limits) -> UserState:
    """`state` without the parts no conversion at or after `horizon` can use: touches past their
    kind's retention, dedup and order ids past the dedup retention, repeat counters past theirs
    (the parts `latest_use` times out). The rules already ignore each of them, so this never
    changes an answer; it only shrinks what a quiet user keeps. `state` itself when nothing goes."""
    view_cutoff, click_cutoff = horizon - retention.view_ms, horizon - retention.click_ms
    dedup_cutoff = horizon - limits.dedup_retention_ms
    counter_cutoff = horizon - limits.repeat_retention_ms
    touches = tuple(t for t in state.touches if t.timestamp >= (click_cutoff if t.kind == "click" else view_cutoff))
    processed = tuple(p for p in state.processed if p[1] >= dedup_cutoff)
    orders = tuple(o for o in state.orders if o[2] >= dedup_cutoff)
    counted = tuple(c for c in state.counted if c[1] > counter_cutoff)
    tied = tuple(x for x in state.tied if x[2] >= (click_cutoff if x[0] == "click" else view_cutoff))
    if (len(touches), len(processed), len(orders), len(counted), len(tied)) == (
        len(state.touches),
        len(state.processed),
        len(state.orders),
        len(state.counted),
        len(state.tied),
    ):
        return state
    return UserState(touches, counted, processed, state.watermark, state.held, orders, tied)


def next_change(state: UserState, retention: Retention, limits: Limits) -> int | None:
    """The earliest horizon past which `compact` drops something from `state` (None: nothing)."""
    view, click = retention.view_ms, retention.click_ms
    times = [t.timestamp + (click if t.kind == "click" else view) for t in state.touches]
    times += [ts + limits.dedup_retention_ms for _, ts in state.processed]
    times += [ts + limits.dedup_retention_ms for _, _, ts in state.orders]
    times += [ts + limits.repeat_retention_ms for _, ts in state.counted]
    return min(times) if times else None


def hold(state: UserState, conv: Conversion, tag: int, limits: Limits = _DEFAULT_LIMITS) -> UserState:
    """Park a conversion until it can be judged. Idempotent: a conversion already held or
    already processed (rule 1) leaves the state as it is. Held conversions stay in arrival order."""
    if state.is_held(conv.event_id) or is_duplicate(state, conv, limits):
        return state
    held = (*state.held, (conv, tag))
    return _state(
        state.touches, state.counted, state.processed, state.watermark, held, state.orders, state.tied, state._index
    )


def take_held(state: UserState, through: int) -> tuple[UserState, list[Conversion]]:
    """Remove and return the held conversions with `timestamp <= through`, in timestamp order
    (arrival order on ties), which is the order they must be judged in."""
    ready = [h for h in state.held if h[0].timestamp <= through]
    if not ready:
        return state, []
    rest = tuple(h for h in state.held if h[0].timestamp > through)
    ready.sort(key=lambda h: h[0].timestamp)  # stable: arrival order on ties
    released = _state(
        state.touches, state.counted, state.processed, state.watermark, rest, state.orders, state.tied, state._index
    )
    return released, [c for c, _ in ready]
