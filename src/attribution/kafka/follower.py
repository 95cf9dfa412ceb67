"""The one group-less reader of whole topics: every partition of some topics, assigned (no consumer
group, nothing committed), read from a start position in batches, knowing when it has reached the
end offsets seen when it started.

Every component that reads a topic in full uses it: the worker's config cache (from the beginning,
forever), the outcome feed of `/stats` (from 24 hours ago, forever), the CLI (`kafka.client.read_to_end`:
from the beginning to the end) and the integration tests' harness.

Topic names are the actual names (prefix applied). A missing topic raises `TopicMissing` (after
waiting up to `wait_s` for it to appear), an unreachable broker `Unreachable` (`kafka.client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from attribution.kafka.client import CLIENT_ID, TopicMissing, Unreachable, map_kafka_errors, partitions
from attribution.settings import Settings

__all__ = ["BEGINNING", "TopicFollower"]

#: Start at the first record of every partition.
BEGINNING = None


class TopicFollower:
    """Use as `async with TopicFollower(settings, topics) as f:`, then `await f.fetch()` batches.

    `since_ms`: start, per partition, at the first record published at or after that time (a
    partition without one starts at its end), instead of at the beginning. `ends` are the end
    offsets read before the start positions were searched, so a record published meanwhile is read,
    not skipped. Only committed records are read (aborted transactional ones are skipped).
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        *,
        since_ms: int | None = BEGINNING,
        client_id: str = CLIENT_ID,
        wait_s: float = 0.0,
        **consumer_options: Any,
    ) -> None:
        self.settings = settings
        self.topics = list(dict.fromkeys(topics))
        self.since_ms = since_ms
        self.wait_s = wait_s
        self._options = {"client_id": client_id, **consumer_options}
        self.partitions: list[TopicPartition] = []
        self.ends: dict[TopicPartition, int] = {}
        self.consumer: AIOKafkaConsumer

    async def __aenter__(self) -> TopicFollower:
        layout = await self._layout()
        self.partitions = [TopicPartition(t, p) for t in layout for p in layout[t]]
        # Made only now: a consumer made but never started warns when collected.
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            **self._options,
        )
        try:
            with map_kafka_errors(self.settings):
                await self.consumer.start()
        except Unreachable:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            raise
        try:
            await self._seek()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()

    async def _layout(self) -> dict[str, list[int]]:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                return await partitions(self.settings, self.topics)
            except TopicMissing:
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(0.1)

    async def _seek(self) -> None:
        c = self.consumer
        c.assign(self.partitions)
        self.ends = await c.end_offsets(self.partitions)
        if self.since_ms is None:
            await c.seek_to_beginning(*self.partitions)
            return
        starts = await c.offsets_for_times(dict.fromkeys(self.partitions, self.since_ms))
        for tp in self.partitions:
            found = starts.get(tp)
            c.seek(tp, self.ends[tp] if found is None else found.offset)

    async def fetch(
        self, timeout_ms: int = 200, max_records: int = 10_000, only: Sequence[TopicPartition] = ()
    ) -> dict[TopicPartition, list[Any]]:
        """The next records, by partition (of `only`, if given), waiting up to `timeout_ms`."""
        batches: dict[TopicPartition, list[Any]] = await self.consumer.getmany(
            *only, timeout_ms=timeout_ms, max_records=max_records
        )
        return batches

    async def reached(self, tp: TopicPartition) -> bool:
        """Whether `tp` has been read up to its end offset seen at start."""
        position: int = await self.consumer.position(tp)
        return position >= self.ends[tp]

    async def caught_up(self) -> bool:
        """Whether every partition has been read up to its end offset seen at start."""
        for tp in self.partitions:
            if not await self.reached(tp):
                return False
        return True
