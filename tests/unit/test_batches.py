"""Each fetched partition's records reach the events agent as one batch (`streaming.batches`),
and a batch's offsets are committed only once the agent handled all of it (`streaming.commits`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, NamedTuple

import faust
import pytest
from faust.transport.consumer import Consumer

from attribution.contract import EVENT_TOPICS
from attribution.streaming import batches, commits
from attribution.streaming.app import BATCH_ORDER
from attribution.streaming.batches import JOIN_MAX_RECORDS, RecordBatch, patch_consumer, records_of
from attribution.streaming.commits import LOST_AFTER_S, STALLED_AFTER_S, Delivered, next_commit
from attribution.streaming.topics import INTERNAL_TOPICS, TICK_TOPIC
from attribution.streaming.tuning import fetch_again


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    """The fields of aiokafka's ConsumerRecord that a batch reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = b"k"
    value: bytes | None = b"{}"
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int | None = 1_000
    timestamp_type: int = 0


EVENTS = TP("impressions", 0)
CONFIG = TP("pixels", 0)


def records(tp: TP, *offsets: int) -> list[Record]:
    return [Record(tp.topic, tp.partition, o) for o in offsets]


class FakeConsumer:
    """What the batched `getmany` and the commit bookkeeping use of Faust's Consumer."""

    def __init__(self, fetched: dict[Any, list[Record]], delivered: Delivered) -> None:
        self.app = type("App", (), {})()
        self.app.attribution_delivered = delivered
        self.app.consumer_generation_id = 3
        self.app.monitor = type("Monitor", (), {"track_tp_end_offset": lambda self, tp, end: None})()
        self.fetched = fetched
        self.should_stop = False
        self.flow_active = True
        self._read_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._buffered_partitions: set[Any] = set()
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
        self.scheduler = type("Scheduler", (), {"iterate": staticmethod(_iterate)})()
        self.seeks = 0
        self.sought: list[tuple[Any, int]] = []

    async def _wait_next_records(self, timeout: float) -> tuple[dict[Any, list[Record]], set[Any] | None]:
        return self.fetched, None

    def _to_message(self, tp: Any, record: Record) -> tuple[str, int]:
        return ("single", record.offset)

    def highwater(self, tp: Any) -> int:
        return 100

    async def perform_seek(self) -> None:
        self.seeks += 1

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))


def _iterate(records: dict[Any, list[Record]]) -> Any:
    for tp, recs in records.items():
        for r in recs:
            yield tp, r


def delivered_for(*topics: str) -> Delivered:
    delivered = Delivered()
    delivered.batched = {topic: i for i, topic in enumerate(topics)}
    return delivered


async def fetch(consumer: FakeConsumer) -> list[tuple[Any, Any]]:
    patch_consumer()
    return [item async for item in Consumer.getmany(consumer, timeout=1.0)]  # type: ignore[arg-type]


async def test_the_records_of_a_fetched_partition_become_one_batch_in_offset_order() -> None:
    consumer = FakeConsumer({EVENTS: records(EVENTS, 4, 5, 6)}, delivered_for("impressions"))
    [(tp, batch)] = await fetch(consumer)
    assert tp == EVENTS
    assert isinstance(batch, RecordBatch)
    assert [r.offset for r in batch.records] == [4, 5, 6]
    assert (batch.offset, batch.offsets, batch.topic, batch.partition) == (6, [4, 5, 6], "impressions", 0)
    assert (batch.key, batch.value, batch.generation_id) == (None, b"", 3)


async def test_the_batches_of_one_fetch_go_in_the_order_of_their_topics() -> None:
    conversions, clicks, impressions = TP("conversions", 0), TP("clicks", 0), TP("impressions", 1)
    fetched = {conversions: records(conversions, 1), clicks: records(clicks, 1), impressions: records(impressions, 1)}
    consumer = FakeConsumer(fetched, delivered_for("impressions", "clicks", "conversions"))
    assert [tp for tp, _ in await fetch(consumer)] == [impressions, clicks, conversions]


def test_the_app_batches_every_input_topic_touches_first_and_ticks_last() -> None:
    assert sorted(BATCH_ORDER) == sorted((*EVENT_TOPICS, *INTERNAL_TOPICS))
    assert BATCH_ORDER.index("conversions") > max(BATCH_ORDER.index(t) for t in ("impressions", "clicks"))
    assert BATCH_ORDER[-1] == TICK_TOPIC


