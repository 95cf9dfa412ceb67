"""Compressed input on the real broker: producers (Java ad servers, Kafka itself) send gzip,
snappy, lz4 or zstd batches. Each is judged exactly like uncompressed input; a batch the worker
cannot decode stops it loudly, commits nothing past it, and is read once the codec is there."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from integration.harness import (
    Pipeline,
    distinct_outcomes,
    normalized,
    outcome_count,
    replay_outputs,
    sentinels,
    traffic,
)

CODECS = ("gzip", "snappy", "lz4", "zstd")
EVENTS = ("impressions", "clicks", "conversions")
#: Long enough that a conversion is released by the watermarks, not by the bounded wait.
HOLD_MS = 5_000
#: A worker whose process cannot decode lz4, snappy or zstd, as before cramjam was a dependency.
WORKER_WITHOUT_CODECS = [
    sys.executable,
    "-c",
    "import aiokafka.codec; aiokafka.codec.cramjam = None\n"
    "from attribution.cli import main; main(['worker', '-l', 'info'])",
]


def of(entries: list[dict[str, Any]], *topics: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["topic"] in topics]


def assert_judged_as_replay_judges(pipeline: Pipeline, entries: list[dict[str, Any]], timeout: float = 150) -> None:
    expected = replay_outputs(entries)
    want = distinct_outcomes(expected)
    out = pipeline.read(until=lambda o: outcome_count(o) >= len(want), timeout=timeout)
    got = distinct_outcomes(out)  # also fails on two different outcomes of one conversion
    assert got == want, f"{len(set(want) - set(got))} conversions differ or lack an outcome\n{pipeline.log()[-3000:]}"
    assert normalized(out, pipeline.prefix)["dead-letters"] == normalized(expected)["dead-letters"]
    assert set(out["piggyback-fires"]) == set(expected["piggyback-fires"])


def test_events_in_batches_of_every_codec_are_judged_exactly_as_replay_judges_them(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, hold_ms=HOLD_MS)
    try:
        entries = traffic(users=300, events=4000)
        events = of(entries, *EVENTS)
        size = -(-len(events) // len(CODECS))
        chunks = [events[i * size : (i + 1) * size] for i in range(len(CODECS))]
        for chunk in chunks:  # every codec carries every event topic
            assert {e["topic"] for e in chunk} == set(EVENTS)
        pipeline.produce(of(entries, "pixels", "line-items"), compression_type="zstd")
        for codec, chunk in zip(CODECS, chunks, strict=True):
            pipeline.produce(chunk, compression_type=codec)
        pipeline.produce(sentinels(pipeline.partitions), compression_type="lz4")
        pipeline.start_worker()
        assert_judged_as_replay_judges(pipeline, entries)
        assert "cannot decode" not in pipeline.log()
    finally:
        pipeline.close()


async def committed_offsets(broker: str, group: str) -> dict[tuple[str, int], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def test_a_batch_the_worker_cannot_decode_stops_it_naming_where_and_a_worker_that_can_reads_it(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, hold_ms=HOLD_MS)
    try:
        entries = traffic(users=100, events=1000)
        pipeline.produce(of(entries, "pixels", "line-items"))
        pipeline.produce(of(entries, *EVENTS) + sentinels(pipeline.partitions), compression_type="lz4")

        crippled = pipeline.start_worker("w0", command=WORKER_WITHOUT_CODECS)
        try:
            code = crippled.wait(timeout=120)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"the worker kept running on batches it cannot read:\n{pipeline.log('w0')[-3000:]}"
            ) from exc
        log = pipeline.log("w0")
        assert code != 0, log[-3000:]
        topics = "|".join(re.escape(pipeline.prefix + t) for t in EVENTS)
        assert re.search(rf"CRITICAL.*topic '({topics})' partition \d+ at offset \d+ \(codec lz4\)", log), log[-3000:]
        assert "Libraries for lz4 compression codec not found" in log
        # Nothing of the event topics was committed past the batch (nothing at all: every batch is lz4).
        committed = asyncio.run(committed_offsets(pipeline.broker, pipeline.env["ATTRIBUTION_APP_ID"]))
        assert not {tp: o for tp, o in committed.items() if tp[0].removeprefix(pipeline.prefix) in EVENTS and o > 0}
        assert outcome_count(pipeline.read(timeout=3, settle=0)) == 0

        pipeline.start_worker("w1")  # the codec is there: the same batches, every outcome
        assert_judged_as_replay_judges(pipeline, entries)
    finally:
        pipeline.close()
