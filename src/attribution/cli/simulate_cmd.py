"""`attribution simulate`: publish seeded synthetic traffic (`attribution.synth`) to the input topics.

Timestamps: by default each event is stamped with the wall-clock time at which it is published
(never decreasing), so the traffic starts now and runs in real time (at `--rate`, or as fast as
the broker takes it): delay and latency figures read as in production. The records are otherwise
the seeded ones (same users, ids, order and pixels); only their timestamps differ, so the gaps
between touches and conversions shrink to the publishing time. `--fixed-date` publishes the
seeded traffic as generated instead (it starts on 2026-01-01 UTC and spans three days), the same
bytes on every run, for reproducible comparisons with `replay`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click
import orjson

from attribution.cli.common import kafka_options, settings_from
from attribution.cli.config_cmd import HEADERS, call
from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS
from attribution.settings import Settings

if TYPE_CHECKING:
    from attribution.synth import TrafficSpec

#: Flat out, delivery futures are awaited per batch of this many records.
BATCH = 1000


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `take` sleeps until one is there."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * 0.05 if burst is None else burst)
        self.tokens = 1.0
        self.last = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


@dataclass
class Stats:
    config: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    def summary(self) -> str:
        n = self.total_events
        rate = n / self.seconds if self.seconds > 0 else 0.0
        per_topic = ", ".join(f"{self.events[t]:,} {t}" for t in EVENT_TOPICS)
        line = f"published {n:,} events in {self.seconds:.2f}s ({rate:,.0f} events/s): {per_topic}"
        if self.config:
            line += "; config: " + ", ".join(f"{self.config[t]:,} {t}" for t in CONFIG_TOPICS)
        return line


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


async def simulate(
    settings: Settings,
    spec: TrafficSpec,
    *,
    rate: float | None,
    with_config: bool,
    bar: Any = None,
    clock: Callable[[], int] | None = wall_clock_ms,
) -> Stats:
    """Publish the spec's config records (when `with_config`) then its events; returns counts.

    `clock` (ms): each event's timestamp is replaced by the clock's time when it is sent (never
    decreasing); None keeps the generated timestamps (fixed dates)."""
    from attribution.kafka.client import producer
    from attribution.synth import config_records, events

    stats = Stats()
    names = {t: settings.topic(t) for t in (*EVENT_TOPICS, *CONFIG_TOPICS)}
    required = [names[t] for t in EVENT_TOPICS] + ([names[t] for t in CONFIG_TOPICS] if with_config else [])
    dumps = orjson.dumps
    async with producer(settings, require=required) as p:
        if with_config:
            records = config_records(spec)
            futures = [
                (
                    await p.send(names[t], key, dumps(value), HEADERS)
                    if value is not None
                    else await p.send(names[t], key, None)
                )
                for t, key, value in records
            ]
            await asyncio.gather(*futures)
            stats.config.update(t for t, _, _ in records)
            if bar is not None:
                bar.update(len(records))
        bucket = None if rate is None else TokenBucket(rate)
        batch = BATCH if rate is None else int(min(BATCH, max(1.0, rate / 10)))  # ~10 acks/s when paced
        pending: list[asyncio.Future[Any]] = []
        counts = stats.events
        started = time.perf_counter()
        stamped = 0
        for t, key, value in events(spec):
            if bucket is not None:
                await bucket.take()
            if clock is not None:
                stamped = max(stamped, clock())
                value = {**value, "timestamp": stamped}
            pending.append(await p.send(names[t], key, dumps(value), HEADERS))
            counts[t] += 1
            if len(pending) >= batch:
                await asyncio.gather(*pending)
                if bar is not None:
                    bar.update(len(pending))
                pending.clear()
        await p.flush()
        await asyncio.gather(*pending)
        if bar is not None:
            bar.update(len(pending))
        stats.seconds = time.perf_counter() - started
    return stats


@click.command("simulate")
@kafka_options
@click.option(
    "--events", "n_events", type=click.IntRange(min=0), default=10_000, show_default=True, help="Events to publish."
)
@click.option("--users", type=click.IntRange(min=1), default=1_000, show_default=True, help="Distinct users.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed: same seed, same records.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="EPS",
    help="Events per second [default: as fast as possible].",
)
@click.option(
    "--config/--no-config",
    "with_config",
    default=True,
    show_default=True,
    help="Publish the pixels and line items first.",
)
@click.option(
    "--fixed-date",
    is_flag=True,
    help="Keep the generated timestamps (from 2026-01-01 UTC): the same records on every run. "
    "Default: stamp each event with the time it is published.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal)."
)
def simulate_cmd(
    broker: str | None,
    topic_prefix: str | None,
    n_events: int,
    users: int,
    seed: int,
    rate: float | None,
    with_config: bool,
    fixed_date: bool,
    progress: bool | None,
) -> None:
    """Publish synthetic ad traffic: impressions, clicks and conversions keyed by user_id.

    The config (pixels and line items covering every setting) goes first, unless --no-config. The
    events are in timestamp order and the same for a given --events/--users/--seed (ids, users,
    pixels); publishing them again adds nothing (the worker drops conversions it has already seen
    by event_id). Each event is stamped with the time it is published, so the traffic is live;
    with --fixed-date it keeps the generated timestamps (from 2026-01-01 UTC, over three days),
    byte for byte the same on every run.
    """
    from tqdm import tqdm

    from attribution.synth import TrafficSpec, config_records

    try:
        spec = TrafficSpec(users=users, events=n_events, seed=seed)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = settings_from(broker, topic_prefix)
    total = n_events + (len(config_records(spec)) if with_config else 0)
    with tqdm(total=total, unit="rec", unit_scale=True, disable=_no_bar(progress), file=sys.stderr) as bar:
        clock = None if fixed_date else wall_clock_ms
        stats = call(simulate(settings, spec, rate=rate, with_config=with_config, bar=bar, clock=clock))
    click.echo(stats.summary())


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None shows the bar only on a terminal."""
    if progress is None:
        return None if os.environ.get("TERM") != "dumb" else True
    return not progress
