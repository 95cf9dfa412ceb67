"""The users' states of a batch, written to the users table: its store, then its changelog.

`users[key] = state` in Faust 0.15.3 goes, for each write, through the table's key-set hooks and
sensors, a `FutureMessage` and a `PendingMessage`, the serializer registry, the producer buffer's
task and `Topic.publish_message` before it reaches aiokafka: about a quarter of the worker's CPU
per event once the records arrive in batches (BENCHMARKS.md, "One agent step per fetched batch").
`TableWriter` does what that path does for a table of bytes, with Faust's public pieces: it sets
the value in the table's store (`Table.data`, the store recovery fills) and sends the changelog
record straight to the app's producer (`Producer.send`, to `Table.changelog_topic`, on the
partition of the batch, which is the user's). What the path did on the way is kept:

* the commit waits for these writes too (`commits.Unsettled`), so offsets are never committed
  before the states of their records are durable;
* a write the broker refuses stops the worker at once without a commit, as `ChangelogGuard`
  does for Faust's own sends (`durability`);
* a write the broker acknowledged moves the store's persisted offset (what RocksDB recovery
  starts from), as Faust's `Collection._on_changelog_sent` does;
* an expired user gets a tombstone (a null value) and leaves the store.

Each batch's writes go to the producer as aiokafka record batches (`aiokafka_batches`: aiokafka's
public `create_batch` and `send_batch`), one per partition and 512 KiB, instead of a `send` per
state: `send` checks the topic's metadata, picks the partition and takes the accumulator's path
for every record (9 to 10% of the worker's samples, BENCHMARKS.md). A batch the broker refuses
stops the worker naming its largest record. Without the app's aiokafka producer (another Faust
version than the pinned one: `aiokafka_producer`) the writer sends a record at a time, as before.

Not kept: Faust's per-write table sensors (`on_table_set`, `on_table_del`), which only feed
Faust's own monitor counters. Writes must be made while the events agent handles the batch they
belong to (a RocksDB store picks the partition's database from the current event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import faust

from attribution.streaming.commits import SUPPORTED_FAUST, Unsettled


class Failed(Protocol):
    def __call__(self, topic: str, key: bytes, size: int, exc: BaseException) -> None: ...


Send = Callable[[str, bytes | None, bytes | None, int | None, float | None, Any], Awaitable[Any]]
#: (key, value or None for a tombstone) records of one partition
Records = Sequence[tuple[bytes, bytes | None]]
#: Sends `Records` to (topic, partition) in order; per record batch sent: its acknowledgement and
#: which records it holds (index of the first, count).
SendBatches = Callable[[str, int, Records], Awaitable[list[tuple[asyncio.Future[Any], int, int]]]]


def aiokafka_producer(app: Any) -> Callable[[], Any] | None:
    """The app's aiokafka producer, once started, as a getter; None for another Faust version
    than the pinned one (Faust's `Producer` keeps it in a private attribute)."""
    if faust.__version__ != SUPPORTED_FAUST:
        return None

    def producer() -> Any:
        return app.producer._ensure_producer()

    return producer


def aiokafka_batches(producer_of: Callable[[], Any]) -> SendBatches:
    """`SendBatches` through aiokafka's `create_batch` and `send_batch`: records in order, a new
    record batch when one is full (its size is the producer's `max_batch_size`; the first record of
    a batch always fits)."""

    async def send(topic: str, partition: int, records: Records) -> list[tuple[asyncio.Future[Any], int, int]]:
        producer = producer_of()
        sent: list[tuple[asyncio.Future[Any], int, int]] = []
        batch = producer.create_batch()
        first = 0
        for i, (key, value) in enumerate(records):
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent.append((await producer.send_batch(batch, topic, partition=partition), first, i - first))
                batch = producer.create_batch()
                first = i
                batch.append(key=key, value=value, timestamp=None)
        if len(records) > first:
            sent.append((await producer.send_batch(batch, topic, partition=partition), first, len(records) - first))
        return sent

    return send


class TableWriter:
    """Writes encoded values of a bytes table (`topics.bytes_table`): store, then changelog."""

    def __init__(
        self,
        table: Any,
        send: Send,
        unsettled: Unsettled | None,
        failed: Failed,
        batches: SendBatches | None = None,
    ) -> None:
        """`send` is the app's `Producer.send`, used when `batches` is None; `failed` stops the
        worker (`ChangelogGuard.failed`)."""
        self.table = table
        self.send = send
        self.batches = batches
        self.unsettled = unsettled
        self.failed = failed
        self._topic: str | None = None

    @property
    def topic(self) -> str:
        if self._topic is None:
            self._topic = self.table.changelog_topic.get_topic_name()
        return self._topic

    async def write(self, partition: int, writes: Mapping[bytes, bytes], deletes: Iterable[bytes] = ()) -> None:
        """Set each key of `writes` to its value and delete each key of `deletes` (keys of
        `partition`), in the store at once and in the changelog as the producer sends them."""
        deletes = list(deletes)
        self.put(writes, deletes)
        await self.send_records(partition, [*writes.items(), *((key, None) for key in deletes)])

    def put(self, writes: Mapping[bytes, bytes], deletes: Iterable[bytes] = ()) -> None:
        """The store's half of `write`: synchronous, so a RocksDB store can be given the Faust event
        of the batch (its context) the writes belong to."""
        store = self.table.data
        for key, value in writes.items():
            store[key] = value
        for key in deletes:
            with contextlib.suppress(KeyError):  # not in the store: the changelog still gets it
                del store[key]

    async def send_records(self, partition: int, records: Records) -> None:
        """The changelog's half of `write`: (key, value or None for a tombstone) records of
        `partition`, in order, handed to the producer (not awaited: the commit waits for them)."""
        if not records:
            return
        topic = self.topic
        if self.batches is not None:
            for fut, first, count in await self.batches(topic, partition, records):
                self._track(fut, records[first : first + count])
            return
        send = self.send
        for key, value in records:
            self._track(await send(topic, key, value, partition, None, None), ((key, value),))

    def _track(self, fut: asyncio.Future[Any], records: Records) -> None:
        if self.unsettled is not None:
            self.unsettled.add(fut)
        fut.add_done_callback(partial(self._written, records))

    def _written(self, records: Records, fut: asyncio.Future[Any]) -> None:
        """A send of `records` (one, or a record batch's, in offset order) done."""
        exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
        if exc is not None:
            # A refused batch is named by its largest record (the one over a size limit, if any).
            key, value = max(records, key=lambda r: len(r[1] or b""))
            self.failed(self.topic, key, len(value or b""), exc)
            return
        metadata = fut.result()
        self.table.data.set_persisted_offset(metadata.topic_partition, metadata.offset + len(records) - 1)