def test_the_app_hands_the_report_agents_their_topics_in_batches_too() -> None:
    from attribution.settings import Settings
    from attribution.streaming import create_app
    from attribution.streaming.reports import OUTCOME_TOPICS, UPDATES_TOPIC

    app = create_app(Settings(app_id="batches-test", topic_prefix="p."))
    batched = app.attribution_delivered.batched  # type: ignore[attr-defined]
    assert sorted(batched, key=batched.__getitem__) == [
        f"p.{t}" for t in (*BATCH_ORDER, *OUTCOME_TOPICS, UPDATES_TOPIC)
    ]


def test_an_agent_reads_a_batchs_records_or_the_one_record_handed_over_singly() -> None:
    batch = RecordBatch(EVENTS, records(EVENTS, 4, 5), 3, delivered_for("impressions"))
    assert batches.records_of(batch) == (batch.records, batch)
    single = Record("impressions", 0, 9)
    assert batches.records_of(single) == ((single,), None)


async def test_records_of_other_topics_stay_one_message_each() -> None:
    fetched = {EVENTS: records(EVENTS, 1, 2), CONFIG: records(CONFIG, 7, 8)}
    consumer = FakeConsumer(fetched, delivered_for("impressions"))
    got = await fetch(consumer)
    assert [m for tp, m in got if tp == CONFIG] == [("single", 7), ("single", 8)]
    assert [len(m.records) for tp, m in got if tp == EVENTS] == [2]


async def test_records_below_the_read_offset_after_a_seek_back_are_left_out_as_faust_drops_them() -> None:
    consumer = FakeConsumer({EVENTS: records(EVENTS, 4, 5, 6)}, delivered_for("impressions"))
    consumer._read_offset[EVENTS] = 6
    [(_, batch)] = await fetch(consumer)
    assert batch.offsets == [6]
    consumer._read_offset[EVENTS] = 7
    assert await fetch(consumer) == []


async def test_records_of_a_partition_faust_does_not_fetch_now_are_read_again_later_not_dropped() -> None:
    other = TP("impressions", 1)
    fetched = {EVENTS: records(EVENTS, 4, 5), other: records(other, 9), CONFIG: records(CONFIG, 7, 8)}
    consumer = FakeConsumer(fetched, delivered_for("impressions"))

    async def wait(timeout: float) -> tuple[dict[Any, list[Record]], set[Any]]:
        return fetched, {other}  # EVENTS and CONFIG left out of the fetch set (a pause)

    consumer._wait_next_records = wait  # type: ignore[method-assign]
    assert [tp for tp, _ in await fetch(consumer)] == [other]
    assert consumer.sought == [(EVENTS, 4), (CONFIG, 7)]


async def test_nothing_is_handed_over_after_the_generation_changed_during_the_fetch() -> None:
    consumer = FakeConsumer({EVENTS: records(EVENTS, 1)}, delivered_for("impressions"))

    async def wait(timeout: float) -> tuple[dict[Any, list[Record]], None]:
        consumer.app.consumer_generation_id = 3
        result = {EVENTS: records(EVENTS, 1), TP("impressions", 1): records(TP("impressions", 1), 1)}
        return result, None

    consumer._wait_next_records = wait  # type: ignore[method-assign]
    got = []
    patch_consumer()
    async for tp, _batch in Consumer.getmany(consumer, timeout=1.0):  # type: ignore[arg-type]
        got.append(tp)
        consumer.app.consumer_generation_id = 4  # a rebalance while the batches are handed over
    assert got == [EVENTS]


async def test_while_flow_is_stopped_nothing_is_handed_over_and_the_consumer_seeks_back() -> None:
    consumer = FakeConsumer({EVENTS: records(EVENTS, 1)}, delivered_for("impressions"))
    consumer.flow_active = False
    assert await fetch(consumer) == []
    assert consumer.seeks == 1


def test_a_handled_batch_is_committed_past_its_last_offset() -> None:
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({}, delivered)
    delivered.reset(EVENTS, 10)
    consumer._committed_offset[EVENTS] = 10
    batch = RecordBatch(EVENTS, records(EVENTS, 10, 11, 12), 3, delivered)
    delivered.saw_batch(EVENTS, batch.offsets)
    consumer._acked[EVENTS].append(12)  # Faust's acknowledgement alone does not count
    consumer._acked_index[EVENTS].add(12)
    assert commits._new_offset(consumer, EVENTS) is None
    batch.handled()
    assert commits._new_offset(consumer, EVENTS) == 13
    assert delivered.spans[EVENTS] == {}  # forgotten once committed past


