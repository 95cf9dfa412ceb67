"""Follow the outcome topics into an `OutcomeWindow`, on every worker, for `/stats` and health.

A group-less consumer (no consumer group, nothing committed) reads *all* partitions of
`attributed-conversions` and `unattributed-conversions`, starting at the first record published in
the last 24 hours (`offsets_for_times`), and keeps following. Every worker therefore reports on the
whole pipeline, not just on the partitions it judges. Reporting never stops the worker: a failure
is logged and the feed starts again (the window drops the records it reads twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from attribution.kafka_io import TopicMissing, partitions
from attribution.settings import Settings
from attribution.web.outcomes import OutcomeWindow, parse_outcome

log = logging.getLogger(__name__)

TOPICS = ("attributed-conversions", "unattributed-conversions")
RETRY_S = 5.0


def now_ms() -> int:
    return int(time.time() * 1000)


class OutcomeFeed:
    def __init__(self, settings: Settings, window: OutcomeWindow, clock: Callable[[], int] = now_ms) -> None:
        self.settings = settings
        self.window = window
        self.clock = clock
        self.names = {settings.topic(t): t for t in TOPICS}
        #: set once the records that existed at start have been read
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        """Follow the topics forever (cancel to stop); restarts after any failure."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except TopicMissing as exc:
                log.warning("reporting waits for its topics: %s", exc)
            except Exception:
                log.exception("reporting feed failed; restarting in %gs", RETRY_S)
            await asyncio.sleep(RETRY_S)

    async def _follow(self) -> None:
        layout = await partitions(self.settings, list(self.names))
        tps = [TopicPartition(t, p) for t, ps in layout.items() for p in ps]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id="attribution-reporting",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            # End offsets first: a partition with no record since `since` starts at the end seen
            # *before* the search, so a record published meanwhile is read, not skipped.
            ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            since = self.clock() - self.window.span_ms
            starts = await consumer.offsets_for_times(dict.fromkeys(tps, since))
            for tp in tps:
                found = starts.get(tp)
                consumer.seek(tp, ends[tp] if found is None else found.offset)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5_000)
                for tp, messages in batches.items():
                    name = self.names[tp.topic]
                    for m in messages:
                        outcome = parse_outcome(name, m.value, m.timestamp)
                        if outcome is not None:
                            self.window.add(outcome)
                self.window.prune(self.clock())
                if not self.caught_up.is_set() and await _reached(consumer, ends):
                    log.info("reporting caught up: %d outcomes of the last 24 h", len(self.window))
                    self.caught_up.set()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
