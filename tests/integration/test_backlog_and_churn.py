"""Right at any lag, on any number of workers: a backlog before the workers start, workers joining
and dying (SIGKILL) while they drain it, and the same churn under live traffic.

No sentinels and the product's default bounded wait: conversions are released only by the touch
watermarks or, once every touch partition is caught up, by the wait. Each test checks that every
conversion has exactly one distinct outcome, equal to `replay`'s, and that the piggyback fires are
the same.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson

from integration.harness import (
    OUTPUTS,
    Pipeline,
    conversion_ids,
    distinct_outcomes,
    outcome_count,
    replay_outputs,
    traffic,
)

BACKLOG_EVENTS = 50_000


def fires(outputs: dict[str, list[bytes]]) -> set[bytes]:
    return set(outputs["piggyback-fires"])


def assert_like_replay(pipeline: Pipeline, entries: list[dict[str, Any]], timeout: float = 240) -> dict[str, Any]:
    expected_out = replay_outputs(entries)
    expected = distinct_outcomes(expected_out)
    assert len(expected) == len(conversion_ids(entries))
    out = pipeline.read(until=lambda o: outcome_count(o) >= len(expected), timeout=timeout, settle=4)
    got = distinct_outcomes(out)  # fails on a conversion with two different outcomes
    missing = sorted(set(expected) - set(got))
    assert not missing, f"{len(missing)} conversions without an outcome, e.g. {missing[:5]}"
    wrong = [cid for cid in expected if got[cid] != expected[cid]]
    assert not wrong, (
        f"{len(wrong)} of {len(expected)} outcomes differ from replay's, e.g. "
        f"{orjson.loads(got[wrong[0]])} instead of {orjson.loads(expected[wrong[0]])}"
    )
    assert fires(out) == fires(expected_out)
    assert out["dead-letters"] == []
    return {t: out[t] for t in OUTPUTS}


def test_a_backlog_on_the_topics_before_the_worker_starts_gives_replays_outcomes(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, partitions=4, hold_ms=3000)
    try:
        entries = traffic(users=3000, events=BACKLOG_EVENTS, seed=21)
        assert len(entries) >= BACKLOG_EVENTS
        pipeline.produce(entries)
        # A small limit, so that the conversions partitions, read ahead of the touches in event
        # time, are paused by back-pressure while the touches drain.
        pipeline.start_worker(env={"ATTRIBUTION_MAX_HELD": "200"})
        assert_like_replay(pipeline, entries)
        assert "back-pressure: pausing" in pipeline.log()
    finally:
        pipeline.close()


def test_a_backlog_drained_by_workers_joining_and_killed_gives_replays_outcomes(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, partitions=4, hold_ms=3000)
    try:
        entries = traffic(users=3000, events=BACKLOG_EVENTS, seed=22)
        total = len(conversion_ids(entries))
        pipeline.produce(entries)
        first = pipeline.start_worker("w1")
        pipeline.read(until=lambda o: outcome_count(o) >= total // 6, timeout=180, settle=0)
        pipeline.start_worker("w2")  # joins mid-way: a rebalance, recovery of the moved partitions
        pipeline.read(until=lambda o: outcome_count(o) >= total // 2, timeout=180, settle=0)
        pipeline.stop(first, kill=True)  # dies without a word; its partitions move after the session timeout
        partial = outcome_count(pipeline.read(timeout=2, settle=0))
        assert partial < total, "the backlog was drained before the churn: nothing was tested"
        time.sleep(2)
        pipeline.start_worker("w1")  # and comes back on its data dir
        assert_like_replay(pipeline, entries, timeout=300)
    finally:
        pipeline.close()


def test_live_traffic_with_workers_joining_and_killed_gives_replays_outcomes(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, partitions=4, hold_ms=3000)
    try:
        entries = traffic(users=2000, events=30_000, seed=23)
        config = [e for e in entries if e["topic"] in ("pixels", "line-items")]
        events = [e for e in entries if e["topic"] not in ("pixels", "line-items")]
        pipeline.produce(config)
        first = pipeline.start_worker("w1")
        pipeline.wait_web("w1")

        def produce_live(chunk: int = 500, pause: float = 0.25) -> None:  # about 2,000 events/s
            for i in range(0, len(events), chunk):
                pipeline.produce(events[i : i + chunk])
                time.sleep(pause)

        producer = threading.Thread(target=produce_live)
        producer.start()
        time.sleep(3)
        pipeline.start_worker("w2")
        time.sleep(5)
        pipeline.stop(first, kill=True)
        time.sleep(3)
        pipeline.start_worker("w1")
        producer.join(timeout=120)
        assert not producer.is_alive()
        assert_like_replay(pipeline, entries, timeout=300)
    finally:
        pipeline.close()
