"""The offset committed never passes a record that was not handled (`streaming.commits`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, NamedTuple

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.transport.producer import Producer

from attribution.streaming import commits
from attribution.streaming.commits import LOST_AFTER_S, Delivered, Unsettled, next_commit, patch_consumer


class TP(NamedTuple):
    topic: str
    partition: int


TP0 = TP("impressions", 0)


def test_the_commit_stops_at_a_single_missing_offset_at_the_head() -> None:
    # faust-streaming issue 606: Faust commits 33 here, past the unhandled record 31.
    assert next_commit(31, {32, 33}, []) == 31


def test_the_commit_moves_over_handled_offsets_and_gaps() -> None:
    assert next_commit(10, {10, 11, 15, 16}, [(12, 15)]) == 17


def test_a_gap_does_not_cover_the_record_that_follows_it() -> None:
    delivered = Delivered()
    delivered.reset(TP0, 10)
    delivered.saw(TP0, 10)
    delivered.saw(TP0, 14)  # 11..13 do not exist (compaction, transaction markers)
    assert delivered.gaps[TP0] == [(11, 14)]
    assert next_commit(10, {10}, delivered.gaps[TP0]) == 14  # 14 itself is not handled yet


def test_offsets_before_the_first_record_after_a_seek_are_gaps() -> None:
    delivered = Delivered()
    delivered.reset(TP0, 100)
    delivered.saw(TP0, 103)
    assert delivered.gaps[TP0] == [(100, 103)]


def test_without_a_known_start_nothing_before_the_first_record_is_assumed_missing() -> None:
    delivered = Delivered()
    delivered.saw(TP0, 7)
    assert delivered.gaps[TP0] == []


class FakeConsumer:
    """The bookkeeping attributes of Faust's Consumer that the fix reads and writes."""

    def __init__(self, delivered: Delivered | None) -> None:
        self.app = type("App", (), {"attribution_delivered": delivered})()
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)

    def ack(self, tp: Any, *offsets: int) -> None:
        self._acked[tp].extend(offsets)
        self._acked_index[tp].update(offsets)


def test_the_new_offset_is_the_first_unhandled_one_and_handled_offsets_below_it_are_forgotten() -> None:
    delivered = Delivered()
    consumer = FakeConsumer(delivered)
    consumer._committed_offset[TP0] = 5
    consumer.ack(TP0, 5, 6, 8, 9)
    assert commits._new_offset(consumer, TP0) == 7
    assert consumer._acked[TP0] == [8, 9]
    assert consumer._acked_index[TP0] == {8, 9}
    consumer._committed_offset[TP0] = 7
    assert commits._new_offset(consumer, TP0) is None  # 7 still unhandled: nothing new to commit
    consumer.ack(TP0, 7)
    assert commits._new_offset(consumer, TP0) == 10


def test_a_crashed_record_is_never_committed_past() -> None:
    # The agent failed on 20 (never acked) and later records were handled before the worker stopped.
    delivered = Delivered()
    delivered.reset(TP0, 18)
    consumer = FakeConsumer(delivered)
    consumer._committed_offset[TP0] = 18
    for offset in range(18, 25):
        delivered.saw(TP0, offset)
    consumer.ack(TP0, 18, 19, 21, 22, 23, 24)
    assert commits._new_offset(consumer, TP0) == 20


def test_nothing_is_committed_for_a_partition_without_a_starting_point() -> None:
    consumer = FakeConsumer(Delivered())
    consumer.ack(TP0, 3, 4)
    assert commits._new_offset(consumer, TP0) is None


def test_a_record_handed_to_a_stream_but_skipped_is_reported_lost_after_a_while() -> None:
    delivered = Delivered()
    delivered.reset(TP0, 0)
    consumer = FakeConsumer(delivered)
    consumer._committed_offset[TP0] = 0
    for offset in range(6):
        delivered.saw(TP0, offset)
    consumer.ack(TP0, 0, 1, 3, 4, 5)  # 2 was dropped from the stream buffer
    commits._new_offset(consumer, TP0)
    consumer._committed_offset[TP0] = 2
    assert delivered.lost_heads(consumer, now=0.0) == {}
    assert delivered.lost_heads(consumer, now=LOST_AFTER_S / 2) == {}
    assert delivered.lost_heads(consumer, now=LOST_AFTER_S) == {TP0: 2}


def test_a_record_still_waiting_in_the_stream_is_not_reported_lost() -> None:
    delivered = Delivered()
    delivered.reset(TP0, 0)
    consumer = FakeConsumer(delivered)
    consumer._committed_offset[TP0] = 0
    for offset in range(4):
        delivered.saw(TP0, offset)
    consumer.ack(TP0, 0, 1)  # 2 and 3 are in the stream buffer, in order
    commits._new_offset(consumer, TP0)
    consumer._committed_offset[TP0] = 2
    assert delivered.lost_heads(consumer, now=0.0) == {}
    assert delivered.lost_heads(consumer, now=LOST_AFTER_S * 2) == {}


