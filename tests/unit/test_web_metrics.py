"""Prometheus metrics without a worker: the sensor counts what Faust reports to it, and the
exposition holds every metric the README lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attribution.domain import AttributedConversion, PiggybackFire, UnattributedConversion
from attribution.streaming.processor import output_label
from attribution.web.metrics import Metrics, MetricsSensor, refresher

NAMES = {
    f"p-{t}": t
    for t in ("clicks", "conversions", "pixels", "attributed-conversions", "unattributed-conversions", "dead-letters")
}


@dataclass(frozen=True, order=True)
class TP:
    topic: str
    partition: int


def sensor() -> MetricsSensor:
    return MetricsSensor(Metrics(), NAMES)


def sample(s: MetricsSensor, name: str, **labels: str) -> float | None:
    value: float | None = s.metrics.registry.get_sample_value(name, labels or None)
    return value


def test_consumed_records_are_counted_per_default_topic_name_and_foreign_topics_ignored() -> None:
    s = sensor()
    for offset in range(3):
        s.on_message_in(TP("p-clicks", 0), offset, None)
    s.on_message_in(TP("p-pixels", 0), 0, None)
    s.on_message_in(TP("p-app-users-changelog", 0), 0, None)
    s.flush_consumed()  # before each scrape
    assert sample(s, "attribution_events_consumed_total", topic="clicks") == 3
    assert sample(s, "attribution_events_consumed_total", topic="pixels") == 1
    assert s.positions == {("p-clicks", 0): 3, ("p-pixels", 0): 1}
    s.on_message_in(TP("p-clicks", 0), 3, None)
    s.flush_consumed()
    assert sample(s, "attribution_events_consumed_total", topic="clicks") == 4  # counted once each


def test_a_fetched_batch_counts_as_its_records_and_moves_the_position_past_its_last() -> None:
    s = sensor()
    batch = type("Batch", (), {"records": ["r5", "r6", "r7"]})()  # what `streaming.batches` hands over
    s.on_message_in(TP("p-clicks", 0), 7, batch)
    s.flush_consumed()
    assert sample(s, "attribution_events_consumed_total", topic="clicks") == 3
    assert s.positions == {("p-clicks", 0): 8}


def test_acknowledged_outcomes_and_dead_letters_are_counted_by_kind_reason_and_code() -> None:
    s = sensor()
    for label in [
        ("outcome", "attributed", "post_click"),
        ("outcome", "attributed", "post_view"),
        ("outcome", "unattributed", "repeat_limited"),
        ("dead_letter", "invalid_json"),
    ]:
        s.metrics.count_output(label)  # the streaming app's hook, once the broker acknowledged it
    assert sample(s, "attribution_outcomes_total", kind="attributed", reason="post_click") == 1
    assert sample(s, "attribution_outcomes_total", kind="attributed", reason="post_view") == 1
    assert sample(s, "attribution_outcomes_total", kind="unattributed", reason="repeat_limited") == 1
    assert sample(s, "attribution_dead_letters_total", code="invalid_json") == 1


def test_outputs_are_labelled_from_what_the_engine_made_and_piggyback_fires_are_not_counted() -> None:
    attributed = AttributedConversion(
        "c", 1, 10, "u", 5, "post_view", "t", 1, "a", 100, 7, None, 4, None, None, None, None, None
    )
    assert output_label(attributed) == ("outcome", "attributed", "post_view")
    assert output_label(UnattributedConversion("c", 1, "u", 5, "no_eligible_touch")) == (
        "outcome",
        "unattributed",
        "no_eligible_touch",
    )
    assert output_label(PiggybackFire("c:0", "c", 1, "img", "https://x.example/p", 0, "u", 5)) is None


def test_the_events_agents_processing_time_is_a_histogram_and_other_streams_are_left_out() -> None:
    s = sensor()
    state = s.on_stream_event_in(TP("p-conversions", 0), 0, None, None)
    s.on_stream_event_out(TP("p-conversions", 0), 0, None, None, state)
    assert s.on_stream_event_in(TP("p-pixels", 0), 0, None, None) is None
    s.on_stream_event_out(TP("p-pixels", 0), 0, None, None, None)
    assert sample(s, "attribution_processing_seconds_count") == 1


class FakeConsumer:
    def __init__(self, highwaters: dict[TP, int | None], committed: dict[TP, int]) -> None:
        self.highwaters = highwaters
        self._committed_offset = committed

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters[tp]


def test_lag_is_the_high_watermark_minus_the_position_of_each_assigned_partition() -> None:
    s = sensor()
    s.on_message_in(TP("p-clicks", 0), 9, None)  # read through offset 9: position 10
    consumer = FakeConsumer(
        {
            TP("p-clicks", 0): 25,
            TP("p-conversions", 1): 7,
            TP("p-conversions", 2): None,
            TP("p-conversions", 3): 0,
            TP("p-conversions", 4): 9,
            TP("p-app-changelog", 0): 5,
        },
        {TP("p-conversions", 1): 4},
    )
    # 2: no high watermark yet; 3: empty; 4: records, but no position known yet
    assert s.lags(consumer) == [("clicks", 0, 15), ("conversions", 1, 3), ("conversions", 3, 0)]
    assert s.assignment(consumer) == [("clicks", 0)] + [("conversions", p) for p in range(1, 5)]


def test_a_scrape_reads_the_batches_in_flight_and_the_frozen_objects() -> None:
    s = sensor()
    consumer: Any = FakeConsumer({}, {})
    refresher(s, lambda: consumer, lambda: 0, dict, lambda: 3, lambda: 420_000)()
    text = s.metrics.render().decode()
    assert "attribution_batches_in_flight 3.0" in text
    assert "attribution_gc_frozen_objects 420000.0" in text


def test_a_scrape_refreshes_held_and_lag_and_renders_every_metric() -> None:
    s = sensor()
    consumer: Any = FakeConsumer({TP("p-clicks", 0): 5}, {TP("p-clicks", 0): 5})
    refresher(s, lambda: consumer, lambda: 4)()
    text = s.metrics.render().decode()
    assert "attribution_held_conversions 4.0" in text
    assert 'attribution_consumer_lag{partition="0",topic="clicks"} 0.0' in text
    assert 'attribution_assigned_partitions{topic="clicks"} 1.0' in text
    for name in (
        "attribution_events_consumed_total",
        "attribution_outcomes_total",
        "attribution_dead_letters_total",
        "attribution_processing_seconds_bucket",
    ):
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in text


def test_a_scrape_without_a_consumer_yet_has_no_assignment_or_lag_figures() -> None:
    s = sensor()

    def no_consumer() -> Any:
        raise RuntimeError("not started")

    refresher(s, no_consumer, lambda: 0)()
    text = s.metrics.render().decode()
    assert "attribution_consumer_lag{" not in text
    assert "attribution_assigned_partitions{" not in text


def test_what_the_state_bounds_forgot_is_exposed_from_the_processors_running_totals() -> None:
    from attribution.settings import Settings
    from attribution.streaming.processor import Processor
    from helpers import config

    processor = Processor(Settings(), {}, config)
    processor.forgotten.dedup_ids += 3
    processor.forgotten.touches += 2
    processor.expiry.deleted += 5
    s = sensor()
    s.metrics.forgotten = processor.forgotten_counts

    assert sample(s, "attribution_state_forgotten_total", part="dedup_ids") == 3
    assert sample(s, "attribution_state_forgotten_total", part="touches") == 2
    assert sample(s, "attribution_state_forgotten_total", part="counters") == 0
    assert sample(s, "attribution_state_forgotten_total", part="expired_users") == 5
    assert b'attribution_state_forgotten_total{part="expired_users"} 5.0' in s.metrics.render()


def test_the_hourly_report_agents_outcomes_are_exposed_by_result() -> None:
    import orjson

    from attribution.streaming.reports import Reports

    reports = Reports(1, 86_400_000, lambda pixel_id: None)
    outcome = orjson.dumps(
        {"conversion_id": "c1", "pixel_id": 1, "user_id": "u", "conversion_timestamp": 0, "reason": "pixel_paused"}
    )
    table: dict[bytes, bytes] = {}
    for _ in range(2):
        table.update(reports.apply(outcome, 0, table.get).writes)
    reports.apply(b"not json", 0, table.get)
    s = sensor()
    s.metrics.report_outcomes = reports.counts

    assert sample(s, "attribution_report_outcomes_total", result="counted") == 1
    assert sample(s, "attribution_report_outcomes_total", result="duplicate") == 1
    assert sample(s, "attribution_report_outcomes_total", result="unreadable") == 1
    assert sample(s, "attribution_report_outcomes_total", result="late") == 0
