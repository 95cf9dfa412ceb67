"""Small async Kafka helpers shared by the CLI and the integration tests.

* `producer(settings, require=...)`: an acks=all, idempotent producer of `(topic, key, value)`
  with headers, as an async context manager that flushes on exit.
* `read_to_end(settings, topics)`: every record of some topics, from the beginning to the end
  offsets seen at start, read by a group-less consumer (`follower.TopicFollower`: no offsets are
  committed anywhere).
* `partitions(settings, topics)`: partition ids of existing topics; `TopicMissing` otherwise.
* `KafkaConfigStore`: the config as the CLI reads and writes it (`app.config.ConfigStore`).

Topic names are the actual names (prefix already applied: `settings.topic(name)`). An unreachable
broker raises `Unreachable` (the CLI turns it into a one-line message); a missing topic raises
`TopicMissing`, a read that does not reach the end in time `ReadTimeout`: all `KafkaIOError`s,
mapped from aiokafka's exceptions in one place (`map_kafka_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError

from attribution.app.config import ConfigFold, Kind
from attribution.contract import CONFIG_TOPICS
from attribution.domain import Config
from attribution.errors import KafkaIOError
from attribution.settings import Settings

Headers = Sequence[tuple[str, bytes]]
Key = bytes | str | None

CLIENT_ID = "attribution-cli"


class TopicMissing(KafkaIOError):
    def __init__(self, topics: Sequence[str]) -> None:
        self.topics = list(topics)
        names = ", ".join(self.topics)
        super().__init__(f"topic{'s' if len(self.topics) > 1 else ''} {names} missing: run `attribution topics create`")


class ReadTimeout(KafkaIOError):
    pass


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: tuple[tuple[str, bytes], ...] = ()


class Unreachable(KafkaIOError):
    """No broker answers at the bootstrap servers."""


@contextlib.contextmanager
def map_kafka_errors(settings: Settings) -> Iterator[None]:
    """The one place aiokafka's connection failures become this package's `Unreachable`."""
    try:
        yield
    except KafkaConnectionError:
        raise Unreachable(f"no broker answers at {settings.bootstrap_servers}") from None


async def partitions(settings: Settings, topics: Iterable[str]) -> dict[str, list[int]]:
    """Partition ids of each topic; `TopicMissing` naming every topic that does not exist."""
    client = AIOKafkaClient(bootstrap_servers=settings.bootstrap_servers, client_id=CLIENT_ID, request_timeout_ms=20000)
    with map_kafka_errors(settings):
        await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
    finally:
        await client.close()
    wanted = list(dict.fromkeys(topics))
    missing = [t for t in wanted if t not in cluster.topics()]
    if missing:
        raise TopicMissing(missing)
    return {t: sorted(cluster.partitions_for_topic(t) or ()) for t in wanted}


class Producer:
    """A started producer; see `producer()`."""

    def __init__(self, inner: AIOKafkaProducer) -> None:
        self._inner = inner

    async def send(self, topic: str, key: Key, value: bytes | None, headers: Headers = ()) -> asyncio.Future[Any]:
        """Queue one record; returns the delivery future (await it, or `flush`). Waits only when the
        producer's buffer is full. A None value is a tombstone."""
        raw_key = key.encode() if isinstance(key, str) else key
        future: asyncio.Future[Any] = await self._inner.send(
            topic, value=value, key=raw_key, headers=list(headers) or None
        )
        return future

    async def send_and_wait(self, topic: str, key: Key, value: bytes | None, headers: Headers = ()) -> Any:
        """Send one record and wait until the broker has it (acks=all); returns its metadata."""
        return await (await self.send(topic, key, value, headers))

    async def flush(self) -> None:
        await self._inner.flush()


@contextlib.asynccontextmanager
async def producer(
    settings: Settings,
    *,
    require: Iterable[str] = (),
    linger_ms: int = 5,
    max_batch_size: int = 262_144,
) -> AsyncIterator[Producer]:
    """An acks=all idempotent producer; flushed and closed on exit.

    `require`: topics that must exist first (the broker may auto-create missing topics, with the
    wrong partition count: refusing is better than that).
    """
    required = list(require)
    if required:
        await partitions(settings, required)
    inner = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=CLIENT_ID,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        request_timeout_ms=30000,
    )
    try:
        with map_kafka_errors(settings):
            await inner.start()
    except Unreachable:
        with contextlib.suppress(Exception):
            await inner.stop()
        raise
    try:
        yield Producer(inner)
        await inner.flush()
    finally:
        await inner.stop()