def test_apps_without_the_guard_keep_fausts_own_bookkeeping() -> None:
    patch_consumer()
    consumer = FakeConsumer(None)
    consumer._committed_offset[TP0] = 31
    consumer.ack(TP0, 32, 33)
    consumer._gap = defaultdict(list)  # what Faust's own method reads
    assert Consumer._new_offset(consumer, TP0) == 34  # Faust's behaviour (issue 606), untouched


def test_the_patch_refuses_a_faust_version_it_was_not_checked_against(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust, "__version__", "0.16.0")
    with pytest.raises(RuntimeError, match=r"faust-streaming 0\.15\.3"):
        patch_consumer()


def test_the_patch_is_in_place_on_fausts_consumer() -> None:
    patch_consumer()
    assert Consumer._new_offset is commits._new_offset
    assert Consumer.perform_seek is commits._perform_seek


def test_the_patch_waits_for_buffered_sends_in_fausts_producer_too() -> None:
    patch_consumer()
    assert Consumer._commit_offsets is commits._commit_offsets
    assert Producer.send_soon is commits._send_soon


async def test_offsets_are_committed_only_once_every_state_write_handed_over_before_is_acknowledged() -> None:
    unsettled = Unsettled()
    write = asyncio.get_running_loop().create_future()
    unsettled.add(write)
    settled = asyncio.ensure_future(unsettled.settle())
    await asyncio.sleep(0.01)
    assert not settled.done()  # the commit waits for the write still in the producer's buffer

    later = asyncio.get_running_loop().create_future()
    unsettled.add(later)  # a write issued after the commit started is not waited for
    write.set_result(None)
    await asyncio.wait_for(settled, 1)
    assert unsettled.futures == {later}


async def test_a_state_write_never_acknowledged_stops_the_commit_loudly() -> None:
    unsettled = Unsettled()
    unsettled.add(asyncio.get_running_loop().create_future())
    with pytest.raises(RuntimeError, match="not committed"):
        await unsettled.settle(timeout=0.01)


async def test_the_commit_of_an_app_with_the_guard_waits_for_its_state_writes() -> None:
    patch_consumer()
    calls: list[str] = []
    consumer = FakeConsumer(Delivered())
    consumer.app.attribution_unsettled = unsettled = Unsettled()  # type: ignore[attr-defined]
    write = asyncio.get_running_loop().create_future()
    unsettled.add(write)

    async def original(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        calls.append("commit")
        return True

    saved = commits._original["_commit_offsets"]
    commits._original["_commit_offsets"] = original
    try:
        committing = asyncio.ensure_future(commits._commit_offsets(consumer, {TP0: 5}))
        await asyncio.sleep(0.01)
        assert calls == []
        write.set_result(None)
        assert await asyncio.wait_for(committing, 1) is True
        assert calls == ["commit"]
    finally:
        commits._original["_commit_offsets"] = saved


async def test_a_stopping_worker_waits_less_for_its_state_writes_and_then_does_not_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patch_consumer()
    monkeypatch.setattr(commits, "STOPPING_SETTLE_TIMEOUT_S", 0.01)
    consumer = FakeConsumer(Delivered())
    consumer.app.should_stop = True  # type: ignore[attr-defined]
    consumer.app.attribution_unsettled = unsettled = Unsettled()  # type: ignore[attr-defined]
    unsettled.add(asyncio.get_running_loop().create_future())  # never acknowledged (producer gone)

    with pytest.raises(RuntimeError, match="not committed"):
        await asyncio.wait_for(commits._commit_offsets(consumer, {TP0: 5}), 1)


async def test_a_seek_runs_on_the_consumer_thread_not_the_callers() -> None:
    from faust.transport.consumer import ThreadDelegateConsumer

    patch_consumer()
    assert ThreadDelegateConsumer._seek is commits._seek_on_consumer_thread
    calls: list[tuple[Any, ...]] = []

    class Thread:
        def seek(self, partition: Any, offset: int) -> None:
            calls.append(("seek", partition, offset))

        async def call_thread(self, fun: Any, *args: Any) -> Any:
            calls.append(("on the consumer thread",))
            return fun(*args)

    consumer = type("C", (), {"_thread": Thread()})()
    await commits._seek_on_consumer_thread(consumer, TP0, 42)

    assert calls == [("on the consumer thread",), ("seek", TP0, 42)]