def test_a_batch_faust_acknowledged_without_its_agent_handling_it_is_never_committed() -> None:
    # Faust acknowledges the events a stream skips (a stale generation): those records were not
    # handled, whatever offsets Faust's acknowledgements hold.
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({}, delivered)
    delivered.reset(EVENTS, 0)
    consumer._committed_offset[EVENTS] = 0
    delivered.saw_batch(EVENTS, [0])
    consumer._acked[EVENTS].append(0)
    consumer._acked_index[EVENTS].add(0)
    assert commits._new_offset(consumer, EVENTS) is None


def test_the_commit_stops_at_the_first_batch_not_handled() -> None:
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({}, delivered)
    delivered.reset(EVENTS, 0)
    consumer._committed_offset[EVENTS] = 0
    first, second, third = (RecordBatch(EVENTS, records(EVENTS, *r), 3, delivered) for r in ((0, 1), (2, 3), (4,)))
    for batch in (first, second, third):
        delivered.saw_batch(EVENTS, batch.offsets)
    first.handled()
    third.handled()  # the second crashed in the agent
    assert commits._new_offset(consumer, EVENTS) == 2


def test_holes_inside_a_batch_count_as_absent_records() -> None:
    delivered = delivered_for("impressions")
    delivered.reset(EVENTS, 0)
    delivered.saw_batch(EVENTS, [0, 1, 5, 6])  # 2..4 do not exist (compaction, markers)
    assert delivered.gaps[EVENTS] == [(2, 5)]
    assert next_commit(0, (), delivered.gaps[EVENTS], {0: 6}) == 7
    assert next_commit(0, (), delivered.gaps[EVENTS], {}) == 0


def test_a_seek_forgets_the_batches_handled_at_or_after_it_and_keeps_those_below() -> None:
    delivered = delivered_for("impressions")
    delivered.reset(EVENTS, 0)
    delivered.saw_batch(EVENTS, [0, 1, 5])  # 2..4 do not exist
    delivered.handled(EVENTS, 0, 5)
    delivered.handled(EVENTS, 6, 9)
    delivered.reset(EVENTS, 0)
    assert next_commit(0, (), delivered.gaps.get(EVENTS, ()), delivered.spans.get(EVENTS)) == 0
    delivered.saw_batch(EVENTS, [0, 1, 5])
    delivered.handled(EVENTS, 0, 5)
    delivered.handled(EVENTS, 6, 9)
    delivered.reset(EVENTS, 6)  # handled below the seek: still handled
    assert next_commit(0, (), delivered.gaps.get(EVENTS, ()), delivered.spans.get(EVENTS)) == 6


def test_a_batch_cut_is_committed_up_to_the_cut_and_a_seek_back_to_it_keeps_that() -> None:
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({}, delivered)
    delivered.reset(EVENTS, 0)
    consumer._committed_offset[EVENTS] = 0
    first, cut = (RecordBatch(EVENTS, records(EVENTS, *r), 3, delivered) for r in ((0, 1), (2, 3, 4, 5)))
    for batch in (first, cut):
        delivered.saw_batch(EVENTS, batch.offsets)
    first.handled()
    cut.handled(before=4)
    delivered.cut(EVENTS, 4)
    delivered.reset(EVENTS, 4)  # the seek back to the cut, before the commit
    assert delivered.cuts == {EVENTS: 4}
    assert commits._new_offset(consumer, EVENTS) == 4
    RecordBatch(EVENTS, records(EVENTS, 8), 3, delivered).handled(before=8)  # cut at its first record
    assert delivered.spans[EVENTS] == {}


async def test_after_a_cut_only_the_fetch_starting_at_the_cut_is_handed_over_and_it_ends_the_cut() -> None:
    delivered = delivered_for("impressions")
    delivered.cut(EVENTS, 4)
    consumer = FakeConsumer({EVENTS: records(EVENTS, 6, 7)}, delivered)
    assert await fetch(consumer) == []  # fetched before the cut took effect
    assert consumer.sought == []  # not skipped for a pause: the seek back to the cut is the app's
    consumer.fetched = {EVENTS: records(EVENTS, 4, 5, 6)}
    [(_, batch)] = await fetch(consumer)
    assert batch.offsets == [4, 5, 6]
    assert delivered.cuts == {}
    records_of(batch)  # the agent takes it
    consumer.fetched = {EVENTS: records(EVENTS, 9)}
    assert len(await fetch(consumer)) == 1


