"""The hostile corpus on a real broker: one dead letter each, and the stream goes on."""

from __future__ import annotations

from collections import Counter

import orjson

from attribution.contract.codec import MAX_RECORD_BYTES
from hostile import corpus
from integration.harness import Pipeline, outcome_count


def test_every_hostile_record_becomes_a_dead_letter_and_later_records_are_processed(pipeline: Pipeline) -> None:
    # Kafka itself refuses records over its 1 MB limit at the producer: those are unit-tested.
    cases = [c for c in corpus() if len(c.value or b"") < MAX_RECORD_BYTES]
    good = [
        {"topic": "pixels", "value": {"id": 1, "advertiser_id": 1, "name": "p"}},
        {"topic": "line-items", "value": {"id": 2, "advertiser_id": 1, "pixels": [{"id": 1}]}},
    ]
    bad = [{"topic": c.topic, "key": c.key.decode() if c.key else None, "value": c.value} for c in cases]
    after = [
        {
            "topic": "clicks",
            "value": {
                "event_id": "c",
                "user_id": "u",
                "timestamp": 1_000,
                "advertiser_id": 1,
                "line_item_id": 2,
                "creative_id": 3,
                "auction_id": "a",
            },
        },
        {"topic": "conversions", "value": {"event_id": "v", "pixel_id": 1, "user_id": "u", "timestamp": 2_000}},
    ]
    pipeline.produce(good)
    pipeline.produce_raw(bad)
    pipeline.start_worker()
    pipeline.produce(after)
    out = pipeline.read(until=lambda o: outcome_count(o) >= 1 and len(o["dead-letters"]) >= len(cases), timeout=120)
    codes = Counter(
        (orjson.loads(v)["topic"].removeprefix(pipeline.prefix), orjson.loads(v)["error"]["code"])
        for v in out["dead-letters"]
    )
    assert codes == Counter((c.topic, c.code) for c in cases), pipeline.log()[-3000:]
    [attributed] = [orjson.loads(v) for v in out["attributed-conversions"]]
    assert (attributed["conversion_id"], attributed["touch_event_id"]) == ("v", "c")
