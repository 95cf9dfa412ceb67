"""Event-time bookkeeping per input partition: touch watermarks and the index of held conversions.

A conversion of partition p is judged once both touch streams of p (impressions and clicks) have
passed its timestamp, i.e. `conversion.timestamp < min(impressions_wm, clicks_wm)`: with each
partition in timestamp order no touch at or before it can still arrive. Until then it is held in
its user's state (changelogged); this index only says which users to look at, and is rebuilt from
the table after a restart or rebalance. A conversion waits at most `hold_ms` of wall-clock time,
so an idle touch partition cannot stall it.

The touch watermarks themselves are persisted too (a small table, at most five times a second per
partition, from within stream iteration, and by a tick when the touch streams go quiet): after a
restart the touches before the committed offset are not read again, so without them every held
conversion would wait out the bounded wait. A persisted watermark may be `PERSIST_EVERY_S` stale,
which only ever holds a conversion longer.

Wall-clock time is read here (the glue), never in the domain: callers pass `now` in.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

NEVER = -(2**62)
#: Touch watermarks are persisted at most this often per partition (wall-clock seconds): a few
#: small writes a second, against thousands of state writes, and a worker taking a partition over
#: finds a watermark at most this stale (or its conversions wait for the bounded wait).
PERSIST_EVERY_S = 0.2


@dataclass
class PartitionTime:
    impressions: int = NEVER
    clicks: int = NEVER
    conversions: int = NEVER
    #: (timestamp, arrival seq, user key, arrival wall-clock s) of held conversions
    held: list[tuple[int, int, bytes, float]] = field(default_factory=list)
    tick_pending: bool = False
    persisted: tuple[int, int] = (NEVER, NEVER)
    persisted_at: float = float("-inf")

    @property
    def touch_watermark(self) -> int:
        """Every touch of this partition at or before this time has been seen... plus one ms."""
        return min(self.impressions, self.clicks)

    @property
    def horizon(self) -> int:
        """No conversion judged from now on can be earlier than this (see domain.state)."""
        if self.conversions == NEVER:
            return NEVER
        return min(self.conversions, self.held[0][0]) if self.held else self.conversions


class EventTime:
    """Per-partition event time. Not thread-safe; the events agent runs with concurrency 1."""

    def __init__(self, hold_ms: int) -> None:
        self.hold_s = hold_ms / 1000
        self.partitions: dict[int, PartitionTime] = {}
        self._seq = 0

    def of(self, partition: int) -> PartitionTime:
        pt = self.partitions.get(partition)
        if pt is None:
            pt = self.partitions[partition] = PartitionTime()
        return pt

    def saw_touch(self, partition: int, kind: str, timestamp: int) -> int | None:
        """Advance a touch watermark; returns the new `through` for releases when it moved."""
        pt = self.of(partition)
        before = pt.touch_watermark
        if kind == "click":
            pt.clicks = max(pt.clicks, timestamp)
        else:
            pt.impressions = max(pt.impressions, timestamp)
        after = pt.touch_watermark
        if after > before and pt.held and pt.held[0][0] < after:
            return after - 1
        return None

    def saw_conversion(self, partition: int, timestamp: int) -> bool:
        """Record a conversion's arrival; True when it can be judged now, False to hold it."""
        pt = self.of(partition)
        pt.conversions = max(pt.conversions, timestamp)
        return timestamp < pt.touch_watermark and not (pt.held and pt.held[0][0] <= timestamp)

    def held(self, partition: int, timestamp: int, user_key: bytes, now: float) -> None:
        self._seq += 1
        heapq.heappush(self.of(partition).held, (timestamp, self._seq, user_key, now))

    def pop_through(self, partition: int, through: int) -> list[bytes]:
        """Users (in first-release order, without repeats) holding conversions at or before `through`."""
        heap = self.of(partition).held
        users: dict[bytes, None] = {}
        while heap and heap[0][0] <= through:
            users[heapq.heappop(heap)[2]] = None
        return list(users)

    def releasable_through(self, partition: int, now: float) -> int | None:
        """What a tick may release: held conversions the watermark passed (after a restore) or
        that outlived the bounded wait; the latest such timestamp, or None."""
        pt = self.of(partition)
        passed = pt.touch_watermark - 1 if pt.held and pt.held[0][0] < pt.touch_watermark else None
        expired = self.expired_through(partition, now)
        candidates = [t for t in (passed, expired) if t is not None]
        return max(candidates) if candidates else None

    def persist_due(self, partition: int, now: float, every_s: float = PERSIST_EVERY_S) -> tuple[int, int] | None:
        """The watermarks to persist for `partition`, when they moved and `every_s` has passed."""
        pt = self.of(partition)
        current = (pt.impressions, pt.clicks)
        if current == pt.persisted or now - pt.persisted_at < every_s:
            return None
        pt.persisted, pt.persisted_at = current, now
        return current

    def restore(self, partition: int, impressions: int, clicks: int) -> None:
        pt = self.of(partition)
        pt.impressions = max(pt.impressions, impressions)
        pt.clicks = max(pt.clicks, clicks)
        pt.persisted = (pt.impressions, pt.clicks)

    def expired_through(self, partition: int, now: float) -> int | None:
        """The latest timestamp among conversions held longer than the bounded wait, if any."""
        deadline = now - self.hold_s
        expired = [ts for ts, _, _, arrived in self.of(partition).held if arrived <= deadline]
        return max(expired) if expired else None

    def due_ticks(self, now: float) -> list[int]:
        """Partitions that need a tick (none in flight): a held conversion outlived the wait, or the
        touch watermarks moved and were not persisted for `PERSIST_EVERY_S` (the last touches of a
        burst would otherwise stay unpersisted, and a worker taking the partition over would hold
        its conversions for the whole bounded wait)."""
        due = []
        for p, pt in self.partitions.items():
            if pt.tick_pending:
                continue
            release = bool(pt.held) and self.releasable_through(p, now) is not None
            if release or self._unpersisted(pt, now):
                pt.tick_pending = True
                due.append(p)
        return due

    @staticmethod
    def _unpersisted(pt: PartitionTime, now: float) -> bool:
        return (pt.impressions, pt.clicks) != pt.persisted and now - pt.persisted_at >= PERSIST_EVERY_S

    def reset(self) -> None:
        """Forget everything (after a rebalance); the caller re-registers held conversions."""
        self.partitions.clear()
