"""Client knobs that Faust does not expose as settings, and the event loop the worker runs on.

**Fetch wait.** faust-streaming 0.15.3 creates its consumer with `fetch_max_wait_ms=1500`, hard-coded.
aiokafka keeps one fetch in flight per broker, and a partition the stream has drained cannot be
fetched again until that fetch returns. When the fetch in flight covers only idle partitions (the
tick and re-key topics, a quiet input partition) the broker holds it for the whole 1.5 s, so records
of the busy partitions wait that long before the worker even sees them. A wait of 100 ms takes
that delay from seconds to milliseconds, and also shortens changelog recovery, which reads through
the same consumer; shorter waits cost throughput under a backlog (more empty fetches of the idle
partitions). The measured figures: BENCHMARKS.md ("Optimizations", shorter consumer fetch wait).

The value is set on aiokafka's fetcher (a private attribute, read each time a fetch request is
built); the versions are pinned, and `shorten_fetch_wait` reports False (and the app logs it)
should the attribute ever move.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

FETCH_MAX_WAIT_MS = 100


def shorten_fetch_wait(app: Any, ms: int = FETCH_MAX_WAIT_MS) -> bool:
    """Set the app's consumer fetch wait to `ms`; False when the consumer is not started yet or
    its internals differ from the pinned aiokafka's."""
    thread = getattr(getattr(app, "_consumer", None), "_thread", None)
    fetcher = getattr(getattr(thread, "_consumer", None), "_fetcher", None)
    if fetcher is None or not isinstance(getattr(fetcher, "_fetch_max_wait_ms", None), int):
        return False
    fetcher._fetch_max_wait_ms = ms
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
