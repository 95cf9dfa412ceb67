"""Conversion outcomes as the reporting side keeps them: one small record per conversion, in a
bounded, deduplicated window.

`/stats` and pixel health are built from the *output* topics (attributed and unattributed
conversions), which every worker reads in full: each worker only judges some partitions, but every
worker can report on all of them. Delivery is at least once, so the window keeps the first record
of each `conversion_id` and ignores later copies (they are byte-identical by contract).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

DAY_MS = 86_400_000


class Outcome(NamedTuple):
    """One conversion's outcome. `kind` is `post_click` / `post_view` for attributed conversions,
    else the unattributed reason. `published_ms` is when the worker published it (the Kafka record
    timestamp): the clock of every reporting window."""

    conversion_id: str
    pixel_id: int
    kind: str
    attributed: bool
    conversion_ms: int
    published_ms: int
    value: float | None = None
    booked_revenue: float | None = None
    latency_ms: int | None = None


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def parse_outcome(topic: str, raw: bytes | None, published_ms: int) -> Outcome | None:
    """An output record (default topic name) as an Outcome; None when it is not one (a foreign or
    damaged record never stops reporting)."""
    if raw is None:
        return None
    try:
        d = orjson.loads(raw)
        conversion_id = d["conversion_id"]
        pixel_id = d["pixel_id"]
        conversion_ms = d["conversion_timestamp"]
        if not isinstance(conversion_id, str) or not isinstance(pixel_id, int) or not isinstance(conversion_ms, int):
            return None
        if topic == "attributed-conversions":
            latency = d.get("latency_ms")
            return Outcome(
                conversion_id,
                pixel_id,
                str(d["attribution"]),
                True,
                conversion_ms,
                published_ms,
                _number(d.get("value")),
                _number(d.get("booked_revenue")),
                latency if isinstance(latency, int) else None,
            )
        if topic == "unattributed-conversions":
            return Outcome(conversion_id, pixel_id, str(d["reason"]), False, conversion_ms, published_ms)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return None


class OutcomeWindow:
    """The outcomes published in the last `span_ms` (by publish time), at most `max_records` of
    them, each conversion once. Oldest first (arrival order)."""

    def __init__(self, max_records: int = 200_000, span_ms: int = DAY_MS) -> None:
        self.max_records = max_records
        self.span_ms = span_ms
        self._records: OrderedDict[str, Outcome] = OrderedDict()
        #: records read, duplicates among them, records evicted by the size cap
        self.read = 0
        self.duplicates = 0
        self.evicted = 0
        #: bumped on every change, so derived figures can be cached until the next one
        self.version = 0

    def add(self, outcome: Outcome) -> bool:
        """Keep an outcome; False for a conversion already in the window."""
        self.read += 1
        if outcome.conversion_id in self._records:
            self.duplicates += 1
            return False
        self._records[outcome.conversion_id] = outcome
        self.version += 1
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)
            self.evicted += 1
        return True

    def prune(self, now_ms: int) -> int:
        """Forget outcomes published before `now_ms - span_ms` (from the oldest end); how many."""
        cutoff = now_ms - self.span_ms
        n = 0
        while self._records:
            oldest = next(iter(self._records.values()))
            if oldest.published_ms >= cutoff:
                break
            self._records.popitem(last=False)
            n += 1
        if n:
            self.version += 1
        return n

    def __iter__(self) -> Iterator[Outcome]:
        # Callers iterate synchronously (no await in between), so no copy is needed.
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def oldest_ms(self) -> int | None:
        """Publish time of the oldest outcome kept (None when empty)."""
        return next(iter(self._records.values())).published_ms if self._records else None
