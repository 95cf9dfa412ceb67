"""`ExpiryIndex`: which users' states may have expired, per partition, without scanning them all.

Shared by the stream (`streaming.expiry`, on encoded states) and offline `replay` (on decoded
ones); see `streaming.expiry` for how it is used. Pure data structure: no Faust, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, MutableMapping
from typing import Generic, TypeVar

from attribution.domain import Limits, UserState
from attribution.domain.config import Retention
from attribution.domain.state import compact, latest_use, next_change

K = TypeVar("K", bound=Hashable)

#: Most index entries looked at per event: a few deletions per event keep up with any rate of
#: new users (each event brings at most one) at a cost per event that stays in microseconds.
CHECKS_PER_EVENT = 8
#: A user a check returns `HELD` for is looked at again this much event time later.
HELD_RECHECK_MS = 60_000
#: What a check returns for a user that must not be deleted now and has no expiry to wait for (the
#: stream's user written by the record being handled).
HELD = 2**62

#: A quiet user whose state only partly expired is compacted (`due_state`) and looked at again no
#: sooner than this much event time later: at most one rewrite of its state per day.
COMPACT_STEP_MS = 86_400_000

Check = Callable[[K], int | None]


def first_look(state: UserState, retention: Retention, limits: Limits) -> int:
    """When to look at a new user first: when the first part of its state expires."""
    change = next_change(state, retention, limits)
    return latest_use(state, retention, limits) if change is None else change


def due_state(state: UserState, horizon: int, retention: Retention, limits: Limits) -> tuple[int, UserState]:
    """For a user whose index entry came due at `horizon`: (when to look again, the state to keep).

    When to look again is before `horizon` when the whole state expired (delete it). Otherwise the
    state to keep is `state` without what expired (`domain.state.compact`; write it back when it
    is not `state`), looked at again when more of it expires, but not sooner than
    `COMPACT_STEP_MS`, nor later than when all of it does."""
    latest = latest_use(state, retention, limits)
    if latest < horizon:
        return latest, state
    kept = compact(state, horizon, retention, limits)
    change = next_change(kept, retention, limits)
    look = horizon + COMPACT_STEP_MS if change is None else max(change, horizon + COMPACT_STEP_MS)
    return min(look, latest), kept


class ExpiryIndex(Generic[K]):
    """Per partition, a heap of (expires, key) of the users to look at. Not thread-safe."""

    def __init__(self, checks_per_call: int = CHECKS_PER_EVENT) -> None:
        self.heaps: dict[int, list[tuple[int, K]]] = {}
        self.checks_per_call = checks_per_call

    def add(self, partition: int, key: K, expires: int) -> None:
        """Index a user whose state was just created (or found in the table after recovery)."""
        heap = self.heaps.get(partition)
        if heap is None:
            heap = self.heaps[partition] = []
        heapq.heappush(heap, (expires, key))

    def any_due(self, partition: int, horizon: int) -> bool:
        """Cheap test for the hot path: is some entry of `partition` before `horizon`?"""
        heap = self.heaps.get(partition)
        return bool(heap) and heap[0][0] < horizon  # type: ignore[index]

    def due(self, partition: int, horizon: int, check: Check[K], checks: int | None = None) -> list[K]:
        """Keys of `partition` to delete now: entries before `horizon` whose current expiry, as
        `check` gives it (None: drop the entry, the user is gone or indexed again later; `HELD`: look
        again `HELD_RECHECK_MS` later), is still before it.
        The others are pushed back. At most `checks` entries are looked at (default
        `checks_per_call`)."""
        heap = self.heaps.get(partition)
        expired: list[K] = []
        if checks is None:
            checks = self.checks_per_call
        while heap and heap[0][0] < horizon and checks:
            checks -= 1
            _, key = heapq.heappop(heap)
            expires = check(key)
            if expires is None:
                continue  # no longer in the table: nothing to index
            if expires >= HELD:
                heapq.heappush(heap, (horizon + HELD_RECHECK_MS, key))
            elif expires < horizon:
                expired.append(key)
            else:
                heapq.heappush(heap, (expires, key))
        return expired

    def replace(self, entries: dict[int, list[tuple[int, K]]]) -> None:
        """Replace the whole index by these (expires, key) entries per partition (in any order)."""
        for heap in entries.values():
            heapq.heapify(heap)
        self.heaps = entries

    def __len__(self) -> int:
        return sum(len(h) for h in self.heaps.values())

    def clear(self) -> None:
        self.heaps.clear()


def expire_due(
    index: ExpiryIndex[K],
    states: MutableMapping[K, UserState],
    horizon: int,
    retention: Retention,
    limits: Limits,
    partition: int = 0,
) -> list[K]:
    """For a map of decoded states (`replay`, benchmarks): delete the users of `partition` whose
    state expired before `horizon`, compact those whose state partly did (`due_state`); returns
    the keys deleted."""
    if not index.any_due(partition, horizon):
        return []

    def check(key: K) -> int | None:
        state = states.get(key)
        if state is None:
            return None
        look, kept = due_state(state, horizon, retention, limits)
        if kept is not state:
            states[key] = kept
        return look

    gone = index.due(partition, horizon, check)
    for key in gone:
        del states[key]
    return gone
