"""The input traffic of a run: the synthetic traffic of `attribution.synth` (config, then the
events), then one sentinel impression and click per partition just after the last event, so that no
conversion waits for the bounded wait at the end. Produced into fresh input topics and written as a
replay file (`bench.generate`'s format, the sentinels appended)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS
from attribution.settings import Settings
from attribution.streaming.topics import create_topics
from attribution.synth import TrafficSpec, config_records, events
from bench import generate
from bench.stream.common import PARTITIONS, SENTINEL_ADVERTISER, SENTINEL_PREFIX, log
from bench.stream.kafka import Bulk, OpenBatches, append_record, bulk_producer, partition_of
from bench.stream.run import Bench


def sentinels(timestamp: int) -> list[tuple[str, str, dict[str, Any], int]]:
    """An impression and a click per partition, for users of no real advertiser, at `timestamp`:
    they move every partition's touch watermarks past the last real conversion."""
    out = []
    for p in range(PARTITIONS):
        i = 0
        while partition_of(f"{SENTINEL_PREFIX}{i}".encode()) != p:
            i += 1
        user = f"{SENTINEL_PREFIX}{i}"
        for topic in ("impressions", "clicks"):
            value = {
                "event_id": f"{topic}-{user}-{timestamp}",
                "user_id": user,
                "timestamp": timestamp,
                "advertiser_id": SENTINEL_ADVERTISER,
                "line_item_id": 1,
                "creative_id": 1,
                "auction_id": "sentinel",
            }
            out.append((topic, user, value, p))
    return out


async def produce_inputs(bench: Bench) -> Path:
    """Create the run's topics, produce its inputs and write them as a replay file (returned).
    Sets `bench.inputs` (event records produced) and `bench.last_ts` (the sentinels' time)."""
    spec = TrafficSpec(users=bench.size.users, events=bench.size.events, seed=bench.seed)
    await create_topics(bench.settings)
    await bench.kafka.tps(bench.topic(t) for t in (*EVENT_TOPICS, *CONFIG_TOPICS))
    replay_file = bench.workdir / "inputs.jsonl"
    t0 = time.monotonic()
    generate.write(spec, replay_file)
    producer = bulk_producer(bench.settings)
    await producer.start()
    counts: Counter[str] = Counter()
    dumps = orjson.dumps
    try:
        bulk = Bulk(producer)
        for topic, key, value in config_records(spec):
            await bulk.add(bench.topic(topic), 0, key.encode(), None if value is None else dumps(value))
        await bulk.flush()  # config before events (the worker waits for it anyway)
        last_ts = spec.start_ms
        for topic, key, value in events(spec):
            raw_key = key.encode()
            await bulk.add(bench.topic(topic), partition_of(raw_key), raw_key, dumps(value))
            counts[topic] += 1
            last_ts = value["timestamp"]
        with open(replay_file, "ab") as f:
            for topic, key, value, partition in sentinels(last_ts + 1):
                f.write(dumps({"topic": topic, "key": key, "value": value}, option=orjson.OPT_APPEND_NEWLINE))
                await bulk.add(bench.topic(topic), partition, key.encode(), dumps(value))
                counts[topic] += 1
        await bulk.flush()
    finally:
        await producer.stop()
    bench.inputs = sum(counts.values())
    bench.last_ts = last_ts + 1
    elapsed = time.monotonic() - t0
    log(f"produced {bench.inputs} input records ({dict(counts)}) in {elapsed:.1f}s, prefix {bench.prefix}")
    bench.results["inputs"] = {
        "records": bench.inputs,
        "by_topic": dict(counts),
        "users": bench.size.users,
        "partitions": PARTITIONS,
        "produce_s": round(elapsed, 1),
    }
    return replay_file


Records = list[tuple[str, int, bytes, bytes | None]]


def input_records(bench: Bench) -> tuple[Records, Records]:
    """The run's inputs from its replay file, as (topic by default name, partition, key, value):
    the config records (on partition 0), and the events and sentinels (each on the partition it
    had)."""
    config: Records = []
    events: Records = []
    with open(bench.workdir / "inputs.jsonl", "rb") as f:
        for line in f:
            record = orjson.loads(line)
            topic, key, value = record["topic"], record["key"].encode(), record["value"]
            raw = None if value is None else orjson.dumps(value)
            if topic in CONFIG_TOPICS:
                config.append((topic, 0, key, raw))
            else:
                events.append((topic, partition_of(key), key, raw))
    return config, events


Prebuilt = list[tuple[str, int, Any]]


def build_batches(producer: AIOKafkaProducer, settings: Settings, records: Records) -> Prebuilt:
    """`records` encoded into `producer`'s record batches ahead of time, in order per topic and
    partition, as (topic, partition, batch): sending them (`send_prebuilt`) then costs the network
    and the broker, not the encoding of every record."""
    built: Prebuilt = []
    open_batches: OpenBatches = {}
    for topic, partition, key, value in records:
        name = settings.topic(topic)
        full = append_record(producer, open_batches, name, partition, key, value)
        if full is not None:
            built.append((name, partition, full))
    built.extend((name, partition, batch) for (name, partition), batch in open_batches.items())
    return built


async def send_prebuilt(producer: AIOKafkaProducer, built: Prebuilt) -> None:
    """Send the batches of `build_batches` (started `producer`) and wait for their acknowledgements."""
    sent = [await producer.send_batch(batch, topic, partition=partition) for topic, partition, batch in built]
    await asyncio.gather(*sent)


async def produce_records(settings: Settings, records: Records) -> None:
    """Produce `records` (from `input_records`) into the topics of `settings`."""
    producer = bulk_producer(settings)
    await producer.start()
    try:
        bulk = Bulk(producer)
        for topic, partition, key, value in records:
            await bulk.add(settings.topic(topic), partition, key, value)
        await bulk.flush()
    finally:
        await producer.stop()