def test_a_seek_elsewhere_than_the_cut_forgets_it() -> None:
    delivered = delivered_for("impressions")
    delivered.cut(EVENTS, 4)
    delivered.reset(EVENTS, 2)  # a rebalance: reading starts over at the committed offset
    assert delivered.cuts == {}


def test_a_batch_handed_over_but_never_handled_while_later_ones_were_is_reported_lost() -> None:
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({}, delivered)
    delivered.reset(EVENTS, 0)
    consumer._committed_offset[EVENTS] = 0
    delivered.saw_batch(EVENTS, [0, 1])
    delivered.saw_batch(EVENTS, [2, 3])
    delivered.handled(EVENTS, 2, 3)  # 0..1 was dropped on the way
    assert delivered.lost_heads(consumer, now=0.0) == {}
    assert delivered.lost_heads(consumer, now=LOST_AFTER_S) == {EVENTS: 0}


def test_install_needs_the_commit_guard_first() -> None:
    app = faust.App("batches-no-guard")
    with pytest.raises(RuntimeError, match=r"commits\.install"):
        batches.install(app, ["impressions"])


async def test_apps_without_batches_keep_fausts_getmany() -> None:
    patch_consumer()
    consumer = FakeConsumer({}, Delivered())  # no batched topics
    called = []

    async def faust_getmany(self: Any, timeout: float) -> Any:
        called.append(timeout)
        yield "faust"

    original = batches._original["getmany"]
    batches._original["getmany"] = faust_getmany
    try:
        assert [m async for m in Consumer.getmany(consumer, timeout=2.0)] == ["faust"]  # type: ignore[arg-type]
    finally:
        batches._original["getmany"] = original
    assert called == [2.0]


def test_the_patch_refuses_a_faust_version_it_was_not_checked_against(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust, "__version__", "0.0.0")
    with pytest.raises(RuntimeError, match=r"Consumer\.getmany"):
        patch_consumer()


def test_the_patch_is_in_place_on_fausts_consumer() -> None:
    patch_consumer()
    assert Consumer.getmany is batches.batched_getmany


