"""The cyclic garbage collector, kept from stopping the worker for long.

A worker keeps the decoded states of its recent users (`Processor`, `ATTRIBUTION_STATE_CACHE`
of them): about 20 objects the collector tracks per state (its touches, tuples, the state itself), some
420,000 objects with 20,000 states. CPython 3.11's full collection walks every tracked object with
the event loop standing still: 220 to 460 ms, every 4 s at 7,000 events/s (BENCHMARKS.md, "No
collector pauses, states written behind the outputs"), which was most of the conversions' p99
latency. Yet states are acyclic: reference counting frees them, and the collector never finds
garbage among them.

`Collector.tick(now)` (the app's timer calls it; `now` in seconds, monotonic):

* every `freeze_every_s`, `gc.freeze()` moves every object tracked at that moment to the permanent
  generation, which collections skip, so a full collection walks only what was made since the last
  freeze. A frozen object is still freed by reference counting once released; only garbage
  *cycles* among frozen objects stay;
* every `full_every_s`, `gc.unfreeze()` and one full collection reclaim those cycles: one pause of
  the old length per interval, so the memory they hold is bounded by what the worker makes in one
  interval.

`gc.freeze` and `gc.unfreeze` are O(1) (they splice the collector's lists). The collector's
thresholds are left as they are: young collections stay as frequent and as cheap.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from types import ModuleType

#: Seconds between freezes (the app's timer ticks every 0.2 s): a full collection then walks only
#: what survived since the last tick.
FREEZE_EVERY_S = 0.2
#: Seconds between full collections of everything (cycles among frozen objects included).
FULL_EVERY_S = 900.0


@dataclass(slots=True)
class Collector:
    """When to freeze the collector's objects and when to collect everything (`tick`)."""

    freeze_every_s: float = FREEZE_EVERY_S
    full_every_s: float = FULL_EVERY_S
    gc: ModuleType = field(default=gc, repr=False)  # the `gc` module; replaceable in tests
    _frozen_at: float | None = None
    _full_at: float | None = None
    full_collections: int = 0

    def tick(self, now: float) -> None:
        """Freeze or collect if their time has come (`now`: seconds, monotonic)."""
        if self._full_at is None:
            self._full_at = now
        elif now - self._full_at >= self.full_every_s:
            self._full_at = now
            self.gc.unfreeze()
            self.gc.collect()
            self.full_collections += 1
        if self._frozen_at is None or now - self._frozen_at >= self.freeze_every_s:
            self._frozen_at = now
            self.gc.freeze()

    def frozen(self) -> int:
        """Objects in the permanent generation now (skipped by collections)."""
        count: int = self.gc.get_freeze_count()
        return count
