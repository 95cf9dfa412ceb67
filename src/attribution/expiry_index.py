"""`ExpiryIndex`: which users' states may have expired, per partition, without scanning them all.

Shared by the stream (`streaming.expiry`, on encoded states) and offline `replay` (on decoded
ones); see `streaming.expiry` for how it is used. Pure data structure: no Faust, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: Most index entries looked at per event: a few deletions per event keep up with any rate of
#: new users (each event brings at most one) at a cost per event that stays in microseconds.
CHECKS_PER_EVENT = 8
#: A user a check returns `HELD` for is looked at again this much event time later.
HELD_RECHECK_MS = 60_000
#: What a check returns for a user that must not be deleted now and has no expiry to wait for (the
#: stream's user written by the record being handled).
HELD = 2**62

Check = Callable[[K], int | None]


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

    def due(self, partition: int, horizon: int, check: Check[K]) -> list[K]:
        """Keys of `partition` to delete now: entries before `horizon` whose current expiry, as
        `check` gives it (None: drop the entry, the user is gone or indexed again later; `HELD`: look
        again `HELD_RECHECK_MS` later), is still before it.
        The others are pushed back. At most `checks_per_call` entries are looked at."""
        heap = self.heaps.get(partition)
        expired: list[K] = []
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
