"""Live hourly reports on the real broker: the rows on `conversion-reports` equal the rows folded
from `replay`'s outcomes of the same records (each conversion counted once), also when a worker
is killed with SIGKILL mid-stream and restarted, and when a second worker joins mid-stream (a
rebalance that moves report partitions, with their table, to it)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import orjson

from attribution.contract.report_codec import validate_row
from integration.harness import (
    ATTRIBUTION,
    Pipeline,
    by_topic,
    conversion_ids,
    counted,
    expected_report_rows,
    read_report_rows,
    sentinels,
    traffic,
    wait_until_counted,
)

LONG_HOLD_MS = 5_000


def wait_for_rows(
    pipeline: Pipeline, expected: dict[str, dict[str, Any]], timeout: float = 180
) -> dict[str, dict[str, Any]]:
    """The rows once they equal `expected` (or, at the timeout, as they are)."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        rows = read_report_rows(pipeline)
        if rows == expected:
            break
        time.sleep(1)
    return rows


def assert_rows_like_replay(pipeline: Pipeline, entries: list[dict[str, Any]], timeout: float = 180) -> None:
    expected = expected_report_rows(entries)
    assert len(expected) >= 20, "too few rows to test anything"
    rows = wait_for_rows(pipeline, expected, timeout)
    for row in rows.values():
        validate_row(row)
    wrong = sorted(k for k in expected if rows.get(k) != expected[k])
    extra = sorted(set(rows) - set(expected))
    assert not wrong, (
        f"{len(wrong)} of {len(expected)} rows differ from replay's, e.g. {wrong[0]}: {rows.get(wrong[0])} "
        f"instead of {expected[wrong[0]]}\n{pipeline.log()[-2000:]}"
    )
    assert not extra, f"rows replay does not have: {extra[:5]}"


def test_a_worker_killed_mid_stream_and_restarted_counts_every_conversion_once_in_the_hourly_rows(
    tmp_path: Path,
) -> None:
    pipeline = Pipeline(tmp_path, hold_ms=LONG_HOLD_MS)
    try:
        # Enough records that the kill lands mid-stream: a worker drains 20,000 of them in about
        # a second, faster than the rows can be polled.
        entries = traffic(users=5000, events=100_000)
        pipeline.produce(entries + sentinels(pipeline.partitions))
        worker = pipeline.start_worker()
        total = len(conversion_ids(entries))
        wait_until_counted(pipeline, total // 4)
        pipeline.stop(worker, kill=True)  # kill -9, mid-stream: outcomes and rows re-published after
        assert counted(read_report_rows(pipeline)) < total, "the kill did not land mid-stream: nothing was tested"
        # Whatever the kill made the worker re-publish, re-publish every outcome so far once more
        # (byte-identical, as a crashed worker does): each must still count once.
        published = pipeline.read(timeout=3, settle=0)
        again = [
            {"topic": t, "key": orjson.loads(v)["user_id"], "value": v}
            for t in ("attributed-conversions", "unattributed-conversions")
            for v in published[t]
        ]
        assert again
        pipeline.produce_raw(again)
        pipeline.start_worker("w0")
        assert_rows_like_replay(pipeline, entries)
    finally:
        pipeline.close()


def test_a_second_worker_joining_mid_stream_counts_every_conversion_once_in_the_hourly_rows(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, partitions=4, hold_ms=LONG_HOLD_MS)
    try:
        entries = traffic(users=1000, events=16_000)
        total = len(conversion_ids(entries))
        events = by_topic(entries, "impressions", "clicks", "conversions")
        half = len(events) // 2
        pipeline.produce(by_topic(entries, "pixels", "line-items"))
        pipeline.start_worker("w1")
        pipeline.produce(events[:half])
        wait_until_counted(pipeline, total // 5)
        pipeline.start_worker("w2")
        # The second half only once the joiner took its partitions: it counts part of the stream.
        deadline = time.monotonic() + 120
        while f"{pipeline.prefix}report-updates" not in pipeline.log("w2"):
            assert time.monotonic() < deadline, "the joiner took no report partition"
            time.sleep(0.5)
        pipeline.produce(events[half:] + sentinels(pipeline.partitions))
        assert_rows_like_replay(pipeline, entries)
    finally:
        pipeline.close()


def test_report_hourly_prints_the_rows_as_json_and_as_a_table(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path)
    try:
        entries = traffic(users=200, events=3000)
        pipeline.produce(entries + sentinels(pipeline.partitions))
        pipeline.start_worker()
        expected = expected_report_rows(entries)
        wait_for_rows(pipeline, expected, timeout=120)
        cmd = [ATTRIBUTION, "report", "--hourly"]
        as_json = subprocess.run([*cmd, "--json"], env=pipeline.env, capture_output=True, check=True, timeout=60)
        rows = orjson.loads(as_json.stdout)
        assert {f"{r['pixel_id']}:{r['line_item_id'] or 'none'}:{r['hour']}": r for r in rows} == expected
        assert [r["hour"] for r in rows] == sorted(r["hour"] for r in rows)
        text = subprocess.run(cmd, env=pipeline.env, capture_output=True, check=True, timeout=60, text=True).stdout
        assert text.splitlines()[0].split()[:3] == ["HOUR", "(UTC)", "PIXEL"]
        assert len(text.splitlines()) == len(rows) + 1
    finally:
        pipeline.close()
