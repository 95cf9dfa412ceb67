"""Touch lag and back-pressure: what the consumer knows, handed to event time, and the pauses it asks for.

Called from the app's timer (every `TICK_INTERVAL_S`), on the main loop, between records:

* `report_lag` tells `EventTime` for each assigned touch partition (impressions, clicks, re-key)
  whether it is caught up: the broker's high watermark, as the consumer learnt it from its last
  fetch, against the offset after the last record handled (or the committed offset, before any).
* `Backpressure` stops fetching the conversions partition of an input partition that holds more
  than `max_held` conversions, and fetches it again once it holds half as many; and stops fetching
  a touch partition that runs more than `event_time.MAX_TOUCH_LEAD_MS` ahead of the conversions
  still to be judged (`EventTime.pace`) (both through `pause_fetching`).
  A paused conversions partition is paused again on every call: a rebalance gives the consumer
  fresh partition states, which are not paused.

Only the consumer's public methods are used, except its committed offsets (`_committed_offset`, a
plain mapping of faust-streaming 0.15.3, read with a fallback) and, for pausing, the aiokafka
consumer and its thread (`pause_fetching`).
"""

from __future__ import annotations

import logging
import time as _wall
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition

from attribution.streaming.event_time import TOUCH_SOURCES, TRACKED_SOURCES, EventTime

log = logging.getLogger(__name__)


#: A high watermark older than this (wall-clock ms since the fetch that brought it) says nothing
#: about records produced since: such a partition counts as behind. An active fetch refreshes it
#: at least every 20 ms (`tuning.FETCH_MAX_WAIT_MS`); a paused or stalled one does not.
FRESH_HIGHWATER_MS = 1000


def report_lag(consumer: Any, time: EventTime, names: Mapping[str, str], now: float) -> None:
    """Report every assigned tracked partition to `time`. `names`: actual topic -> default name.

    The high watermark counts only when the aiokafka consumer fetched the partition within
    `FRESH_HIGHWATER_MS`: one learnt before a pause, a rebalance or a stalled fetch could claim a
    partition is read to its end while records produced since wait on the broker."""
    committed = getattr(consumer, "_committed_offset", {})
    client: Any = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    now_ms = int(_wall.time() * 1000)  # aiokafka stamps its fetches with wall-clock milliseconds
    for tp in consumer.assignment():
        source = names.get(tp.topic)
        if source not in TRACKED_SOURCES:
            continue
        highwater = consumer.highwater(tp)
        polled = None if client is None else client.last_poll_timestamp(TopicPartition(tp.topic, tp.partition))
        if polled is None or now_ms - polled > FRESH_HIGHWATER_MS:
            highwater = None  # stale or unknown: behind
        start = committed.get(tp)
        time.report_lag(tp.partition, source, highwater, start or 0, now)


class Backpressure:
    """Which input partitions this worker paused, and the pause/resume decisions: a conversions
    partition holding too many conversions (`EventTime.over_limit`), a touch partition running
    too far ahead of the conversions (`EventTime.pace`)."""

    def __init__(self, topics: Mapping[str, str]) -> None:
        """`topics`: default name -> actual name, for the conversions and touch topics."""
        self.conversions = topics["conversions"]
        self.touch_topics = {topics[source]: source for source in TOUCH_SOURCES}
        self.paused: set[int] = set()  # conversions partitions
        self.paced: set[tuple[str, int]] = set()  # (touch source, partition)

    def decide(self, assignment: Iterable[Any], time: EventTime) -> tuple[list[Any], list[Any]]:
        """(partitions to pause, partitions to resume) among the assigned input partitions; every
        partition paused is in the first list each time (idempotent)."""
        pause: list[Any] = []
        resume: list[Any] = []
        assigned = {tp.partition: tp for tp in assignment if tp.topic == self.conversions}
        self.paused &= set(assigned)  # partitions moved away are not ours to resume
        for p, tp in assigned.items():
            held = time.held_count(p)
            if p not in self.paused and time.over_limit(p):
                self.paused.add(p)
                log.info("back-pressure: pausing %s (%d conversions held)", tp, held)
            elif p in self.paused and held <= time.max_held // 2 and not time.cut_blocks(p):
                self.paused.discard(p)
                resume.append(tp)
                log.info("back-pressure: resuming %s (%d conversions held)", tp, held)
            if p in self.paused:
                pause.append(tp)
        touches = [(self.touch_topics[tp.topic], tp) for tp in assignment if tp.topic in self.touch_topics]
        paced: set[tuple[str, int]] = set()
        for p in {tp.partition for _, tp in touches}:
            paced |= {(source, p) for source in time.pace(p)}
        for source, tp in touches:
            key = (source, tp.partition)
            if key in paced:
                pause.append(tp)
            elif key in self.paced:
                resume.append(tp)
        started = paced - self.paced
        if started:
            log.info("pacing: pausing %s, ahead of the conversions", sorted(started))
        self.paced = paced
        return pause, resume

    def cut(self, tp: Any) -> bool:
        """A conversions partition whose reading the events agent cut (`EventTime.cut`): paused
        from now on, until `decide` resumes it. False when it was paused already."""
        if tp.partition in self.paused:
            return False
        self.paused.add(tp.partition)
        log.info("back-pressure: pausing %s (a user holds as many conversions as it may)", tp)
        return True

    def seeks(self, resume: Iterable[Any], time: EventTime) -> dict[Any, int]:
        """Of the partitions to resume, the conversions partitions cut: tp -> the offset to seek
        back to before resuming (records past it were fetched and not handled)."""
        seeks = {}
        for tp in resume:
            offset = time.cut_at(tp.partition) if tp.topic == self.conversions else None
            if offset is not None:
                seeks[tp] = offset
        return seeks


def paused_in_client(consumer: Any) -> set[tuple[str, int]]:
    """(topic, partition) of every partition paused in the aiokafka consumer itself."""
    client: Any = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    return set() if client is None else {(tp.topic, tp.partition) for tp in client.paused()}


async def pause_fetching(consumer: Any, pause: Sequence[Any], resume: Sequence[Any]) -> bool:
    """Pause and resume partitions in the aiokafka consumer itself, on its own thread; False when
    the consumer (thread) is not there yet.

    Not Faust's `pause_partitions`: that only takes the partitions out of Faust's active set, and
    Faust's `getmany` silently skips the records of inactive partitions that the aiokafka consumer
    already handed over, moving past them (they would be lost until a seek). aiokafka's own pause
    discards a paused partition's fetched records without moving its position: they are fetched
    again on resume."""
    thread: Any = getattr(consumer, "_thread", None)
    client: Any = getattr(thread, "_consumer", None)
    if thread is None or client is None:
        return False
    if not (pause or resume):
        return True

    async def apply() -> None:
        # The consumer's own assignment: a partition revoked meanwhile is not paused or resumed.
        assigned = client.assignment()
        client.pause(*(p for p in (TopicPartition(tp.topic, tp.partition) for tp in pause) if p in assigned))
        client.resume(*(p for p in (TopicPartition(tp.topic, tp.partition) for tp in resume) if p in assigned))

    await thread.call_thread(apply)
    return True
