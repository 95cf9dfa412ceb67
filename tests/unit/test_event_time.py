"""Event time under lag: a touch source with unread records is behind, never idle (`event_time`, `flow`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import time as wall_time
from typing import Any, NamedTuple

from attribution.streaming.event_time import LAG_SOURCES, MAX_HELD_PER_USER, MAX_TOUCH_LEAD_MS, EventTime
from attribution.streaming.flow import Backpressure, pause_fetching, report_lag

HOLD_MS = 3000
T = 1_700_000_000_000


def held_conversion(time: EventTime, ts: int = T, now: float = 0.0, user: bytes = b"u1", partition: int = 0) -> None:
    assert not time.saw_conversion(partition, ts)
    time.held(partition, ts, user, now)


def all_caught_up(time: EventTime, now: float, partition: int = 0) -> None:
    for source in LAG_SOURCES:
        time.report_lag(partition, source, highwater=0, start=0, now=now)


def test_a_conversion_is_never_judged_by_the_clock_while_its_touch_partitions_are_behind() -> None:
    time = EventTime(HOLD_MS)
    held_conversion(time, now=0.0)
    all_caught_up(time, now=0.0)
    time.report_lag(0, "impressions", highwater=50_000, start=0, now=0.0)  # a backlog of impressions
    for now in (3.0, 60.0, 3600.0):
        assert time.releasable_through(0, now) is None
        assert time.due_ticks(now) == []


def test_a_conversion_is_judged_once_the_lagging_source_caught_up_and_the_wait_has_passed_since() -> None:
    time = EventTime(HOLD_MS)
    held_conversion(time, now=0.0)
    all_caught_up(time, now=0.0)
    time.report_lag(0, "clicks", highwater=10, start=0, now=0.0)
    for offset in range(10):
        time.saw_offset(0, "clicks", offset)
    time.report_lag(0, "clicks", highwater=10, start=0, now=100.0)  # caught up at t=100
    assert time.releasable_through(0, 102.9) is None  # the wait counts from catching up
    assert time.releasable_through(0, 103.0) == T


def test_a_source_caught_up_long_ago_still_gives_a_new_conversion_the_whole_wait() -> None:
    time = EventTime(HOLD_MS)
    all_caught_up(time, now=0.0)
    held_conversion(time, now=500.0)
    assert time.releasable_through(0, 502.0) is None
    assert time.releasable_through(0, 503.0) == T


def test_a_source_that_passed_the_conversion_does_not_need_to_be_caught_up() -> None:
    time = EventTime(HOLD_MS)
    held_conversion(time, now=0.0)
    time.saw_touch(0, "impression", T + 1)  # impressions passed it; clicks are quiet and caught up
    time.report_lag(0, "impressions", highwater=1_000_000, start=0, now=0.0)  # and far behind
    time.report_lag(0, "clicks", highwater=0, start=0, now=0.0)
    time.report_lag(0, "rekeyed-events", highwater=0, start=0, now=0.0)
    assert time.releasable_through(0, 3.0) == T


def test_both_watermarks_past_a_held_conversion_release_it_without_waiting() -> None:
    time = EventTime(HOLD_MS)
    held_conversion(time, now=0.0)
    time.saw_touch(0, "impression", T + 1)
    assert time.saw_touch(0, "click", T + 5) == T  # released by the touch that passed it
    assert time.releasable_through(0, 0.0) == T  # and by a tick, before the watermark's own release


def test_a_source_never_reported_counts_as_behind() -> None:
    time = EventTime(HOLD_MS)
    held_conversion(time, now=0.0)
    assert time.releasable_through(0, 10_000.0) is None


def test_a_source_that_falls_behind_again_restarts_its_wait() -> None:
    time = EventTime(HOLD_MS)
    held_conversion(time, now=0.0)
    all_caught_up(time, now=0.0)
    time.report_lag(0, "impressions", highwater=5, start=0, now=2.0)  # new records arrived
    time.saw_offset(0, "impressions", 4)
    time.report_lag(0, "impressions", highwater=5, start=0, now=2.5)
    assert time.releasable_through(0, 3.0) is None
    assert time.releasable_through(0, 5.5) == T


def test_the_committed_offset_counts_as_read_before_any_record_is_handled() -> None:
    time = EventTime(HOLD_MS)
    time.report_lag(0, "clicks", highwater=120, start=120, now=1.0)
    assert time.of(0).caught_up_since["clicks"] == 1.0
    time.report_lag(0, "clicks", highwater=121, start=120, now=2.0)
    assert "clicks" not in time.of(0).caught_up_since


def test_a_partition_over_its_held_limit_asks_for_back_pressure() -> None:
    time = EventTime(HOLD_MS, max_held=3)
    for i in range(3):
        held_conversion(time, ts=T + i, user=f"u{i}".encode())
    assert not time.over_limit(0)
    held_conversion(time, ts=T + 3, user=b"u3")
    assert time.over_limit(0)
    assert not time.over_limit(1)


# --- the consumer side (`flow`) -------------------------------------------------------------


class TP(NamedTuple):
    topic: str
    partition: int


class FakeClient:
    """The aiokafka consumer behind Faust's: when it last fetched each partition (wall-clock ms)."""

    def __init__(self) -> None:
        self.stale: set[tuple[str, int]] = set()

    def last_poll_timestamp(self, tp: Any) -> int:
        age_ms = 60_000 if (tp.topic, tp.partition) in self.stale else 10
        return int(wall_time() * 1000) - age_ms


