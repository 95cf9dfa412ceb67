"""What the touch caps know about a user's touches, so that most events skip the full prune.

The full prune (`state._prune_touches`) walks every touch a user holds, newest first, through the
retention windows and the caps. Its output is *settled* as of its horizon: pruned again as of the
same horizon and with the same limits, it keeps every touch and evicts none. A `TouchIndex`
describes a settled touch tuple: which touches are at or before the horizon, how many of them each
(advertiser, line item, kind) and each (advertiser, kind) holds, and the touches' event ids. From
it, the common events are answered without walking the touches:

* a touch at or after every touch at or before the horizon (in-order input): appended, and when
  its line item already holds `per_line_item` touches, the oldest of them evicted, as the full
  prune would;
* a touch after the horizon (a touch stream running ahead of the conversions): inserted, as long
  as the touches ahead stay under `Limits.ahead_bytes` at their largest;
* a conversion's prune and its visible touches: nothing changes.

Whenever the index cannot tell cheaply (a cap per advertiser or per user reached, a touch expired
or crossing the horizon, the horizon moving back, other limits, a touch out of order), the caller
runs the full prune, which gives the same answer by definition, and indexes its output again. A
property test checks that both ways give identical states.

An index is never changed once made: a new state gets a new index (sharing what did not change).
It is only used for the tuple it describes (checked by identity), so a state rebuilt in any other
way simply has none.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from attribution.domain.config import Retention
from attribution.domain.records import Touch

if TYPE_CHECKING:
    from attribution.domain.state import Limits

Tied = tuple[tuple[str, str, int], ...]

#: Touch tuples shorter than this get a *light* index, without counts or ids (about 120 bytes a
#: user): looking at their few touches costs about what the counts save, and most users are light.
MIN_INDEXED = 16


def _timestamp(t: Touch) -> int:
    return t.timestamp


def _behind(touches: tuple[Touch, ...], horizon: int) -> int:
    """How many of `touches` are at or before `horizon`."""
    return bisect_right(touches, horizon, key=_timestamp)


def _group(t: Touch) -> int:
    """(advertiser, kind) as one int, which takes less memory than a tuple."""
    return 2 * t.advertiser_id + (t.kind == "click")


class TouchIndex:
    """A settled touch tuple as of `horizon` with `limits`, and its counts (see the module)."""

    __slots__ = ("behind", "groups", "horizon", "ids", "keys", "limits", "touches")

    def __init__(
        self,
        touches: tuple[Touch, ...],
        limits: Limits,
        horizon: int,
        behind: int,
        keys: dict[int, tuple[Touch, ...]] | None,
        groups: dict[int, int] | None,
        ids: tuple[str, ...] | None,
    ) -> None:
        self.touches = touches
        self.limits = limits
        self.horizon = horizon
        #: `touches[:behind]` are at or before `horizon`, the rest after it.
        self.behind = behind
        #: The touches at or before the horizon per line item (of any advertiser and kind: a line
        #: item has one advertiser, and ints take less memory than tuples), oldest first; None in
        #: a light index (the touches are looked at instead), as are the two below.
        self.keys = keys
        #: How many touches at or before the horizon each (advertiser, kind) holds (`_group`).
        self.groups = groups
        #: `touches`' event ids, in the same order.
        self.ids = ids


def index_of(touches: tuple[Touch, ...], horizon: int, limits: Limits) -> TouchIndex:
    """The index of `touches`, which must be settled as of `horizon` with `limits` (the output of
    the full prune); a light one under `MIN_INDEXED` touches."""
    if len(touches) < MIN_INDEXED:
        behind = len(touches) if not touches or touches[-1].timestamp <= horizon else _behind(touches, horizon)
        return TouchIndex(touches, limits, horizon, behind, None, None, None)
    keys: dict[int, tuple[Touch, ...]] = {}
    groups: dict[int, int] = {}
    behind = 0
    for t in touches:
        if t.timestamp > horizon:
            break
        behind += 1
        keys[t.line_item_id] = (*keys.get(t.line_item_id, ()), t)
        group = _group(t)
        groups[group] = groups.get(group, 0) + 1
    return TouchIndex(touches, limits, horizon, behind, keys, groups, tuple(t.event_id for t in touches))


def usable(index: TouchIndex | None, touches: tuple[Touch, ...], limits: Limits) -> TouchIndex | None:
    """`index` when it describes `touches` under `limits`, else None."""
    if index is None or index.touches is not touches:
        return None
    if index.limits is not limits and index.limits != limits:
        return None
    return index


def _unchanged(index: TouchIndex, horizon: int, retention: Retention) -> bool:
    """Whether the indexed touches stay settled as of `horizon`: it is not before the index's, no
    touch crosses it, and none is past its kind's retention."""
    if horizon < index.horizon:
        return False
    touches, behind = index.touches, index.behind
    if behind < len(touches) and touches[behind].timestamp <= horizon:
        return False
    return not _any_expired(touches, horizon, retention)


