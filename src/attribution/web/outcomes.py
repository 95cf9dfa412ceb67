"""Conversion outcomes as the worker's reporting side keeps them (`app.reports.Outcome`, one small
record per conversion), in a bounded, deduplicated window.

`/stats` and pixel health are built from the *output* topics (attributed and unattributed
conversions), which every worker reads in full: each worker only judges some partitions, but every
worker can report on all of them. Delivery is at least once, so the window keeps the first record
of each `conversion_id` and ignores later copies (they are byte-identical by contract).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator, Sequence

from attribution.app.reports import DAY_MS, MINUTE_MS, Outcome


class OutcomeWindow:
    """The outcomes published in the last `span_ms` (by publish time), at most `max_records` of
    them, each conversion once, grouped by minute of publication so that figures can be summed
    per minute instead of per record (see `app.reports`)."""

    def __init__(self, max_records: int = 200_000, span_ms: int = DAY_MS) -> None:
        self.max_records = max_records
        self.span_ms = span_ms
        self._minutes: dict[int, deque[Outcome]] = {}
        self._order: list[int] = []  # the minutes of `_minutes`, sorted
        self._ids: set[str] = set()  # conversion ids kept
        #: minute -> the window's version when it last changed (unique), so that figures derived
        #: from a minute can be cached until it changes
        self.stamps: dict[int, int] = {}
        #: records read, duplicates among them, records evicted by the size cap
        self.read = 0
        self.duplicates = 0
        self.evicted = 0
        #: bumped on every change
        self.version = 0

    def add(self, outcome: Outcome) -> bool:
        """Keep an outcome; False for a conversion already in the window."""
        self.read += 1
        if outcome.conversion_id in self._ids:
            self.duplicates += 1
            return False
        minute = outcome.published_ms // MINUTE_MS
        bucket = self._minutes.get(minute)
        if bucket is None:
            bucket = self._minutes[minute] = deque()
            bisect.insort(self._order, minute)
        bucket.append(outcome)
        self._ids.add(outcome.conversion_id)
        self._touch(minute)
        while len(self._ids) > self.max_records:
            self._evict_oldest()
        return True

    def prune(self, now_ms: int) -> int:
        """Forget the minutes that ended before `now_ms - span_ms`; how many outcomes went."""
        first_kept = (now_ms - self.span_ms) // MINUTE_MS
        n = 0
        while self._order and self._order[0] < first_kept:
            minute = self._order.pop(0)
            for o in self._minutes.pop(minute):
                self._ids.discard(o.conversion_id)
                n += 1
            self.stamps.pop(minute, None)
            self.version += 1
        return n

    def buckets(self) -> list[tuple[int, Sequence[Outcome]]]:
        """(minute, its outcomes) in time order; a minute is `published_ms // 60000`."""
        return [(m, self._minutes[m]) for m in self._order]

    def __iter__(self) -> Iterator[Outcome]:
        for _, outcomes in self.buckets():
            yield from outcomes

    def __len__(self) -> int:
        return len(self._ids)

    def oldest_ms(self) -> int | None:
        """Publish time of the oldest outcome kept (None when empty)."""
        if not self._order:
            return None
        return min(o.published_ms for o in self._minutes[self._order[0]])

    def _touch(self, minute: int) -> None:
        self.version += 1
        self.stamps[minute] = self.version

    def _evict_oldest(self) -> None:
        minute = self._order[0]
        bucket = self._minutes[minute]
        self._ids.discard(bucket.popleft().conversion_id)
        if not bucket:
            del self._minutes[minute]
            self._order.pop(0)
            self.stamps.pop(minute, None)
        else:
            self._touch(minute)
        self.version += 1
        self.evicted += 1
