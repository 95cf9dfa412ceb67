"""The cyclic garbage collector, kept from stopping the worker for long.

A worker keeps the decoded states of its recent users (`Processor`, `ATTRIBUTION_STATE_CACHE`
of them): about 20 objects the collector tracks per state (its touches, tuples, the state itself), some
420,000 objects with 20,000 states, two million with 100,000. CPython 3.11's full collection walks every tracked object with
the event loop standing still: 220 to 460 ms, every 4 s at 7,000 events/s (BENCHMARKS.md, "No
collector pauses, states written behind the outputs"), which was most of the conversions' p99
latency. Yet states are acyclic: reference counting frees them, and the collector never finds
garbage among them.

`Collector.tick(now)` (the app's timer calls it; `now` in seconds, monotonic):

* every `freeze_every_s`, `gc.freeze()` moves every object tracked at that moment to the permanent
  generation, which collections skip, so a full collection walks only what was made since the last
  freeze. A frozen object is still freed by reference counting once released; only garbage
  *cycles* among frozen objects stay;
* every `full_every_s` at first, `gc.unfreeze()` and one full collection reclaim those cycles:
  one pause of the old length per interval, so the memory they hold is bounded by what the worker
  makes in one interval. A full collection that finds (almost) nothing doubles the interval, up
  to `FULL_EVERY_MAX_S`; one that finds garbage sets it back. The worker makes no garbage cycles
  in steady traffic (every full collection measured freed 0 objects, BENCHMARKS.md), and the
  pause grows with the decoded states kept (2.2 s with 100,000), so it comes rarely once the
  worker has shown it needs none.

`gc.freeze` and `gc.unfreeze` are O(1) (they splice the collector's lists). The collector's
thresholds are left as they are: young collections stay as frequent and as cheap.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

#: Seconds between freezes (the app's timer ticks every 0.2 s): a full collection then walks only
#: what survived since the last tick.
FREEZE_EVERY_S = 0.2
#: Seconds between full collections of everything (cycles among frozen objects included), at
#: first and after one that found garbage.
FULL_EVERY_S = 900.0
#: The longest interval between full collections (seconds), reached by doubling.
FULL_EVERY_MAX_S = 86_400.0
#: A full collection freeing fewer objects than this found nothing worth its pause.
FEW_FREED = 1000


@dataclass(slots=True)
class Collector:
    """When to freeze the collector's objects and when to collect everything (`tick`)."""

    freeze_every_s: float = FREEZE_EVERY_S
    full_every_s: float = FULL_EVERY_S
    full_every_max_s: float = FULL_EVERY_MAX_S
    gc: ModuleType = field(default=gc, repr=False)  # the `gc` module; replaceable in tests
    #: measures the full collection's pause (seconds); replaceable in tests
    stopwatch: Callable[[], float] = field(default=time.perf_counter, repr=False)
    _frozen_at: float | None = None
    _full_at: float | None = None
    #: seconds until the next full collection (from `full_every_s`, doubled while they find little)
    interval_s: float = 0.0
    full_collections: int = 0
    #: the last full collection: how long the worker stood still (ms), what it freed (objects)
    last_full_ms: float = 0.0
    last_full_freed: int = 0

    def tick(self, now: float) -> bool:
        """Freeze or collect if their time has come (`now`: seconds, monotonic); True when a full
        collection ran (`last_full_ms`, `last_full_freed`)."""
        full = False
        if self._full_at is None:
            self._full_at = now
            self.interval_s = self.full_every_s
        elif now - self._full_at >= self.interval_s:
            self._full_at = now
            started = self.stopwatch()
            self.gc.unfreeze()
            self.last_full_freed = self.gc.collect()
            self.last_full_ms = (self.stopwatch() - started) * 1000
            self.full_collections += 1
            full = True
            if self.last_full_freed < FEW_FREED:
                self.interval_s = min(2 * self.interval_s, self.full_every_max_s)
            else:
                self.interval_s = self.full_every_s
        if self._frozen_at is None or now - self._frozen_at >= self.freeze_every_s:
            self._frozen_at = now
            self.gc.freeze()
        return full

    def frozen(self) -> int:
        """Objects in the permanent generation now (skipped by collections)."""
        count: int = self.gc.get_freeze_count()
        return count
