"""Prometheus metrics of one worker, served at `/metrics` (text exposition format).

| metric | type | labels | what |
|---|---|---|---|
| `attribution_events_consumed_total` | counter | `topic` | records this worker's agents consumed, per input topic (default names, internal topics included) |
| `attribution_outcomes_total` | counter | `kind`, `reason` | conversion outcomes this worker published: `kind` `attributed` (`reason` = `post_click`/`post_view`) or `unattributed` (`reason` = the reason) |
| `attribution_dead_letters_total` | counter | `code` | dead letters this worker published, by error code |
| `attribution_held_conversions` | gauge | | conversions this worker holds, waiting for the touch streams (event time) |
| `attribution_consumer_lag` | gauge | `topic`, `partition` | records not yet read, per assigned input partition (high watermark - position; known once the partition has a committed offset or delivered a record, or is empty) |
| `attribution_assigned_partitions` | gauge | `topic` | input partitions assigned to this worker |
| `attribution_config_records_total` | counter | `topic`, `kind` | unusual config records this worker's config agent handled: `restore` (a valid version re-published over an invalid record), `unknown_id` (a delete of an id that does not exist), `unknown_pixel` (a line item naming pixels that do not exist) |
| `attribution_processing_seconds` | histogram | | time from the events agent taking one fetched batch to its states being written (judging, sending, acknowledgements) |
| `attribution_batches_in_flight` | gauge | | fetched batches whose states wait for their outputs' acknowledgements (`streaming.pending`, at most 64) |
| `attribution_gc_frozen_objects` | gauge | | objects the cyclic garbage collector skips (`streaming.collector`: frozen each 0.2 s, all collected 15 minutes after the start, then ever more rarely while that frees nothing); it follows the decoded states kept, and growth beyond that points at a leak |
| `attribution_report_outcomes_total` | counter | `result` | outcomes the hourly report agents handled: `counted` (into its row), `duplicate` (counted before: nothing changed), `late` (its hour expired: not counted), `unreadable` (not an outcome record), `unremembered` (counted, but its row's shard was full: see docs/reliability.md) |
| `attribution_state_forgotten_total` | counter | `part` | what a bound of users' state forgot on this worker: `dedup_ids` (the earliest of a user's 256), `touches` (over the caps per advertiser or per user), `counters` (repeat counters over 128 pixels), `expired_users` (states deleted once expired) |

Figures are per worker, as Prometheus expects (sum them across workers). Counters count what was
published, so a record re-published after a crash (at-least-once delivery) counts again; `/stats`
is the deduplicated view.

They are fed by a Faust sensor (`MetricsSensor`): Faust calls it for every consumed message and
every stream event, so the agents need no code of their own for it. Outcomes and dead letters are
counted as the processor labelled them (`streaming.processor.output_label`), once the broker
acknowledged each (`Metrics.count_output`, a hook of the streaming app): no output is parsed again. The state counters
are plain integers the processor keeps (`Processor.forgotten`, `StateExpiry.deleted`), read at
scrape time (`Metrics.forgotten`), so the hot path pays an addition only when a bound forgets;
the consumed records are likewise added up per topic in a plain dict and passed to their
Prometheus counter at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
EVENT_AGENT_TOPICS = frozenset({"impressions", "clicks", "conversions", "rekeyed-events", "event-time-ticks"})


class Metrics:
    """The metrics of one worker, in a registry of their own (not the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.consumed = Counter(
            "attribution_events_consumed", "Records consumed by this worker, per input topic.", ["topic"], registry=r
        )
        self.outcomes = Counter(
            "attribution_outcomes",
            "Conversion outcomes published by this worker, by kind (attributed/unattributed) and reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "attribution_dead_letters", "Dead letters published by this worker, by error code.", ["code"], registry=r
        )
        self.held = Gauge(
            "attribution_held_conversions", "Conversions held until the touch streams pass them.", registry=r
        )
        self.lag = Gauge(
            "attribution_consumer_lag",
            "Records not yet read, per assigned input partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.assigned = Gauge(
            "attribution_assigned_partitions", "Input partitions assigned to this worker.", ["topic"], registry=r
        )
        self.in_flight = Gauge(
            "attribution_batches_in_flight",
            "Fetched batches whose states wait for their outputs' acknowledgements.",
            registry=r,
        )
        self.frozen = Gauge(
            "attribution_gc_frozen_objects", "Objects the cyclic garbage collector skips (frozen).", registry=r
        )
        self.processing = Histogram(
            "attribution_processing_seconds",
            "Time from the events agent taking a fetched batch of a partition's records to its states being written.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        #: part -> running total of what a state bound forgot; set by the app (the processor's `forgotten_counts`).
        self.forgotten: Callable[[], Mapping[str, int]] = dict
        r.register(_ForgottenCollector(self))
        #: result -> running total of the report agents' outcomes; set by the app (`Reports.counts`).
        self.report_outcomes: Callable[[], Mapping[str, int]] = dict
        r.register(_ReportCollector(self))

        self.config_notes = Counter(
            "attribution_config_records",
            "Unusual config records this worker's config agent handled, by topic and kind (restore: a valid "
            "version re-published over an invalid record; unknown_id: a delete of an id that does not exist; "
            "unknown_pixel: a line item naming pixels that do not exist).",
            ["topic", "kind"],
            registry=r,
        )
        self._config_notes_seen: dict[tuple[str, str], int] = {}

    def count_output(self, label: tuple[str, ...]) -> None:
        """Count one acknowledged output: ("outcome", kind, reason) or ("dead_letter", code)."""
        if label[0] == "outcome":
            self.outcomes.labels(label[1], label[2]).inc()
        elif label[0] == "dead_letter":
            self.dead_letters.labels(label[1]).inc()

    def set_config_notes(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Bring the config-record counter up to the config agent's counts (they only grow)."""
        for (topic, kind), n in counts.items():
            seen = self._config_notes_seen.get((topic, kind), 0)
            if n > seen:
                self.config_notes.labels(topic, kind).inc(n - seen)
                self._config_notes_seen[(topic, kind)] = n

    def set_assignment(self, assigned: Iterable[tuple[str, int]], lags: Iterable[tuple[str, int, int]]) -> None:
        """Replace the assignment and lag gauges: (topic, partition) assigned, (topic, partition, lag)."""
        self.assigned.clear()
        counts: dict[str, int] = {}
        for topic, _ in assigned:
            counts[topic] = counts.get(topic, 0) + 1
        for topic, n in counts.items():
            self.assigned.labels(topic).set(n)
        self.lag.clear()
        for topic, partition, lag in lags:
            self.lag.labels(topic, str(partition)).set(lag)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ForgottenCollector(Collector):
    """`attribution_state_forgotten_total`, read from the processor's running totals."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "attribution_state_forgotten",
            "What a bound of users' state forgot on this worker, by part.",
            labels=["part"],
        )
        for part, n in sorted(self.metrics.forgotten().items()):
            family.add_metric([part], n)
        yield family


class _ReportCollector(Collector):
    """`attribution_report_outcomes_total`, read from the report agents' running totals."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "attribution_report_outcomes",
            "Outcomes the hourly report agents of this worker handled, by result.",
            labels=["result"],
        )
        for result, n in sorted(self.metrics.report_outcomes().items()):
            family.add_metric([result], n)
        yield family


class MetricsSensor(faust.Sensor):
    """Feeds `Metrics` from Faust's sensor callbacks. `names` maps actual topic names to default
    names; topics not in it (changelogs, other apps) are ignored."""

    def __init__(self, metrics: Metrics, names: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.names = names
        #: (actual topic, partition) -> offset of the next record this worker will read
        self.positions: dict[tuple[str, int], int] = {}
        #: (tp, offset) -> when the events agent took the record (until it acks it)
        self._taken_at: dict[tuple[Any, int], float] = {}
        #: default topic name -> records consumed since the last scrape (`flush_consumed`)
        self.consumed: dict[str, int] = {}

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        name = self.names.get(tp.topic)
        if name is not None:
            # A plain addition per record; the Prometheus counter catches up at scrape time
            # (`flush_consumed`), so a record pays no label look-up and no lock.
            # The events agent's messages are fetched batches (`streaming.batches`): their records count.
            records = getattr(message, "records", None)
            n = 1 if records is None else len(records)
            self.consumed[name] = self.consumed.get(name, 0) + n
            self.positions[(tp.topic, tp.partition)] = offset + 1

    def flush_consumed(self) -> None:
        """Add the records consumed since the last call to `attribution_events_consumed_total`."""
        counts, self.consumed = self.consumed, {}
        for name, n in counts.items():
            self.metrics.consumed.labels(name).inc(n)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> dict[str, float] | None:
        if self.names.get(tp.topic) not in EVENT_AGENT_TOPICS:
            return None
        started = self._taken_at[(tp, offset)] = time.perf_counter()
        return {"started": started}

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        # The events agent acks by hand (after the record is fully handled), and Faust's manual
        # ack passes no sensor state: the start time is kept here by position.
        started = self._taken_at.pop((tp, offset), None)
        if state:
            started = state["started"]
        if started is not None:
            self.metrics.processing.observe(time.perf_counter() - started)

    def assignment(self, consumer: Any) -> list[tuple[str, int]]:
        """(default topic name, partition) of each assigned input partition."""
        return [(self.names[tp.topic], tp.partition) for tp in sorted(consumer.assignment()) if tp.topic in self.names]

    def lags(self, consumer: Any) -> list[tuple[str, int, int]]:
        """(default topic name, partition, lag) of each assigned input partition whose lag is
        known: its position (a record delivered, or a committed offset) and high watermark are, or
        it is empty."""
        out: list[tuple[str, int, int]] = []
        committed: Mapping[Any, Any] = getattr(consumer, "_committed_offset", {})
        for tp in sorted(consumer.assignment()):
            name = self.names.get(tp.topic)
            if name is None:
                continue
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # an unknown partition has no figure yet
                highwater = None
            if highwater is None:
                continue
            position = self.positions.get((tp.topic, tp.partition), committed.get(tp))
            if position is None and highwater == 0:
                position = 0
            if position is not None:
                out.append((name, tp.partition, max(0, int(highwater) - int(position))))
        return out


def refresher(
    sensor: MetricsSensor,
    consumer: Callable[[], Any],
    held: Callable[[], int],
    config_notes: Callable[[], Mapping[tuple[str, str], int]] = dict,
    in_flight: Callable[[], int] = lambda: 0,
    frozen: Callable[[], int] = lambda: 0,
) -> Callable[[], None]:
    """What to run before each scrape: gauges that are read, not counted (lag, held, batches in
    flight, frozen objects), and the config agent's counts of unusual config records."""

    def refresh() -> None:
        sensor.flush_consumed()
        sensor.metrics.held.set(held())
        sensor.metrics.in_flight.set(in_flight())
        sensor.metrics.frozen.set(frozen())
        sensor.metrics.set_config_notes(config_notes())
        try:
            c = consumer()
            sensor.metrics.set_assignment(sensor.assignment(c), sensor.lags(c))
        except Exception:  # no consumer yet (starting, rebalancing): no assignment figures
            sensor.metrics.set_assignment((), ())

    return refresh