@dataclass
class FakeConsumer:
    """The consumer methods `report_lag` uses: assignment, highwater, committed offsets, and the
    aiokafka consumer's last fetch per partition."""

    assigned: set[TP]
    highwaters: dict[TP, int] = field(default_factory=dict)
    _committed_offset: dict[TP, int] = field(default_factory=dict)
    client: FakeClient = field(default_factory=FakeClient)

    @property
    def _thread(self) -> Any:
        return type("Thread", (), {"_consumer": self.client})()

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)


NAMES = {f"p.{n}": n for n in (*LAG_SOURCES, "conversions")}
TOPICS = {n: f"p.{n}" for n in ("impressions", "clicks", "conversions")}


def test_lag_is_reported_from_the_consumers_high_watermarks_and_committed_offsets() -> None:
    tps = {TP(f"p.{n}", 0) for n in NAMES.values()}
    consumer = FakeConsumer(
        tps,
        highwaters={TP("p.impressions", 0): 10, TP("p.clicks", 0): 7, TP("p.rekeyed-events", 0): 0},
        _committed_offset={TP("p.impressions", 0): 3, TP("p.clicks", 0): 7},
    )
    time = EventTime(HOLD_MS)
    report_lag(consumer, time, NAMES, now=5.0)
    assert time.of(0).caught_up_since == {"clicks": 5.0, "rekeyed-events": 5.0}
    for offset in range(3, 10):
        time.saw_offset(0, "impressions", offset)
    report_lag(consumer, time, NAMES, now=6.0)
    assert time.of(0).caught_up_since == {"clicks": 5.0, "rekeyed-events": 5.0, "impressions": 6.0}


def test_a_high_watermark_the_consumer_has_not_refreshed_lately_counts_as_behind() -> None:
    clicks = TP("p.clicks", 0)
    consumer = FakeConsumer({clicks}, highwaters={clicks: 7}, _committed_offset={clicks: 7})
    consumer.client.stale.add(("p.clicks", 0))  # paused, or just taken over: no fetch for a minute
    time = EventTime(HOLD_MS)
    report_lag(consumer, time, NAMES, now=1.0)
    assert time.of(0).caught_up_since == {}
    consumer.client.stale.clear()
    report_lag(consumer, time, NAMES, now=2.0)
    assert time.of(0).caught_up_since == {"clicks": 2.0}


