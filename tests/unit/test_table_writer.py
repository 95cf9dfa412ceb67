"""The events agent writes a batch's states to the users table itself (`streaming.changelog`):
the store at once, the changelog through the producer, the commit waiting for both."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder

from attribution.streaming.changelog import TableWriter, aiokafka_batches, aiokafka_producer
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


@pytest.mark.parametrize("sent_as", ["records", "record batches"])
async def test_the_commit_waits_for_the_changelog_writes(sent_as: str) -> None:
    store, unsettled = Store(), Unsettled()
    producer: Producer | BatchProducer
    if sent_as == "records":
        producer = Producer()
        w, _ = writer(store, producer, unsettled)
    else:
        producer = BatchProducer()
        w, _ = batch_writer(store, producer, unsettled)
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


# --- a batch's writes as aiokafka record batches (`aiokafka_batches`) ---------------------------


class BatchProducer:
    """aiokafka's `create_batch` (real record batches of `batch_size` bytes) and `send_batch`: a
    future per record batch, resolved by the test with the batch's base offset."""

    def __init__(self, batch_size: int = 16_384) -> None:
        self.batch_size = batch_size
        self.batches: list[tuple[str, int, int]] = []  # (topic, partition, records)
        self.futures: list[asyncio.Future[Any]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.batches.append((topic, partition, batch.record_count()))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    def acknowledge(self) -> None:
        base = 0
        for (topic, partition, count), fut in zip(self.batches, self.futures, strict=True):
            fut.set_result(SimpleNamespace(topic_partition=(topic, partition), offset=base))
            base += count


def batch_writer(
    store: Store, producer: BatchProducer, unsettled: Unsettled | None = None
) -> tuple[TableWriter, list[Any]]:
    failures: list[Any] = []
    table = SimpleNamespace(data=store, changelog_topic=SimpleNamespace(get_topic_name=lambda: TOPIC))
    unused = Producer()
    w = TableWriter(
        table, unused.send, unsettled, lambda *args: failures.append(args), aiokafka_batches(lambda: producer)
    )
    return w, failures


async def test_a_batchs_writes_and_tombstones_go_out_as_one_record_batch_on_its_partition() -> None:
    store, producer = Store(), BatchProducer()
    store[b"old"] = b"state"
    w, _ = batch_writer(store, producer)
    await w.write(3, {b"u1": b"state-1", b"u2": b"state-2"}, [b"old"])
    assert store == {b"u1": b"state-1", b"u2": b"state-2"}
    assert producer.batches == [(TOPIC, 3, 3)]


async def test_records_past_a_full_record_batch_start_the_next_in_order_and_a_large_one_goes_alone() -> None:
    store, producer = Store(), BatchProducer(batch_size=300)
    w, _ = batch_writer(store, producer)
    writes = {f"u{i}".encode(): b"x" * 100 for i in range(5)}
    writes[b"big"] = b"y" * 1_000
    writes[b"after"] = b"z"
    await w.write(0, writes)
    counts = [count for _, _, count in producer.batches]
    assert sum(counts) == 7
    assert len(counts) >= 3
    assert counts[-2:] == [1, 1], "the large state alone, then the one after it"


async def test_an_acknowledged_record_batch_moves_the_persisted_offset_to_its_last_record() -> None:
    store, producer = Store(), BatchProducer()
    w, failures = batch_writer(store, producer)
    await w.write(2, {b"a": b"1", b"b": b"2", b"c": b"3"})
    producer.acknowledge()
    await asyncio.sleep(0)
    assert store.persisted == {(TOPIC, 2): 2}
    assert failures == []


async def test_a_refused_record_batch_stops_the_worker_naming_its_largest_record() -> None:
    store, producer = Store(), BatchProducer()
    w, failures = batch_writer(store, producer)
    await w.write(0, {b"small": b"x", b"large": b"y" * 50, b"medium": b"z" * 10})
    producer.futures[0].set_exception(RuntimeError("MessageSizeTooLargeError"))
    await asyncio.sleep(0)
    [(topic, key, size, exc)] = failures
    assert (topic, key, size) == (TOPIC, b"large", 50)
    assert isinstance(exc, RuntimeError)
    assert store.persisted == {}


async def test_a_batch_with_nothing_to_write_sends_nothing() -> None:
    store, producer = Store(), BatchProducer()
    w, _ = batch_writer(store, producer)
    await w.write(0, {})
    assert producer.batches == []


def test_faust_s_aiokafka_producer_is_used_only_on_the_pinned_faust_version(monkeypatch: pytest.MonkeyPatch) -> None:
    app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: "the aiokafka producer"))
    getter = aiokafka_producer(app)
    assert getter is not None
    assert getter() == "the aiokafka producer"

    monkeypatch.setattr(faust, "__version__", "0.99.0")
    assert aiokafka_producer(app) is None