def _any_expired(touches: tuple[Touch, ...], horizon: int, retention: Retention) -> bool:
    """Whether one of `touches` (in timestamp order) is past its kind's retention as of `horizon`."""
    view_cutoff, click_cutoff = horizon - retention.view_ms, horizon - retention.click_ms
    safe = max(view_cutoff, click_cutoff)  # a touch at or after this is within either retention
    for t in touches:  # oldest first: only the first few can be old enough to look at
        if t.timestamp >= safe:
            break
        if t.timestamp < (click_cutoff if t.kind == "click" else view_cutoff):
            return True
    return False


def advance(index: TouchIndex, horizon: int, retention: Retention) -> TouchIndex | None:
    """The index of the same touches settled as of a later `horizon` (the full prune would keep
    them all and evict none), or None when the full prune is needed."""
    if not _unchanged(index, horizon, retention):
        return None
    if horizon == index.horizon:
        return index
    t = index
    return TouchIndex(t.touches, t.limits, horizon, t.behind, t.keys, t.groups, t.ids)


def visible(index: TouchIndex, at: int, retention: Retention) -> tuple[Touch, ...] | None:
    """`state.visible_touches` of the indexed touches for a conversion at `at`, or None when the
    full prune is needed."""
    if not _unchanged(index, at, retention):
        return None
    touches, behind = index.touches, index.behind
    return touches if behind == len(touches) else touches[:behind]


def add(
    index: TouchIndex, touch: Touch, horizon: int, retention: Retention, ahead_bytes_max: int
) -> tuple[tuple[Touch, ...], TouchIndex, Tied] | None:
    """`touch` added to the indexed touches and pruned as of `horizon`: (touches, their index, the
    touches evicted on a tie, for `UserState.tied`), or None when the full prune is needed.

    The caller has checked that `touch` is not already there. `ahead_bytes_max` is the most one
    touch after the horizon can count towards `Limits.ahead_bytes`.

    Touches ahead that `horizon` has reached since the index was made are settled first
    (`_settle`), so that a horizon moving forward a little at a time (conversions judged as they
    come, live) does not send every touch to the full prune."""
    tied: Tied = ()
    if not _unchanged(index, horizon, retention):
        settled = _settle(index, horizon, retention)
        if settled is None:
            return None
        index, tied = settled
    touches, behind, limits = index.touches, index.behind, index.limits
    ts = touch.timestamp
    if ts > horizon:
        # After the horizon: only the size of those ahead caps them; the caps apply later.
        if (len(touches) - behind + 1) * ahead_bytes_max > limits.ahead_bytes:
            return None
        i = bisect_right(touches, ts, behind, key=_timestamp)  # after equal timestamps
        new = (*touches[:i], touch, *touches[i:])
        if index.ids is None:
            light = index_of(new, horizon, limits) if len(new) >= MIN_INDEXED else _light(new, index, horizon)
            return new, light, tied
        ids = (*index.ids[:i], touch.event_id, *index.ids[i:])
        return new, TouchIndex(new, limits, horizon, behind, index.keys, index.groups, ids), tied
    added = _add_behind(index, touch, horizon, retention)
    if added is None or (tied and len(added[0]) == len(touches)):
        # A tie recorded while settling, then an eviction (a touch added at the same length): it
        # may evict the touch the first tied with, which undoes that tie, or tie again, whose
        # order in `UserState.tied` is the full prune's to set.
        return None
    return added[0], added[1], tied or added[2]


def _settle(index: TouchIndex, horizon: int, retention: Retention) -> tuple[TouchIndex, Tied] | None:
    """`index` as of a later `horizon` that touches ahead have reached: each of them, oldest first,
    settled as an in-order touch (`_add_behind`, which evicts what the full prune evicts); None
    when the full prune is needed (the horizon moved back, a touch expired, a cap the index does
    not apply, an eviction after a tie)."""
    touches, behind = index.touches, index.behind
    if horizon < index.horizon or _any_expired(touches, horizon, retention):
        return None
    tied: Tied = ()
    while behind < len(touches) and touches[behind].timestamp <= horizon:
        # The first touch ahead, added where it already is: the tuples are rebuilt only when the
        # caps evict a touch.
        t = touches[behind]
        added = _add_behind(
            TouchIndex(touches, index.limits, horizon, behind, index.keys, index.groups, index.ids),
            t,
            horizon,
            retention,
            in_place=True,
        )
        if added is None or (tied and len(added[0]) < len(touches)):
            return None  # an eviction after a tie: the full prune decides (see `add`)
        touches, index, tied = added[0], added[1], tied or added[2]
        behind = index.behind
    if index.horizon != horizon:
        index = TouchIndex(touches, index.limits, horizon, behind, index.keys, index.groups, index.ids)
    return index, tied