async def test_a_batch_is_a_message_faust_can_decode_with_raw_codecs() -> None:
    app = faust.App("batches-decode")
    topic = app.topic("impressions", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    batch = RecordBatch(EVENTS, records(EVENTS, 1, 2), 0, delivered_for("impressions"))
    event = await topic.decode(batch, propagate=True)
    assert event.message is batch
    assert event.value == b""
    await asyncio.sleep(0)


class StallConsumer(FakeConsumer):
    """Also what `Delivered.stalled` reads: the assignment, high watermarks, Faust's pauses."""

    def __init__(self, delivered: Delivered, highwater: int) -> None:
        super().__init__({}, delivered)
        self._paused_partitions: set[Any] = set()
        self.end = highwater

    def assignment(self) -> set[Any]:
        return {EVENTS, CONFIG}

    def highwater(self, tp: Any) -> int:
        return self.end


def stalling(highwater: int = 20) -> tuple[Delivered, StallConsumer]:
    delivered = delivered_for("impressions")
    consumer = StallConsumer(delivered, highwater)
    delivered.reset(EVENTS, 0)
    consumer._committed_offset[EVENTS] = 0
    delivered.saw_batch(EVENTS, [0, 1, 2])
    delivered.handled(EVENTS, 0, 2)
    return delivered, consumer


def test_a_partition_with_records_to_read_that_reach_no_stream_is_found_stalled() -> None:
    delivered, consumer = stalling()
    assert delivered.stalled(consumer, 0.0, paused=set()) == {}
    assert delivered.stalled(consumer, STALLED_AFTER_S - 1, paused=set()) == {}
    assert delivered.stalled(consumer, STALLED_AFTER_S, paused=set()) == {EVENTS: 3}  # the first unhandled


def test_a_partition_read_to_its_end_or_moving_on_is_not_stalled() -> None:
    delivered, consumer = stalling(highwater=3)  # nothing more to read
    delivered.stalled(consumer, 0.0, paused=set())
    assert delivered.stalled(consumer, STALLED_AFTER_S * 2, paused=set()) == {}
    delivered, consumer = stalling()
    delivered.stalled(consumer, 0.0, paused=set())
    delivered.saw_batch(EVENTS, [3, 4])  # records keep arriving
    assert delivered.stalled(consumer, STALLED_AFTER_S, paused=set()) == {}


def test_a_partition_paused_by_the_worker_or_by_faust_is_not_stalled() -> None:
    delivered, consumer = stalling()
    delivered.stalled(consumer, 0.0, paused={("impressions", 0)})
    assert delivered.stalled(consumer, STALLED_AFTER_S, paused={("impressions", 0)}) == {}
    consumer._paused_partitions.add(EVENTS)
    delivered.stalled(consumer, 0.0, paused=set())
    assert delivered.stalled(consumer, STALLED_AFTER_S, paused=set()) == {}


def test_only_the_topics_asked_for_are_checked_for_stalls() -> None:
    delivered, consumer = stalling()
    delivered.stalled(consumer, 0.0, paused=set(), topics={"conversions"})
    assert delivered.stalled(consumer, STALLED_AFTER_S, paused=set(), topics={"conversions"}) == {}
    delivered.stalled(consumer, 0.0, paused=set(), topics={"impressions"})
    assert delivered.stalled(consumer, STALLED_AFTER_S, paused=set(), topics={"impressions"}) == {EVENTS: 3}


def test_a_stalled_partition_is_put_back_in_fausts_fetch_set() -> None:
    consumer = type("C", (), {})()
    consumer._buffered_partitions = {EVENTS}
    active: set[Any] = set()
    consumer._get_active_partitions = lambda: active
    fetch_again(consumer, EVENTS)
    assert consumer._buffered_partitions == set()
    assert active == {EVENTS}


# --- a fetch joins its partition's batch still waiting in the queue ---------------------------------


async def test_records_fetched_while_their_partitions_batch_waits_in_the_queue_join_it() -> None:
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({EVENTS: records(EVENTS, 4, 5)}, delivered)
    [(_, batch)] = await fetch(consumer)
    consumer.fetched = {EVENTS: records(EVENTS, 6, 8)}

    assert await fetch(consumer) == []  # nothing new queued: the waiting batch grew
    assert batch.offsets == [4, 5, 6, 8]
    assert [r.offset for r in batch.records] == [4, 5, 6, 8]
    assert batch.offset == 8  # Faust's fields: the last record's
    assert consumer._read_offset[EVENTS] == 8  # as Faust's drain loop sets it after a hand-over
    assert delivered.last[EVENTS] == 8
    assert delivered.gaps[EVENTS] == [(7, 8)]  # the hole inside the joined records: absent

    records_of(batch)
    batch.handled()
    assert delivered.spans[EVENTS] == {4: 8}


async def test_a_batch_its_agent_has_taken_is_not_joined() -> None:
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({EVENTS: records(EVENTS, 4, 5)}, delivered)
    [(_, first)] = await fetch(consumer)
    assert records_of(first) == (first.records, first)
    consumer.fetched = {EVENTS: records(EVENTS, 6)}

    [(_, second)] = await fetch(consumer)
    assert first.offsets == [4, 5]
    assert second.offsets == [6]
    assert delivered.waiting == {EVENTS: second}


async def test_a_batch_of_another_generation_or_at_its_size_limit_is_not_joined() -> None:
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({EVENTS: records(EVENTS, 4)}, delivered)
    [(_, old)] = await fetch(consumer)
    consumer.app.consumer_generation_id = 4  # a rebalance
    consumer.fetched = {EVENTS: records(EVENTS, 5)}
    [(_, fresh)] = await fetch(consumer)
    assert (old.offsets, fresh.offsets) == ([4], [5])

    consumer.fetched = {EVENTS: records(EVENTS, *range(6, 6 + JOIN_MAX_RECORDS))}
    [(_, full)] = await fetch(consumer)
    assert fresh.offsets == [5]
    assert len(full.offsets) == JOIN_MAX_RECORDS


async def test_a_seek_or_a_cut_leaves_the_waiting_batch_as_it_is() -> None:
    delivered = delivered_for("impressions")
    consumer = FakeConsumer({EVENTS: records(EVENTS, 4, 5)}, delivered)
    [(_, batch)] = await fetch(consumer)
    delivered.reset(EVENTS, 9)  # reading starts over elsewhere
    consumer.fetched = {EVENTS: records(EVENTS, 9)}
    [(_, after_seek)] = await fetch(consumer)
    assert (batch.offsets, after_seek.offsets) == ([4, 5], [9])

    delivered.cut(EVENTS, 10)
    consumer.fetched = {EVENTS: records(EVENTS, 10)}  # the fetch starting at the cut
    [(_, after_cut)] = await fetch(consumer)
    assert (after_seek.offsets, after_cut.offsets) == ([9], [10])
