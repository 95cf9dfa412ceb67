"""The benchmark's Kafka helpers, around the project's own Kafka edge.

Topics are created by `attribution.streaming.topics.create_topics`, partitions looked up by
`attribution.kafka.client.partitions`, and topics read by the group-less reader
(`attribution.kafka.follower.TopicFollower`, `attribution.kafka.client.read_to_end`). What is only
the benchmark's: a bulk producer (one aiokafka batch per partition, to write a million inputs
fast), Kafka's default partitioner (to choose partitions as upstream producers would), the
committed lag of a consumer group and the CreateTime of the record at an offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from attribution.kafka.client import Record, TopicMissing, partitions, read_to_end
from attribution.kafka.follower import TopicFollower
from attribution.settings import Settings
from attribution.streaming.topics import TopicSpec, create_topics
from bench.stream.common import PARTITIONS


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """Kafka's default partitioner (murmur2), as the producers upstream and aiokafka use it."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


OpenBatches = dict[tuple[str, int], Any]


def append_record(
    producer: AIOKafkaProducer,
    open_batches: OpenBatches,
    topic: str,
    partition: int,
    key: bytes | None,
    value: bytes | None,
) -> Any | None:
    """Append a record to the open record batch of (`topic`, `partition`), opening one if there is
    none; returns the batch it found full (to send before the new one), or None."""
    batch = open_batches.get((topic, partition))
    if batch is None:
        batch = open_batches[(topic, partition)] = producer.create_batch()
    if batch.append(key=key, value=value, timestamp=None) is not None:
        return None
    fresh = open_batches[(topic, partition)] = producer.create_batch()
    fresh.append(key=key, value=value, timestamp=None)
    return batch


class Bulk:
    """A fast bulk producer: records go into one aiokafka batch per (topic, partition)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.batches: OpenBatches = {}
        self.inflight: list[asyncio.Future[Any]] = []
        self.count = 0

    async def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        full = append_record(self.producer, self.batches, topic, partition, key, value)
        if full is not None:
            await self._send(topic, partition, full)
        self.count += 1

    async def _send(self, topic: str, partition: int, batch: Any) -> None:
        self.inflight.append(await self.producer.send_batch(batch, topic, partition=partition))
        if len(self.inflight) >= 32:
            await asyncio.gather(*self.inflight)
            self.inflight.clear()

    async def flush(self) -> None:
        for (topic, partition), batch in self.batches.items():
            if batch.record_count():
                await self._send(topic, partition, batch)
        self.batches.clear()
        await asyncio.gather(*self.inflight)
        self.inflight.clear()


def bulk_producer(settings: Settings) -> AIOKafkaProducer:
    """An acks=all producer with large batches, for `Bulk` (not started)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        max_batch_size=1_000_000,
        max_request_size=8_000_000,
        linger_ms=20,
    )


class Kafka:
    """One admin client and one offsets consumer for the whole run (the run polls offsets while a
    contender works: one long-lived client keeps that cheap)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers, request_timeout_ms=30000)
        await self.admin.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        await self.consumer.start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.admin.close()

    async def tps(self, topics: Iterable[str], wait_s: float = 10.0) -> list[TopicPartition]:
        """Every partition of `topics` (actual names), waiting up to `wait_s` for new topics."""
        names = list(topics)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                layout = await partitions(self.settings, names)
                if all(layout.values()):
                    return [TopicPartition(t, p) for t in names for p in layout[t]]
            except TopicMissing:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics missing: {names}")
            await asyncio.sleep(0.1)

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self.consumer.end_offsets(list(tps)))

    async def begin_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self.consumer.beginning_offsets(list(tps)))

    async def create(self, names: Iterable[str], compacted: bool = False) -> None:
        """Create the topics that do not exist, with the run's partition count."""
        await create_topics(self.settings, [TopicSpec(n, PARTITIONS, compacted) for n in names])

    async def lag(self, group: str, ends: dict[TopicPartition, int]) -> int:
        """Records between the group's committed offsets and `ends` (uncommitted: from 0)."""
        committed = await self.admin.list_consumer_group_offsets(group)
        total = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            total += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return total

    async def start_group_at_end(self, group: str, tps: Sequence[TopicPartition]) -> None:
        """Commit, for the new consumer group `group`, the current end of each of `tps`: its
        members then read only what is written to them from now on."""
        ends = await self.end_offsets(tps)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(list(tps))
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()

    async def wait_stable(self, group: str, members: int, timeout_s: float) -> float:
        """Wait until consumer group `group` is Stable with `members` members; returns the seconds
        waited. RuntimeError after `timeout_s`."""
        start = time.monotonic()
        while True:
            with contextlib.suppress(Exception):
                [response] = await self.admin.describe_consumer_groups([group])
                # DescribeGroups: (error_code, group_id, state, protocol_type, protocol, members, ...)
                described = response.groups[0]
                if described[2] == "Stable" and len(described[5]) == members:
                    return time.monotonic() - start
            if time.monotonic() - start > timeout_s:
                raise RuntimeError(f"group {group} not stable with {members} members in {timeout_s:g} s")
            await asyncio.sleep(0.2)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every topic whose name starts with `prefix`; returns how many."""
        names = [t for t in await self.admin.list_topics() if t.startswith(prefix)]
        if names:
            await self.admin.delete_topics(names)
        return len(names)


async def timestamps_at(
    settings: Settings, wanted: dict[TopicPartition, int], timeout: float = 30
) -> dict[TopicPartition, int]:
    """CreateTime (ms) of the record at (or first after) the given offset of each partition."""
    if not wanted:
        return {}
    result: dict[TopicPartition, int] = {}
    async with TopicFollower(settings, sorted({tp.topic for tp in wanted})) as follower:
        others = [tp for tp in follower.partitions if tp not in wanted]
        if others:
            follower.consumer.pause(*others)
        for tp, offset in wanted.items():
            follower.consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while len(result) < len(wanted) and time.monotonic() < deadline:
            pending = [tp for tp in wanted if tp not in result]
            batches = await follower.fetch(timeout_ms=500, only=pending)
            for tp, messages in batches.items():
                for m in messages:
                    if tp not in result and m.offset >= wanted[tp]:
                        result[tp] = m.timestamp
                        follower.consumer.pause(tp)
    return result


async def read_range(
    settings: Settings, starts: dict[TopicPartition, int], ends: dict[TopicPartition, int], timeout: float = 600
) -> list[Record]:
    """Every record in [start, end) of each partition of `starts`."""
    records = await read_to_end(settings, sorted({tp.topic for tp in starts}), timeout=timeout)
    out = []
    for topic_records in records.values():
        for r in topic_records:
            tp = TopicPartition(r.topic, r.partition)
            if tp in starts and starts[tp] <= r.offset < ends[tp]:
                out.append(r)
    return out
