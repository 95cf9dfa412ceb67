"""Fault tests on the real broker: lagging topics, crashes, rebalances, broker restarts.

Each compares the stream's distinct outcomes with `replay` on the same records: every conversion
gets exactly one outcome, the same as offline, whatever happened to the workers.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from integration.harness import (
    ROOT,
    Pipeline,
    by_topic,
    conversion_ids,
    distinct_outcomes,
    free_port,
    normalized,
    outcome_count,
    replay_outputs,
    sentinels,
    traffic,
)

# Longer than the product's default: a conversion is released by the watermarks, or by the bounded
# wait once its touch partitions are caught up (after a takeover, a touch partition whose records
# were all handled and committed before has nothing more to read: its conversions wait this long).
LONG_HOLD_MS = 5_000


def assert_same_outcomes_as_replay(pipeline: Pipeline, entries: list[dict[str, Any]], timeout: float = 150) -> None:
    expected = distinct_outcomes(replay_outputs(entries))
    assert len(expected) == len(conversion_ids(entries))
    out = pipeline.read(until=lambda o: outcome_count(o) >= len(expected), timeout=timeout)
    got = distinct_outcomes(out)  # also fails on conflicting duplicates
    missing = sorted(set(expected) - set(got))[:5]
    assert not missing, (
        f"{len(set(expected) - set(got))} conversions without outcome, e.g. {missing}\n{pipeline.log()[-3000:]}"
    )
    assert got == expected


def test_touch_topics_lagging_behind_conversions_change_no_outcome(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, hold_ms=LONG_HOLD_MS)
    try:
        entries = traffic(users=300, events=3000)
        config = by_topic(entries, "pixels", "line-items")
        pipeline.produce(config)
        pipeline.start_worker()
        pipeline.produce(by_topic(entries, "conversions"))  # conversions first, each in time order
        time.sleep(3)  # let the worker take (and hold) them before any touch exists
        pipeline.produce(by_topic(entries, "impressions", "clicks") + sentinels(pipeline.partitions))
        assert_same_outcomes_as_replay(pipeline, entries)
    finally:
        pipeline.close()


@pytest.mark.parametrize("seed", [11, 12])
def test_random_relative_speeds_of_the_input_topics_change_no_outcome(tmp_path: Path, seed: int) -> None:
    """Each topic's records stay in timestamp order, but the topics are interleaved at random, in
    bursts, as if each were produced (or consumed) at its own speed."""
    rng = random.Random(seed)
    pipeline = Pipeline(tmp_path, hold_ms=LONG_HOLD_MS)
    try:
        entries = traffic(users=200, events=2000, seed=seed)
        pipeline.produce(by_topic(entries, "pixels", "line-items"))
        pipeline.start_worker()
        queues = {t: by_topic(entries, t) for t in ("impressions", "clicks", "conversions")}
        while any(queues.values()):
            topic = rng.choice([t for t, q in queues.items() if q])
            n = rng.randint(1, 400)
            burst, queues[topic] = queues[topic][:n], queues[topic][n:]
            pipeline.produce(burst)
        pipeline.produce(sentinels(pipeline.partitions))
        assert_same_outcomes_as_replay(pipeline, entries)
    finally:
        pipeline.close()


def test_a_worker_killed_mid_stream_and_restarted_gives_every_conversion_one_outcome(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, hold_ms=LONG_HOLD_MS)
    try:
        # Enough records that the kill lands mid-stream: a worker drains 20,000 in about a second.
        entries = traffic(users=5000, events=100_000)
        total = len(conversion_ids(entries))
        assert total >= 1500
        pipeline.produce(entries + sentinels(pipeline.partitions))
        worker = pipeline.start_worker()
        pipeline.read(until=lambda o: outcome_count(o) >= total // 4, timeout=120, settle=0)
        pipeline.stop(worker, kill=True)  # kill -9, mid-stream
        partial = outcome_count(pipeline.read(timeout=3, settle=0))
        assert partial < total, "the worker finished before it was killed: nothing was tested"
        pipeline.start_worker("w0")
        assert_same_outcomes_as_replay(pipeline, entries)
    finally:
        pipeline.close()


def test_a_second_worker_joining_mid_stream_takes_partitions_over_without_changing_outcomes(tmp_path: Path) -> None:
    # The joiner recovers state the first worker wrote and starts its partitions where the first one
    # committed (or from the beginning); records Faust fetched around the end of that recovery were
    # once dropped (see streaming/recovery.py, `on_recovery_completed`).
    pipeline = Pipeline(tmp_path, partitions=4, hold_ms=LONG_HOLD_MS)
    try:
        entries = traffic(users=1000, events=16_000)
        total = len(conversion_ids(entries))
        pipeline.produce(by_topic(entries, "pixels", "line-items"))
        pipeline.start_worker("w1")
        pipeline.produce(by_topic(entries, "impressions", "clicks", "conversions") + sentinels(pipeline.partitions))
        pipeline.read(until=lambda o: outcome_count(o) >= total // 5, timeout=120, settle=0)
        pipeline.start_worker("w2")
        assert_same_outcomes_as_replay(pipeline, entries, timeout=120)
    finally:
        pipeline.close()


def test_a_worker_leaving_the_group_mid_stream_hands_over_without_changing_outcomes(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, partitions=4, hold_ms=LONG_HOLD_MS)
    try:
        entries = traffic(users=1000, events=16_000)
        total = len(conversion_ids(entries))
        pipeline.produce(by_topic(entries, "pixels", "line-items"))
        first = pipeline.start_worker("w1")
        pipeline.start_worker("w2")
        pipeline.produce(by_topic(entries, "impressions", "clicks", "conversions") + sentinels(pipeline.partitions))
        pipeline.read(until=lambda o: outcome_count(o) >= total // 4, timeout=120, settle=0)
        pipeline.stop(first)  # a clean stop: its partitions move to w2 (rebalance + recovery)
        assert_same_outcomes_as_replay(pipeline, entries, timeout=180)
    finally:
        pipeline.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Any:
    """A broker of this test's own (the shared one must not restart under other tests)."""
    port = free_port()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(free_port())}
    kafka = ["bash", str(ROOT / "scripts" / "kafka.sh")]
    subprocess.run([*kafka, "up"], env=env, check=True, capture_output=True, timeout=180)
    try:
        yield (
            f"127.0.0.1:{port}",
            lambda *args, **kw: subprocess.run(
                [*kafka, *args], env={**env, **kw}, check=True, capture_output=True, timeout=180
            ),
        )
    finally:
        subprocess.run([*kafka, "down"], env=env, capture_output=True, timeout=120)


def test_a_broker_restart_mid_stream_loses_and_changes_no_outcome(tmp_path: Path, own_broker: Any) -> None:
    broker, kafka = own_broker
    pipeline = Pipeline(tmp_path, hold_ms=LONG_HOLD_MS, broker=broker)
    try:
        entries = traffic(users=500, events=8000)
        total = len(conversion_ids(entries))
        pipeline.produce(entries + sentinels(pipeline.partitions))
        pipeline.start_worker()
        pipeline.read(until=lambda o: outcome_count(o) >= total // 4, timeout=120, settle=0)
        kafka("stop")
        time.sleep(2)
        kafka("up", KAFKA_KEEP_DATA="1")
        assert_same_outcomes_as_replay(pipeline, entries, timeout=240)
        out = pipeline.read(timeout=5, settle=0)
        assert normalized(out)["dead-letters"] == set()
        assert all(orjson.loads(v)["conversion_id"] for v in out["attributed-conversions"])
    finally:
        pipeline.close()
