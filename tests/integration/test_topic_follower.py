"""The group-less topic reader on a real broker: from the beginning or from a time, to the end."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from attribution.kafka.client import TopicMissing
from attribution.kafka.follower import TopicFollower
from attribution.settings import Settings
from attribution.streaming.topics import create_topics
from integration.harness import BROKER

T0 = 1_700_000_000_000


async def read(settings: Settings, topic: str, since: int | None) -> tuple[list[bytes], bool, bool]:
    """The values read until caught up, and whether it said so before and after reading."""
    got: list[bytes] = []
    async with TopicFollower(settings, [topic], since_ms=since) as follower:
        before = await follower.caught_up()
        while not await follower.caught_up():
            for messages in (await follower.fetch(timeout_ms=200)).values():
                got += [m.value for m in messages]
        return got, before, await follower.caught_up()


async def scenario() -> dict[str, tuple[list[bytes], bool, bool]]:
    settings = Settings(broker=BROKER, topic_prefix=f"it-{uuid.uuid4().hex[:8]}-")
    await create_topics(settings)
    topic = settings.topic("attributed-conversions")
    p = AIOKafkaProducer(bootstrap_servers=BROKER)
    await p.start()
    try:
        for i in range(3):
            await p.send_and_wait(topic, f"r{i}".encode(), key=f"u{i}".encode(), timestamp_ms=T0 + i * 1_000)
    finally:
        await p.stop()
    return {
        "start": await read(settings, topic, None),
        "since": await read(settings, topic, T0 + 1_000),
        "later": await read(settings, topic, T0 + 10_000),
    }


def test_the_follower_reads_from_the_beginning_or_from_a_time_and_knows_when_it_is_caught_up() -> None:
    runs = asyncio.run(scenario())

    assert sorted(runs["start"][0]) == [b"r0", b"r1", b"r2"]
    assert runs["start"][1:] == (False, True)
    assert sorted(runs["since"][0]) == [b"r1", b"r2"]
    assert runs["later"] == ([], True, True)  # nothing since then: it starts at the end


def test_a_missing_topic_is_named() -> None:
    settings = Settings(broker=BROKER, topic_prefix=f"it-{uuid.uuid4().hex[:8]}-")

    async def open_missing() -> None:
        async with TopicFollower(settings, [settings.topic("pixels")]):
            pass

    with pytest.raises(TopicMissing, match="pixels"):
        asyncio.run(open_missing())
