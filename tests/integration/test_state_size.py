"""A heavy user's state stays under a small `max.message.bytes` on the real broker, and survives a
worker restart: every outcome, redeliveries included, is the same as replay's.

The users changelog is created here before the worker starts, with `max.message.bytes` of 64 KiB
(Faust leaves an existing topic as it is). The heavy user (a bot) has 2,000 conversions in two
days and a click every ten minutes: without the state caps its record would be over 64 KiB (checked with
the engine: 2,000 dedup ids alone take 114 KB), so the broker would refuse it; with them it stays
far below.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from attribution.contract.state_codec import encode_state
from attribution.domain import Limits
from attribution.replay import replay
from integration.harness import (
    BROKER,
    Pipeline,
    distinct_outcomes,
    every_page_config,
    outcome_count,
    replay_outputs,
    sentinels,
)

SMALL_LIMIT = 65_536
T0 = 1_700_000_000_000
MINUTE = 60_000
HEAVY = "heavy-user"
ADVERTISER = 10


def heavy_events(start: int, n: int) -> list[dict[str, Any]]:
    """A click every ten minutes on 5 line items in turn, and a conversion a minute, for one user;
    and an impression a minute for a bystander, so that both touch streams move on and each
    conversion is held for a minute of event time at most."""
    out: list[dict[str, Any]] = []
    for i in range(start, start + n):
        ts = T0 + i * MINUTE
        click = {
            "event_id": str(uuid.UUID(int=2 * i)),
            "user_id": HEAVY,
            "timestamp": ts,
            "advertiser_id": ADVERTISER,
            "line_item_id": 100 + (i // 10) % 5,
            "creative_id": 1,
            "auction_id": str(uuid.UUID(int=2 * i + 1)),
        }
        conv = {"event_id": str(uuid.UUID(int=10**9 + i)), "pixel_id": 1, "user_id": HEAVY, "timestamp": ts + 1}
        bystander = {**click, "user_id": "bystander", "advertiser_id": 999, "event_id": f"b{i}"}
        if i % 10 == 0:
            out.append({"topic": "clicks", "value": click})
        else:  # the click stream moves on with a bystander's click
            out.append({"topic": "clicks", "value": {**bystander, "event_id": f"k{i}"}})
        out += [{"topic": "impressions", "value": bystander}, {"topic": "conversions", "value": conv}]
    return out


async def create_small_changelog(pipeline: Pipeline) -> str:
    name = f"{pipeline.prefix}app-users-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=BROKER)
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact", "max.message.bytes": str(SMALL_LIMIT)}
        await admin.create_topics([NewTopic(name, pipeline.partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()
    return name


async def changelog_sizes(topic: str) -> dict[bytes, int]:
    """The size of the latest record of each key of the changelog."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BROKER, group_id=None, enable_auto_commit=False)
    await consumer.start()
    sizes: dict[bytes, int] = {}
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while (await consumer.position(tp)) < end:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                for m in messages:
                    sizes[m.key] = len(m.value or b"")
    finally:
        await consumer.stop()
    return sizes


def test_a_heavy_users_state_stays_under_a_small_record_limit_and_survives_a_restart(tmp_path: Path) -> None:
    first, second = heavy_events(0, 2000), heavy_events(2000, 200)
    entries = every_page_config(ADVERTISER) + first
    # Without the caps the state would be over the limit: the broker would refuse it.
    unbounded = Limits(max_processed=10**6, max_user_touches=10**6, max_touches=10**6)
    uncapped = replay([orjson.dumps(e) for e in entries], unbounded).users[HEAVY]
    assert len(encode_state(uncapped)) > SMALL_LIMIT

    pipeline = Pipeline(tmp_path, partitions=1, hold_ms=120_000)
    try:
        changelog = asyncio.run(create_small_changelog(pipeline))
        # The user's state grows as its traffic arrives (a day and a half of it, in steps), the way a
        # bot's does.
        worker = pipeline.start_worker()
        pipeline.produce(every_page_config(ADVERTISER))
        step = 150  # 50 conversions a step: with 50 still held, under the 150 one user may hold
        for i in range(0, len(first), step):
            pipeline.produce(first[i : i + step])
            done = sum(1 for e in first[: i + step] if e["topic"] == "conversions")
            pipeline.read(until=lambda o, n=done: outcome_count(o) >= n - 50, timeout=120, settle=0)
        pipeline.produce(sentinels(1, T0 + 2000 * MINUTE))
        pipeline.read(until=lambda o: outcome_count(o) >= 2000, timeout=240, settle=1)
        pipeline.stop(worker)
        assert worker.returncode == 0, pipeline.log()[-3000:]  # stopped by us, not by a failed state write

        sizes = asyncio.run(changelog_sizes(changelog))
        assert 10_000 < sizes[HEAVY.encode()] < SMALL_LIMIT // 2  # 256 dedup ids and a few touches

        # Restart: the state comes back from the changelog. The last 200 conversions are sent
        # again (a retry; the user's latest 256 dedup ids are kept), then new traffic follows, all
        # at once: 400 conversions of the user, often read before the touches, which the worker
        # (starting behind) has to wait for past the 150 one user may hold (docs/reliability.md).
        pipeline.start_worker("w0")
        again = [e for e in first if e["topic"] == "conversions"][-200:]
        pipeline.produce(again + second + sentinels(1, 4_000_000_000_000))
        everything = entries + again + second
        expected = distinct_outcomes(replay_outputs(everything))
        assert len(expected) == 2200
        out = pipeline.read(until=lambda o: outcome_count(o) >= len(expected), timeout=180)
        got = distinct_outcomes(out)  # fails on a conversion with two different outcomes
        assert got == expected, pipeline.log()[-3000:]
        assert "changelog write FAILED" not in pipeline.log()
    finally:
        pipeline.close()
