"""Follow the outcome topics into an `OutcomeWindow`, on every worker, for `/stats` and health.

A group-less reader (`kafka.follower.TopicFollower`: no consumer group, nothing committed) reads
*all* partitions of `attributed-conversions` and `unattributed-conversions`, starting at the first
record published in the last 24 hours, and keeps following. Every worker therefore reports on the
whole pipeline, not just on the partitions it judges. Reporting never stops the worker: a failure
is logged and the feed starts again (the window drops the records it reads twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from attribution.app.reports import parse_outcome
from attribution.kafka.client import TopicMissing
from attribution.kafka.follower import TopicFollower
from attribution.settings import Settings
from attribution.web.outcomes import OutcomeWindow

log = logging.getLogger(__name__)

TOPICS = ("attributed-conversions", "unattributed-conversions")
RETRY_S = 5.0
CLIENT_ID = "attribution-reporting"


def now_ms() -> int:
    return int(time.time() * 1000)


class OutcomeFeed:
    def __init__(self, settings: Settings, window: OutcomeWindow, clock: Callable[[], int] = now_ms) -> None:
        self.settings = settings
        self.window = window
        self.clock = clock
        self.names = {settings.topic(t): t for t in TOPICS}
        #: set once the records that existed at start have been read
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        """Follow the topics forever (cancel to stop); restarts after any failure."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except TopicMissing as exc:
                log.warning("reporting waits for its topics: %s", exc)
            except Exception:
                log.exception("reporting feed failed; restarting in %gs", RETRY_S)
            await asyncio.sleep(RETRY_S)

    async def _follow(self) -> None:
        since = self.clock() - self.window.span_ms
        async with TopicFollower(self.settings, list(self.names), since_ms=since, client_id=CLIENT_ID) as follower:
            while True:
                batches = await follower.fetch(timeout_ms=500, max_records=5_000)
                for tp, messages in batches.items():
                    name = self.names[tp.topic]
                    for m in messages:
                        outcome = parse_outcome(name, m.value, m.timestamp)
                        if outcome is not None:
                            self.window.add(outcome)
                self.window.prune(self.clock())
                if not self.caught_up.is_set() and await follower.caught_up():
                    log.info("reporting caught up: %d outcomes of the last 24 h", len(self.window))
                    self.caught_up.set()
