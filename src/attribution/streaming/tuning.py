"""Client knobs that Faust does not expose as settings, and the event loop the worker runs on.

**Fetch wait and size.** faust-streaming 0.15.3 creates its consumer with `fetch_max_wait_ms=1500`,
hard-coded, and aiokafka's `fetch_min_bytes` of 1. aiokafka keeps one fetch in flight per broker,
and a partition the stream has drained cannot be fetched again until that fetch returns. When the
fetch in flight covers only idle partitions (the tick and re-key topics, a quiet input partition)
the broker holds it for the whole wait, so records of the busy partitions wait that long before the
worker even sees them: the wait is set to `FETCH_MAX_WAIT_MS` (20 ms). With a minimum of one byte,
a caught-up worker would then fetch, and step, about every millisecond, a few records at a time,
paying each batch's fixed cost for them (BENCHMARKS.md, "Live latency": three times the CPU at
2,000 events/s); `FETCH_MIN_BYTES` (16 KiB) lets the broker gather about 20 ms of traffic into
each fetch. Under a backlog every fetch is full anyway; changelog recovery, which reads through
the same consumer, is unaffected.

**A full events queue holds the hand-off.** When a stream's queue passes 80% of its size, Faust
takes the partition out of its fetch set ("buffer full") until the queue drains. aiokafka does not
know: it keeps the records it fetched for that partition, and while any fetched partition of a
broker waits unconsumed it sends no new fetch to that broker for up to its prefetch backoff
(100 ms). Caught up, the events queue briefly passes that mark at most fetches (one fetch hands it
a batch per partition and topic), so every partition then waited up to 100 ms: a third of a live
conversion's latency at 2,000 events/s. `block_when_full` turns the mark off for the events
queue: a full queue makes Faust's hand-off wait for room (Faust's own path for a full queue),
which holds every partition back for as long as the agent needs, no longer.

Both are set on private attributes (aiokafka's fetcher, read each time a fetch request is built;
mode's queue, read at each hand-off); the versions are pinned, and `tune_fetch` and
`block_when_full` report False (and the app logs it) should they ever move.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlQueue

FETCH_MAX_WAIT_MS = 20
FETCH_MIN_BYTES = 16 * 1024


def tune_fetch(app: Any, wait_ms: int = FETCH_MAX_WAIT_MS, min_bytes: int = FETCH_MIN_BYTES) -> bool:
    """Set the app's consumer fetch wait to `wait_ms` and its minimum fetch to `min_bytes`; False
    when the consumer is not started yet or its internals differ from the pinned aiokafka's."""
    thread = getattr(getattr(app, "_consumer", None), "_thread", None)
    fetcher = getattr(getattr(thread, "_consumer", None), "_fetcher", None)
    if fetcher is None or not all(
        isinstance(getattr(fetcher, name, None), int) for name in ("_fetch_max_wait_ms", "_fetch_min_bytes")
    ):
        return False
    fetcher._fetch_max_wait_ms = wait_ms
    fetcher._fetch_min_bytes = min_bytes
    return True


def block_when_full(queue: Any) -> bool:
    """Never stop fetching a partition for this stream queue's pressure: a full queue makes the
    hand-off wait instead (see the module). False when the queue is not mode's `FlowControlQueue`
    of the pinned version."""
    if not isinstance(queue, FlowControlQueue) or not isinstance(
        getattr(type(queue), "pressure_high_size", None), cached_property
    ):
        return False
    queue.pressure_high_size = queue.maxsize + 1  # the queue never holds more than `maxsize`
    return True


def reactivate_buffered(consumer: Any, queue: Any, topics: Collection[str]) -> list[Any]:
    """Resume fetching the partitions of `topics` that Faust stopped for a full stream buffer, once
    that buffer (`queue`) has drained to its low-water mark; returns them.

    Faust removes a partition from its fetch set when the stream's queue fills up and relies on a
    callback the queue fires as it drains to put it back. Across a rebalance that callback can be
    lost (the queue is cleared, the callbacks are rebuilt), and the partition is then never fetched
    again: with two workers, one impressions partition stopped for good and its conversions waited
    for the bounded wait (tests/integration/test_faults.py). Called from the app's 0.2 s timer, this
    does what the callback would have done; a partition put back early only lets the queue grow.
    """
    buffered = getattr(consumer, "_buffered_partitions", None)
    if not buffered or queue.qsize() > queue.pressure_drop_size:
        return []
    stuck = [tp for tp in buffered if tp.topic in topics]
    for tp in stuck:
        consumer.on_buffer_drop(tp)
    return stuck


def fetch_again(consumer: Any, tp: Any) -> None:
    """Put `tp` back in the set of partitions Faust fetches (out of its full-buffer set)."""
    consumer._buffered_partitions.discard(tp)
    consumer._get_active_partitions().add(tp)


def install_event_loop(name: str) -> None:
    """Make `name` (`Settings.event_loop`: uvloop or asyncio) the loop policy, before Faust makes
    its loops (main and consumer thread). ImportError when uvloop is asked for and missing."""
    if name == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")