async def read_to_end(
    settings: Settings,
    topics: Sequence[str],
    *,
    timeout: float | None = 30.0,
    progress: Callable[[int], object] | None = None,
    wait_s: float = 0.0,
) -> dict[str, list[Record]]:
    """Every record of `topics`, from the beginning to the end offsets read at start; a topic
    missing from the broker's metadata is waited for up to `wait_s` (`TopicFollower`).

    Records are returned per topic, ordered by partition then offset. Only committed records are
    read (aborted transactional records are skipped). `timeout` bounds the whole read (None: no
    bound); `progress(n)` is called with the number of records after each fetch.
    """
    from attribution.kafka.follower import TopicFollower

    deadline = None if timeout is None else time.monotonic() + timeout
    async with TopicFollower(settings, topics, wait_s=wait_s, max_partition_fetch_bytes=4 * 1_048_576) as follower:
        tps, ends = follower.partitions, follower.ends
        result: dict[str, list[Record]] = {tp.topic: [] for tp in tps}
        pending = {tp for tp, end in ends.items() if end > 0}
        by_tp: dict[TopicPartition, list[Record]] = {tp: [] for tp in tps}
        while pending:
            if deadline is not None and time.monotonic() > deadline:
                left = 0
                for tp in pending:
                    left += ends[tp] - await follower.consumer.position(tp)
                names = ", ".join(dict.fromkeys(tp.topic for tp in tps))
                raise ReadTimeout(f"timed out after {timeout:g}s reading {names}: {left} records left")
            batches = await follower.fetch(only=list(pending))
            n = 0
            for tp, messages in batches.items():
                end = ends[tp]
                for m in messages:
                    if m.offset >= end:
                        break
                    by_tp[tp].append(
                        Record(
                            m.topic,
                            m.partition,
                            m.offset,
                            m.key,
                            m.value,
                            m.timestamp,
                            tuple((k, bytes(v)) for k, v in m.headers or ()),
                        )
                    )
                    n += 1
            if n and progress is not None:
                progress(n)
            for tp in list(pending):
                if await follower.reached(tp):
                    pending.discard(tp)
                    follower.consumer.pause(tp)
        for tp in tps:
            result[tp.topic].extend(by_tp[tp])
        return result


#: Headers of every JSON record (not tombstone) published from outside the worker.
JSON_HEADERS: tuple[tuple[str, bytes], ...] = (("content-type", b"application/json"),)


class KafkaConfigStore:
    """The config store of a command (`app.config.ConfigStore`): the config is both compacted
    topics read to their end once, the way every worker reads them (`app.config.ConfigFold`); a
    publish waits for every ack (acks=all) and applies the records to that config."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._folded: ConfigFold | None = None

    async def _fold(self) -> ConfigFold:
        if self._folded is None:
            names = {self.settings.topic(t): t for t in CONFIG_TOPICS}
            # Topics created a moment ago (`attribution topics create`) may not be in the
            # broker's metadata yet: wait a little for them, as the worker's config cache does.
            records = await read_to_end(self.settings, list(names), timeout=self.timeout, wait_s=5.0)
            folded = ConfigFold()
            for topic, recs in records.items():
                for r in recs:
                    folded.apply_record(names[topic], r.key, r.value)
            self._folded = folded
        return self._folded

    async def current(self) -> Config:
        return (await self._fold()).config

    async def publish(self, kind: Kind, records: Sequence[tuple[int, bytes | None]]) -> Config:
        folded = await self._fold()
        topic = self.settings.topic(kind.topic)
        async with producer(self.settings, require=[topic]) as p:
            futures = [
                await p.send(topic, str(ident).encode(), value, JSON_HEADERS if value is not None else ())
                for ident, value in records
            ]
            await asyncio.gather(*futures)
        for ident, value in records:
            folded.apply_record(kind.topic, str(ident).encode(), value)
        return folded.config
