"""The events agent writes a batch's states to the users table itself (`streaming.changelog`):
the store at once, the changelog through the producer, the commit waiting for both."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from attribution.streaming.changelog import TableWriter
from attribution.streaming.commits import Unsettled

TOPIC = "app-users-changelog"


class Store(dict[bytes, bytes]):
    """A table's store: a mapping, and the persisted offset RocksDB recovery starts from."""

    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[Any, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


class Producer:
    """`Producer.send`: a future per record, resolved by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.futures: list[asyncio.Future[Any]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None, *_: Any
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value, partition))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    def acknowledge(self) -> None:
        for offset, fut in enumerate(self.futures):
            if not fut.done():
                fut.set_result(SimpleNamespace(topic_partition=(TOPIC, self.sent[offset][3]), offset=offset))


def writer(store: Store, producer: Producer, unsettled: Unsettled | None = None) -> tuple[TableWriter, list[Any]]:
    failures: list[Any] = []
    table = SimpleNamespace(data=store, changelog_topic=SimpleNamespace(get_topic_name=lambda: TOPIC))
    w = TableWriter(table, producer.send, unsettled, lambda *args: failures.append(args))
    return w, failures


async def test_each_state_is_set_in_the_store_and_sent_to_the_changelog_on_the_batchs_partition() -> None:
    store, producer = Store(), Producer()
    w, _ = writer(store, producer)
    await w.write(3, {b"u1": b"state-1", b"u2": b"state-2"})
    assert store == {b"u1": b"state-1", b"u2": b"state-2"}
    assert producer.sent == [(TOPIC, b"u1", b"state-1", 3), (TOPIC, b"u2", b"state-2", 3)]


async def test_an_expired_user_leaves_the_store_and_gets_a_tombstone() -> None:
    store, producer = Store(), Producer()
    store[b"old"] = b"state"
    w, _ = writer(store, producer)
    await w.write(1, {}, [b"old", b"never-stored"])
    assert store == {}
    assert producer.sent == [(TOPIC, b"old", None, 1), (TOPIC, b"never-stored", None, 1)]


async def test_the_commit_waits_for_the_changelog_writes() -> None:
    store, producer, unsettled = Store(), Producer(), Unsettled()
    w, _ = writer(store, producer, unsettled)
    await w.write(0, {b"u": b"s"})
    settling = asyncio.ensure_future(unsettled.settle(timeout=5))
    await asyncio.sleep(0.01)
    assert not settling.done()
    producer.acknowledge()
    await asyncio.wait_for(settling, 1)


async def test_an_acknowledged_write_moves_the_stores_persisted_offset() -> None:
    store, producer = Store(), Producer()
    w, failures = writer(store, producer)
    await w.write(2, {b"a": b"1", b"b": b"2"})
    producer.acknowledge()
    await asyncio.sleep(0)
    assert store.persisted == {(TOPIC, 2): 1}
    assert failures == []


@pytest.mark.parametrize("outcome", ["refused", "cancelled"])
async def test_a_write_the_broker_refuses_or_never_sends_stops_the_worker(outcome: str) -> None:
    store, producer = Store(), Producer()
    w, failures = writer(store, producer)
    await w.write(0, {b"u": b"x" * 10})
    if outcome == "refused":
        producer.futures[0].set_exception(RuntimeError("MessageSizeTooLargeError"))
    else:
        producer.futures[0].cancel()
    await asyncio.sleep(0)
    [(topic, key, size, exc)] = failures
    assert (topic, key, size) == (TOPIC, b"u", 10)
    assert isinstance(exc, RuntimeError if outcome == "refused" else asyncio.CancelledError)
    assert store.persisted == {}
