"""The events agent's states in flight (`streaming.pending`): written behind their batch's outputs,
in the batches' order, read back until then, and never past a failed batch; the batches queued
together are written as one group, each key sent to the changelog once with its last value."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from attribution.streaming.pending import PendingStates


class Table:
    """The users table as the chain writes it (store, then changelog), with a log of what happened
    in which order."""

    def __init__(self, log: list[Any]) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog: list[tuple[int, bytes, bytes | None]] = []
        self.log = log

    def put(self, partition: int, writes: Mapping[bytes, bytes], deletes: Sequence[bytes]) -> None:
        self.log.append(("put", partition, dict(writes), list(deletes)))
        self.data.update(writes)
        for key in deletes:
            self.data.pop(key, None)

    async def send(self, partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        self.log.append(("send", partition, list(records)))
        self.changelog.extend((partition, key, value) for key, value in records)


def chain(depth: int = 16) -> tuple[PendingStates, Table, list[Any], list[BaseException]]:
    log: list[Any] = []
    table = Table(log)
    failures: list[BaseException] = []
    return PendingStates(table.put, table.send, failures.append, depth), table, log, failures


def done(log: list[Any], name: str) -> Any:
    async def mark() -> None:
        log.append(("done", name))

    return mark


def sent() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_batch_is_written_only_once_its_outputs_are_acknowledged() -> None:
    pending, table, log, _ = chain()
    output = sent()

    await pending.submit(0, {b"u1": b"s1"}, [], [output], done(log, "a"))
    await settle()
    assert log == []
    assert table.data == {}

    output.set_result(None)
    await settle()
    assert log == [("put", 0, {b"u1": b"s1"}, []), ("send", 0, [(b"u1", b"s1")]), ("done", "a")]


async def test_the_next_batch_reads_the_states_of_a_batch_in_flight_and_deletes_read_as_absent() -> None:
    pending, table, _, _ = chain()
    table.data[b"gone"] = b"old"
    table.data[b"kept"] = b"table"

    await pending.submit(0, {b"u1": b"s1"}, [b"gone"], [sent()], done([], "a"))

    assert pending.get(table.data.get, b"u1") == b"s1"
    assert pending.get(table.data.get, b"gone") is None
    assert pending.get(table.data.get, b"kept") == b"table"
    assert len(pending) == 1


async def test_batches_are_written_in_submit_order_even_when_later_outputs_are_acknowledged_first() -> None:
    pending, table, log, _ = chain()
    first, second = sent(), sent()
    await pending.submit(0, {b"u": b"one"}, [], [first], done(log, "a"))
    await pending.submit(1, {b"u": b"two"}, [], [second], done(log, "b"))

    second.set_result(None)
    await settle()
    assert log == []
    assert pending.get(table.data.get, b"u") == b"two"

    first.set_result(None)
    await settle()
    assert log == [
        ("put", 0, {b"u": b"one"}, []),
        ("put", 1, {b"u": b"two"}, []),
        ("send", 0, [(b"u", b"one")]),
        ("send", 1, [(b"u", b"two")]),
        ("done", "a"),
        ("done", "b"),
    ]
    assert table.data == {b"u": b"two"}
    assert pending.get(table.data.get, b"u") == b"two"
    assert len(pending) == 0


async def test_a_key_keeps_the_later_batchs_value_in_flight_after_the_earlier_batch_is_written() -> None:
    pending, table, _, _ = chain()
    first, second = sent(), sent()
    await pending.submit(0, {b"u": b"one"}, [], [first], done([], "a"))
    await pending.submit(0, {b"u": b"two"}, [], [second], done([], "b"))

    first.set_result(None)
    await settle()

    assert table.data == {b"u": b"one"}
    assert pending.get(table.data.get, b"u") == b"two"


async def test_submit_waits_for_the_oldest_batch_once_depth_batches_are_in_flight() -> None:
    pending, _, log, _ = chain(depth=2)
    outputs = [sent(), sent(), sent()]
    await pending.submit(0, {b"a": b"1"}, [], [outputs[0]], done(log, "a"))
    await pending.submit(0, {b"b": b"1"}, [], [outputs[1]], done(log, "b"))

    third = asyncio.ensure_future(pending.submit(0, {b"c": b"1"}, [], [outputs[2]], done(log, "c")))
    await settle()
    assert not third.done()

    outputs[0].set_result(None)
    await settle()
    assert third.done()
    assert ("done", "a") in log


async def test_a_failed_output_stops_the_chain_reports_once_and_raises_at_the_next_submit() -> None:
    pending, table, log, failures = chain()
    first, second = sent(), sent()
    await pending.submit(0, {b"u": b"one"}, [], [first], done(log, "a"))
    await pending.submit(0, {b"v": b"two"}, [], [second], done(log, "b"))

    error = RuntimeError("the broker refused an output")
    second.set_result(None)
    first.set_exception(error)
    await settle()

    assert log == [], "no batch at or after the failed one is written or reported handled"
    assert table.data == {}
    assert failures == [error]
    with pytest.raises(RuntimeError, match="refused"):
        await pending.submit(0, {b"w": b"three"}, [], [], done(log, "c"))
    assert log == []


async def test_drain_waits_for_every_batch_in_flight() -> None:
    pending, _, log, _ = chain()
    output = sent()
    await pending.submit(3, {b"u": b"s"}, [], [output], done(log, "a"))
    drained = asyncio.ensure_future(pending.drain())
    await settle()
    assert not drained.done()

    output.set_result(None)
    await drained
    assert log[-1] == ("done", "a")


async def test_a_batch_without_outputs_is_written_after_the_batches_before_it() -> None:
    pending, _, log, _ = chain()
    output = sent()
    await pending.submit(0, {b"a": b"1"}, [], [output], done(log, "a"))
    await pending.submit(0, {b"b": b"1"}, [], [], done(log, "b"))
    await settle()
    assert log == []

    output.set_result(None)
    await settle()
    assert [entry for entry in log if entry[0] == "done"] == [("done", "a"), ("done", "b")]


def test_a_chain_needs_a_depth_of_at_least_one() -> None:
    with pytest.raises(ValueError, match="depth"):
        PendingStates(Table([]).put, Table([]).send, print, depth=0)


async def test_batches_queued_together_send_each_key_once_with_its_last_value() -> None:
    pending, table, log, _ = chain()
    await pending.submit(0, {b"u": b"one", b"v": b"one"}, [], [], done(log, "a"))
    await pending.submit(0, {b"u": b"two"}, [b"v"], [], done(log, "b"))
    await pending.submit(1, {b"w": b"one"}, [], [], done(log, "c"))
    await pending.drain()

    assert [entry for entry in log if entry[0] == "send"] == [
        ("send", 0, [(b"u", b"two"), (b"v", None)]),
        ("send", 1, [(b"w", b"one")]),
    ]
    assert table.data == {b"u": b"two", b"w": b"one"}
    assert [entry for entry in log if entry[0] == "done"] == [("done", "a"), ("done", "b"), ("done", "c")]


async def test_a_batch_ready_is_sent_and_done_without_waiting_for_the_outputs_of_the_next() -> None:
    pending, _, log, _ = chain()
    later = sent()
    await pending.submit(0, {b"u": b"one"}, [], [], done(log, "a"))
    await pending.submit(0, {b"v": b"two"}, [], [later], done(log, "b"))
    await settle()

    assert log == [("put", 0, {b"u": b"one"}, []), ("send", 0, [(b"u", b"one")]), ("done", "a")]
    later.set_result(None)
    await pending.drain()
    assert log[-1] == ("done", "b")


CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="none")


async def test_each_batch_is_put_in_the_context_it_was_submitted_in() -> None:
    seen: list[str] = []

    def put(partition: int, writes: Mapping[bytes, bytes], deletes: Sequence[bytes]) -> None:
        seen.append(CURRENT.get())  # a RocksDB store reads the Faust event being handled so

    async def send(partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        pass

    pending = PendingStates(put, send, print)
    for name in ("first", "second"):
        CURRENT.set(name)
        await pending.submit(0, {b"u": name.encode()}, [], [], done([], name))
    CURRENT.set("none")
    await pending.drain()

    assert seen == ["first", "second"]


async def test_a_failed_output_lets_the_batches_before_it_be_written_and_none_after() -> None:
    pending, table, log, failures = chain()
    first, failing, last = sent(), sent(), sent()
    await pending.submit(0, {b"a": b"1"}, [], [first], done(log, "a"))
    await pending.submit(0, {b"b": b"1"}, [], [failing], done(log, "b"))
    await pending.submit(0, {b"c": b"1"}, [], [last], done(log, "c"))

    error = RuntimeError("the broker refused an output")
    last.set_result(None)
    failing.set_exception(error)
    first.set_result(None)
    await settle()

    assert [entry for entry in log if entry[0] == "done"] == [("done", "a")]
    assert table.data == {b"a": b"1"}
    assert table.changelog == [(0, b"a", b"1")]
    assert failures == [error]
    with pytest.raises(RuntimeError, match="refused"):
        await pending.drain()


async def test_a_failed_changelog_send_stops_the_chain_before_its_batches_are_done() -> None:
    log: list[Any] = []
    table = Table(log)
    failures: list[BaseException] = []

    async def refused(partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        raise RuntimeError("the producer is closed")

    pending = PendingStates(table.put, refused, failures.append)
    await pending.submit(0, {b"a": b"1"}, [], [], done(log, "a"))
    await settle()

    assert [entry for entry in log if entry[0] == "done"] == []
    assert [str(f) for f in failures] == ["the producer is closed"]
    with pytest.raises(RuntimeError, match="closed"):
        await pending.submit(0, {b"b": b"1"}, [], [], done(log, "b"))
