"""Touch lag and back-pressure: what the consumer knows, handed to event time, and the pauses it asks for.

Called from the app's timer (every `TICK_INTERVAL_S`), on the main loop, between records:

* `report_lag` tells `EventTime` for each assigned touch partition (impressions, clicks, re-key)
  whether it is caught up: the broker's high watermark, as the consumer learnt it from its last
  fetch, against the offset after the last record handled (or the committed offset, before any).
* `apply_backpressure` stops fetching the conversions partition of an input partition that holds
  more than `max_held` conversions, and fetches it again once it holds half as many. A paused
  conversions partition is paused again on every call: Faust's own flow control (a full stream
  buffer, a rebalance, recovery) resumes partitions without knowing about ours.

Only the consumer's public methods are used, except its committed offsets (`_committed_offset`, a
plain mapping of faust-streaming 0.15.3, read with a fallback).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from attribution.streaming.event_time import LAG_SOURCES, EventTime

log = logging.getLogger(__name__)


def report_lag(consumer: Any, time: EventTime, names: Mapping[str, str], now: float) -> None:
    """Report every assigned lag-source partition to `time`. `names`: actual topic -> default name."""
    committed = getattr(consumer, "_committed_offset", {})
    for tp in consumer.assignment():
        source = names.get(tp.topic)
        if source not in LAG_SOURCES:
            continue
        start = committed.get(tp)
        time.report_lag(tp.partition, source, consumer.highwater(tp), start or 0, now)


class Backpressure:
    """Which conversions partitions this worker paused, and the pause/resume decisions."""

    def __init__(self, conversions_topic: str) -> None:
        self.topic = conversions_topic
        self.paused: set[int] = set()

    def apply(self, consumer: Any, time: EventTime) -> None:
        assigned = {tp.partition: tp for tp in consumer.assignment() if tp.topic == self.topic}
        self.paused &= set(assigned)  # partitions moved away are not ours to resume
        pause, resume = [], []
        for p, tp in assigned.items():
            held = time.held_count(p)
            if p not in self.paused and time.over_limit(p):
                self.paused.add(p)
                log.info("back-pressure: pausing %s (%d conversions held)", tp, held)
            elif p in self.paused and held <= time.max_held // 2:
                self.paused.discard(p)
                resume.append(tp)
                log.info("back-pressure: resuming %s (%d conversions held)", tp, held)
            if p in self.paused:
                pause.append(tp)
        if pause:
            consumer.pause_partitions(pause)
        if resume:
            consumer.resume_partitions(resume)
