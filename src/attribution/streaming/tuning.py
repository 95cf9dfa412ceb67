"""Client knobs that Faust does not expose as settings, and the event loop the worker runs on.

**Fetch wait and size.** faust-streaming 0.15.3 creates its consumer with `fetch_max_wait_ms=1500`,
hard-coded, and aiokafka's `fetch_min_bytes` of 1. aiokafka keeps one fetch in flight per broker,
and a partition the stream has drained cannot be fetched again until that fetch returns. When the
fetch in flight covers only idle partitions (the tick and re-key topics, a quiet input partition)
the broker holds it for the whole wait, so records of the busy partitions wait that long before the
worker even sees them: the wait is set to `FETCH_MAX_WAIT_MS` (20 ms).

With a minimum of one byte, a caught-up worker fetched every few milliseconds, a few records per
partition, and each fetch handed the events stream a batch per partition and topic. A stream
queue at 80% of its size (12 of the events queue's 16 batches) makes Faust take the partition out
of its fetch set; aiokafka keeps the records it already fetched for it, and while any fetched
partition of a broker waits unconsumed it sends that broker no fetch for up to its prefetch
backoff, 100 ms. About one fetch in ten stalled that way, and conversions waited up to 100 ms
more (BENCHMARKS.md, "Live latency"). `FETCH_MIN_BYTES` lets the broker gather up to 20 ms of
traffic into each fetch: fewer, larger batches, and less CPU per event. It was 16 KiB while the
queue's mark was what made live batches larger; now that a busy agent's batches grow by joining
the next fetches (`batches`), the queue stays short and the worker fetches as often as the broker
answers, and 64 KiB took the CPU at 12,000 events/s from 0.93 to 0.81 of a core with p99 131 ->
69 ms (BENCHMARKS.md, "One writer for the states in flight, batches that grow while they wait").
Under a backlog every fetch is full anyway; changelog recovery, which reads through the same
consumer, is unaffected.

Both are set on aiokafka's fetcher (private attributes, read each time a fetch request is built);
the versions are pinned, and `tune_fetch` reports False (and the app logs it) should they ever move.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

FETCH_MAX_WAIT_MS = 20
FETCH_MIN_BYTES = 64 * 1024


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