def test_a_partition_without_a_known_high_watermark_is_behind() -> None:
    consumer = FakeConsumer({TP("p.clicks", 2)})
    time = EventTime(HOLD_MS)
    report_lag(consumer, time, NAMES, now=1.0)
    assert time.of(2).caught_up_since == {}


def test_back_pressure_pauses_a_conversions_partition_over_the_limit_and_resumes_it_at_half() -> None:
    conversions = TP("p.conversions", 1)
    assignment = {conversions, TP("p.clicks", 1)}
    time = EventTime(HOLD_MS, max_held=4)
    backpressure = Backpressure(TOPICS)
    for i in range(5):
        held_conversion(time, ts=T + i, user=f"u{i}".encode(), partition=1)
    assert backpressure.decide(assignment, time) == ([conversions], [])
    # paused again each time: a rebalance gives the consumer fresh, unpaused partition states
    assert backpressure.decide(assignment, time) == ([conversions], [])
    time.pop_through(1, T + 2)  # 2 left: at or below half the limit
    assert backpressure.decide(assignment, time) == ([], [conversions])
    assert backpressure.decide(assignment, time) == ([], [])


def test_a_cut_conversions_partition_is_paused_until_its_user_holds_half_and_then_read_again_from_the_cut() -> None:
    conversions, clicks = TP("p.conversions", 1), TP("p.clicks", 1)
    assignment = {conversions, clicks}
    time = EventTime(HOLD_MS)
    backpressure = Backpressure(TOPICS)
    for i in range(MAX_HELD_PER_USER):
        held_conversion(time, ts=T + i, user=b"bot", partition=1)
    time.cut(1, 700, b"bot")
    assert backpressure.cut(conversions)  # paused by the agent at once
    assert not backpressure.cut(conversions)  # already
    assert backpressure.decide(assignment, time) == ([conversions], [])
    time.pop_through(1, T + MAX_HELD_PER_USER // 2 - 1)  # half of them judged: no longer blocking
    pause, resume = backpressure.decide(assignment, time)
    assert (pause, resume) == ([], [conversions])
    assert backpressure.seeks([*resume, clicks], time) == {conversions: 700}  # never a touch partition
    assert not time.read_again(1, 705)  # fetched before the cut took effect: dropped
    assert time.read_again(1, 700)
    assert time.cut_at(1) is None


def test_a_cut_of_another_user_or_none_does_not_block() -> None:
    time = EventTime(HOLD_MS)
    assert not time.cut_blocks(0)
    assert time.read_again(0, 5)
    for i in range(MAX_HELD_PER_USER):
        held_conversion(time, ts=T + i, user=f"u{i}".encode())
    time.cut(0, 9, b"someone-else")
    assert not time.cut_blocks(0)
    assert not time.over_limit(0)


def test_back_pressure_forgets_a_partition_that_moved_to_another_worker() -> None:
    conversions = TP("p.conversions", 0)
    time = EventTime(HOLD_MS, max_held=1)
    backpressure = Backpressure(TOPICS)
    held_conversion(time, ts=T, user=b"a")
    held_conversion(time, ts=T + 1, user=b"b")
    assert backpressure.decide({conversions}, time) == ([conversions], [])
    assert backpressure.decide(set(), time) == ([], [])
    assert backpressure.paused == set()


class FakeAiokafka:
    def __init__(self, assigned: set[Any]) -> None:
        self.assigned = assigned
        self.paused: set[Any] = set()

    def assignment(self) -> set[Any]:
        return self.assigned

    def pause(self, *tps: Any) -> None:
        self.paused.update(tps)

    def resume(self, *tps: Any) -> None:
        self.paused.difference_update(tps)


class FakeThread:
    def __init__(self, client: FakeAiokafka) -> None:
        self._consumer = client
        self.calls = 0

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        self.calls += 1
        return await fun(*args)


async def test_fetching_is_paused_in_the_aiokafka_consumer_for_assigned_partitions_only() -> None:
    from aiokafka import TopicPartition

    client = FakeAiokafka({TopicPartition("p.conversions", 0)})
    consumer = type("Consumer", (), {"_thread": FakeThread(client)})()
    assert await pause_fetching(consumer, [TP("p.conversions", 0), TP("p.conversions", 3)], [])
    assert client.paused == {TopicPartition("p.conversions", 0)}
    assert await pause_fetching(consumer, [], [TP("p.conversions", 0)])
    assert client.paused == set()
    assert consumer._thread.calls == 2
    assert await pause_fetching(consumer, [], [])  # nothing to do: no call into the thread
    assert consumer._thread.calls == 2


async def test_pausing_before_the_consumer_thread_exists_does_nothing() -> None:
    assert not await pause_fetching(object(), [TP("p.conversions", 0)], [])


# --- pacing: touches never run far ahead of the conversions still to be judged --------------


def test_a_touch_source_far_ahead_of_a_held_conversion_is_paused_until_within_half_the_lead() -> None:
    time = EventTime(HOLD_MS)
    held_conversion(time, ts=T)
    time.saw_touch(0, "impression", T + MAX_TOUCH_LEAD_MS + 1)
    assert time.pace(0) == {"impressions"}
    time.saw_conversion(0, T + MAX_TOUCH_LEAD_MS // 2 - 1)  # the conversions move on...
    time.pop_through(0, T)  # ...and the held one is judged
    assert time.pace(0) == {"impressions"}  # still more than half the lead ahead
    time.saw_conversion(0, T + MAX_TOUCH_LEAD_MS // 2 + 1)
    assert time.pace(0) == set()


def test_touches_run_free_when_no_conversion_is_pending() -> None:
    time = EventTime(HOLD_MS)
    time.saw_conversion(0, T)
    time.report_lag(0, "conversions", highwater=1, start=1, now=0.0)  # conversions read to their end
    time.saw_touch(0, "click", T + 10 * MAX_TOUCH_LEAD_MS)
    assert time.pace(0) == set()
    time.report_lag(0, "conversions", highwater=9, start=1, now=1.0)  # conversions to read again
    assert time.pace(0) == {"clicks"}


def test_nothing_is_paced_before_the_conversions_time_is_known() -> None:
    time = EventTime(HOLD_MS)
    time.saw_touch(0, "click", T)
    assert time.pace(0) == set()


def test_pacing_pauses_the_touch_partitions_ahead_and_resumes_them() -> None:
    impressions, clicks = TP("p.impressions", 3), TP("p.clicks", 3)
    assignment = {impressions, clicks, TP("p.conversions", 3)}
    time = EventTime(HOLD_MS)
    backpressure = Backpressure(TOPICS)
    held_conversion(time, ts=T, partition=3)
    time.saw_touch(3, "impression", T + 2 * MAX_TOUCH_LEAD_MS)
    assert backpressure.decide(assignment, time) == ([impressions], [])
    assert backpressure.decide(assignment, time) == ([impressions], [])
    time.pop_through(3, T)
    time.report_lag(3, "conversions", highwater=0, start=0, now=0.0)  # nothing left to judge
    assert backpressure.decide(assignment, time) == ([], [impressions])
    assert backpressure.decide(assignment, time) == ([], [])


def test_the_log_says_what_each_partition_holding_conversions_waits_for() -> None:
    time = EventTime(HOLD_MS)
    held_conversion(time, now=0.0)
    all_caught_up(time, now=0.0)
    time.report_lag(0, "impressions", highwater=50_000, start=0, now=0.0)
    time.of(1)  # a partition holding nothing is not mentioned
    [line] = time.waiting(now=5.0)
    assert line.startswith(f"partition 0: 1 held from {T};")
    assert "caught up: clicks,rekeyed-events;" in line
    assert "releasable through: None" in line
