"""A worker started with ATTRIBUTION_PARTITIONS different from the topics' count refuses to run:
it exits non-zero naming each topic and its count, consumes nothing and commits nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from integration.harness import BROKER, Pipeline


async def _groups_and_topics() -> tuple[set[str], dict[str, int]]:
    """The consumer groups, and each topic's partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BROKER)
    await admin.start()
    try:
        topics = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        return {g[0] for g in await admin.list_consumer_groups()}, topics
    finally:
        await admin.close()


def test_topics_created_with_2_partitions_make_a_worker_set_to_4_refuse_to_run(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, partitions=2)  # `attribution topics create` with 2 partitions
    try:
        pipeline.produce([{"topic": "impressions", "key": "u1", "value": {"not": "read"}}])
        worker = pipeline.start_worker(env={"ATTRIBUTION_PARTITIONS": "4"})
        assert worker.wait(60) != 0
        log = pipeline.log()
        assert "partition mismatch: ATTRIBUTION_PARTITIONS=4" in log
        for topic in ("impressions", "clicks", "conversions", "rekeyed-events", "event-time-ticks"):
            assert f"{pipeline.prefix}{topic}: 2 partitions (mismatch)" in log
        assert "set ATTRIBUTION_PARTITIONS=2" in log
        groups, topics = asyncio.run(_groups_and_topics())
        assert f"{pipeline.prefix}app" not in groups  # the group never joined: nothing committed
        # The changelogs are those `topics create` made, with the topics' count: none made with 4.
        changelogs = {t: n for t, n in topics.items() if t.startswith(f"{pipeline.prefix}app-")}
        assert changelogs == {f"{pipeline.prefix}app-users-changelog": 2, f"{pipeline.prefix}app-reports-changelog": 2}
        assert pipeline.read(timeout=3)["dead-letters"] == []
    finally:
        pipeline.close()


def test_the_same_topics_run_a_worker_set_to_their_count(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, partitions=2)
    try:
        pipeline.start_worker()
        pipeline.wait_web()
        assert pipeline.workers[0].poll() is None
    finally:
        pipeline.close()
