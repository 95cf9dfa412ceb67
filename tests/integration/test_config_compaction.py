"""The compacted config topics keep what the running worker shows, through compaction and a
restart: the `pixels` topic is set to compact within seconds, rogue records are sent straight to
it, and the restarted worker must show what it showed before."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from helpers import pixel_json
from integration.harness import BROKER, Pipeline

TOKEN = "compaction-test-token-0123456789abcdef"
FAST_COMPACTION = {
    "segment.ms": "300",
    "min.cleanable.dirty.ratio": "0.001",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "500",
}


def pixel(ident: int, name: str = "p") -> bytes:
    return orjson.dumps(pixel_json(id=ident, advertiser_id=10, name=name))


async def _compact_fast(topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BROKER)
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact", **FAST_COMPACTION}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    finally:
        await admin.close()


async def _keys(topic: str) -> Counter[bytes | None]:
    """How many records the topic holds per key (read to its end)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BROKER, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        keys: Counter[bytes | None] = Counter()
        while await consumer.position(tp) < end:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                keys.update(m.key for m in messages)
        return keys
    finally:
        await consumer.stop()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return orjson.loads(response.read()) if "metrics" not in url else response.read().decode()


def _shown(url: str) -> dict[str, Any]:
    return {"pixels": _get(f"{url}/pixels"), "line_items": _get(f"{url}/line-items")}


def test_rogue_config_records_change_nothing_the_worker_shows_through_compaction_and_a_restart(
    tmp_path: Path,
) -> None:
    pipeline = Pipeline(tmp_path, partitions=1)
    topic = f"{pipeline.prefix}pixels"
    try:
        asyncio.run(_compact_fast(topic))
        pipeline.produce_raw([{"topic": "pixels", "key": i, "value": pixel(i)} for i in (2, 81, 90, 120)])
        pipeline.start_worker(env={"ATTRIBUTION_API_TOKEN": TOKEN})
        url = pipeline.wait_web()
        delete = urllib.request.Request(
            f"{url}/pixels/120", method="DELETE", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(delete, timeout=15) as response:
            assert response.status == 204
        item = orjson.dumps({"id": 7, "advertiser_id": 10, "pixels": [{"id": 4242}]})
        pipeline.produce_raw(
            [
                {"topic": "pixels", "key": 2, "value": pixel(81, "impostor")},  # key 2 carrying pixel 81
                {"topic": "pixels", "key": "zz1", "value": pixel(120)},  # pixel 120 again, mis-keyed
                {"topic": "pixels", "key": 90, "value": b'{"id": 90, "advertiser_id": 10}'},  # invalid
                {"topic": "pixels", "key": 555, "value": None},  # a delete of an unknown id
                {"topic": "line-items", "key": 7, "value": item},  # names an unknown pixel
            ]
        )
        out = pipeline.read(until=lambda o: len(o["dead-letters"]) >= 3, timeout=60)
        codes = sorted(orjson.loads(v)["error"]["code"] for v in out["dead-letters"])
        assert codes == ["invalid_key", "invalid_key", "invalid_pixel"]
        deadline = time.monotonic() + 30
        while _get(f"{url}/metrics").count("attribution_config_records_total{") < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        metrics = _get(f"{url}/metrics")
        assert 'attribution_config_records_total{kind="restore",topic="pixels"} 2.0' in metrics
        assert 'attribution_config_records_total{kind="unknown_id",topic="pixels"} 1.0' in metrics
        assert 'attribution_config_records_total{kind="unknown_pixel",topic="line-items"} 1.0' in metrics
        before = _shown(url)
        assert [p["id"] for p in before["pixels"]["pixels"]] == [2, 81, 90]
        assert before["pixels"]["pixels"][0]["name"] == "p"
        assert [i["id"] for i in before["line_items"]["line_items"]] == [7]  # accepted, with a warning
        assert "names unknown pixels 4242" in pipeline.log()

        # Roll the segment (compaction never touches the active one) and wait for the cleaner.
        deadline = time.monotonic() + 120
        keys = asyncio.run(_keys(topic))
        while (keys[b"2"] > 1 or keys[b"90"] > 1) and time.monotonic() < deadline:
            time.sleep(1)
            pipeline.produce_raw([{"topic": "pixels", "key": 555, "value": None}])
            keys = asyncio.run(_keys(topic))
        assert keys[b"2"] == 1, f"not compacted in time: {keys}"
        assert keys[b"90"] == 1

        pipeline.stop(pipeline.workers[0])
        pipeline.start_worker()
        assert _shown(pipeline.wait_web()) == before
    finally:
        pipeline.close()


def test_line_items_published_after_their_pixels_raise_no_unknown_pixel_warning(tmp_path: Path) -> None:
    from integration.harness import traffic

    pipeline = Pipeline(tmp_path, partitions=1)
    try:
        config = [e for e in traffic(users=10, events=10) if e["topic"] in ("pixels", "line-items")]
        assert {e["topic"] for e in config} == {"pixels", "line-items"}
        pipeline.produce(config)  # every pixel before the line items naming them
        pipeline.start_worker()
        deadline = time.monotonic() + 60
        while "config loaded" not in pipeline.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "config loaded" in pipeline.log()
        time.sleep(3)  # the config agent handles each record once the cache applied it
        assert "config: " not in pipeline.log()  # no warning about any config record
    finally:
        pipeline.close()
