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

Not kept: Faust's per-write table sensors (`on_table_set`, `on_table_del`), which only feed
Faust's own monitor counters. Writes must be made while the events agent handles the batch they
belong to (a RocksDB store picks the partition's database from the current event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any, Protocol

from attribution.streaming.commits import Unsettled


class Failed(Protocol):
    def __call__(self, topic: str, key: bytes, size: int, exc: BaseException) -> None: ...


Send = Callable[[str, bytes | None, bytes | None, int | None, float | None, Any], Awaitable[Any]]


class TableWriter:
    """Writes encoded values of a bytes table (`topics.bytes_table`): store, then changelog."""

    def __init__(self, table: Any, send: Send, unsettled: Unsettled | None, failed: Failed) -> None:
        """`send` is the app's `Producer.send`; `failed` stops the worker (`ChangelogGuard.failed`)."""
        self.table = table
        self.send = send
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
        store = self.table.data
        send = self.send
        topic = self.topic
        for key, value in writes.items():
            store[key] = value
            self._track(await send(topic, key, value, partition, None, None), key, len(value))
        for key in deletes:
            with contextlib.suppress(KeyError):  # not in the store: the changelog still gets it
                del store[key]
            self._track(await send(topic, key, None, partition, None, None), key, 0)

    def _track(self, fut: asyncio.Future[Any], key: bytes, size: int) -> None:
        if self.unsettled is not None:
            self.unsettled.add(fut)
        fut.add_done_callback(partial(self._written, key, size))

    def _written(self, key: bytes, size: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            self.failed(self.topic, key, size, asyncio.CancelledError())
            return
        exc = fut.exception()
        if exc is not None:
            self.failed(self.topic, key, size, exc)
            return
        metadata = fut.result()
        self.table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)