def _add_behind(
    index: TouchIndex, touch: Touch, horizon: int, retention: Retention, in_place: bool = False
) -> tuple[tuple[Touch, ...], TouchIndex, Tied] | None:
    """`add` for a touch at or before `horizon`, the index settled as of `horizon` but for the
    touch itself when `in_place` (`_settle`: `touch` is `index.touches[index.behind]`, the first
    touch ahead, which the horizon has reached)."""
    touches, behind, limits = index.touches, index.behind, index.limits
    ts = touch.timestamp
    if ts < horizon - retention.of(touch.kind):
        return None  # dropped at once by the full prune
    if behind and touches[behind - 1].timestamp > ts:
        return None  # out of order: not the newest at or before the horizon
    after = behind + 1 if in_place else behind  # where the touches after the new one start
    if index.keys is None or index.groups is None or index.ids is None:
        return _add_light(index, touch, horizon, after)
    line_item = index.keys.get(touch.line_item_id, ())
    kind, advertiser = touch.kind, touch.advertiser_id
    same = [t for t in line_item if t.kind == kind and t.advertiser_id == advertiser]
    keys = index.keys.copy()
    if len(same) < limits.per_line_item:
        group = _group(touch)
        count = index.groups.get(group, 0)
        if count >= limits.max_touches or behind >= limits.max_user_touches:
            return None
        new = touches if in_place else (*touches[:behind], touch, *touches[behind:])
        ids = index.ids if in_place else (*index.ids[:behind], touch.event_id, *index.ids[behind:])
        keys[touch.line_item_id] = (*line_item, touch)
        groups = index.groups.copy()
        groups[group] = count + 1
        return new, TouchIndex(new, limits, horizon, behind + 1, keys, groups, ids), ()
    if len(same) != limits.per_line_item or not same:
        return None
    # The line item's cap is full: walking newest first, the new touch and all but the oldest of
    # the line item's are kept; the oldest goes. Nothing else moves: the advertiser and user
    # counts stay what they were.
    old, kept = same[0], same[1:]
    kept.append(touch)
    j = bisect_left(touches, old.timestamp, 0, behind, key=_timestamp)
    while touches[j] is not old:
        j += 1
    new = (*touches[:j], *touches[j + 1 : behind], touch, *touches[after:])
    ids = (*index.ids[:j], *index.ids[j + 1 : behind], touch.event_id, *index.ids[after:])
    keys[touch.line_item_id] = (*(t for t in line_item if t is not old), touch)
    tied: Tied = ((old.kind, old.event_id, old.timestamp),) if old.timestamp == kept[0].timestamp else ()
    return new, TouchIndex(new, limits, horizon, behind, keys, index.groups, ids), tied


def _light(touches: tuple[Touch, ...], index: TouchIndex, horizon: int) -> TouchIndex:
    """A light index of `touches`, which have as many touches at or before `horizon` as `index`."""
    return TouchIndex(touches, index.limits, horizon, index.behind, None, None, None)


def _add_light(
    index: TouchIndex, touch: Touch, horizon: int, after: int
) -> tuple[tuple[Touch, ...], TouchIndex, Tied] | None:
    """`add` for a light index: the same rules, counting the few touches at or before the horizon
    (`after`: where the touches after the new one start, `_add_behind`)."""
    touches, behind, limits = index.touches, index.behind, index.limits
    line_item, kind, advertiser = touch.line_item_id, touch.kind, touch.advertiser_id
    same: list[Touch] = []
    count = 0  # of the advertiser and kind
    for t in touches[:behind]:
        if t.advertiser_id == advertiser and t.kind == kind:
            count += 1
            if t.line_item_id == line_item:
                same.append(t)
    tied: Tied = ()
    if len(same) < limits.per_line_item:
        if count >= limits.max_touches or behind >= limits.max_user_touches:
            return None
        new = touches if after > behind else (*touches[:behind], touch, *touches[behind:])
        behind += 1
    elif len(same) == limits.per_line_item and same:
        old = same[0]  # the line item's oldest goes (see `add`)
        j = 0
        while touches[j] is not old:
            j += 1
        new = (*touches[:j], *touches[j + 1 : behind], touch, *touches[after:])
        kept = same[1] if len(same) > 1 else touch
        if old.timestamp == kept.timestamp:
            tied = ((old.kind, old.event_id, old.timestamp),)
    else:
        return None
    if len(new) >= MIN_INDEXED:
        return new, index_of(new, horizon, limits), tied
    return new, TouchIndex(new, limits, horizon, behind, None, None, None), tied
