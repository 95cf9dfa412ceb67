"""The worker on a real broker attributes a click and dead-letters a bad record."""

from __future__ import annotations

import orjson

from helpers import click_json, conversion_json, line_item_json, pixel_json
from integration.harness import Pipeline, outcome_count

PIXEL = pixel_json(
    id=1, advertiser_id=10, name="signup", piggyback_pixels=[{"pixel_type": "img", "url": "https://t.example/p"}]
)
LINE_ITEM = line_item_json(id=5, advertiser_id=10, pixels=[{"id": 1, "post_click_revenue": 2.5}])


def click(eid: str, user: str, ts: int) -> dict[str, object]:
    value = click_json(event_id=eid, user_id=user, timestamp=ts, advertiser_id=10, line_item_id=5, auction_id="a")
    return {"topic": "clicks", "value": value}


def conversion(eid: str, user: str, ts: int) -> dict[str, object]:
    return {"topic": "conversions", "value": conversion_json(event_id=eid, pixel_id=1, user_id=user, timestamp=ts)}


def test_a_worker_attributes_a_click_and_dead_letters_a_bad_record_then_goes_on(pipeline: Pipeline) -> None:
    pipeline.produce([{"topic": "pixels", "value": PIXEL}, {"topic": "line-items", "value": LINE_ITEM}])
    pipeline.start_worker()
    pipeline.produce(
        [
            click("c1", "u1", 1_000),
            conversion("v1", "u1", 5_000),
            {"topic": "conversions", "key": "u1", "value": "{not json"},
            conversion("v2", "u2", 6_000),
        ]
    )
    out = pipeline.read(until=lambda o: outcome_count(o) >= 2 and o["dead-letters"], timeout=90)
    assert outcome_count(out) == 2, pipeline.log()
    attributed = [orjson.loads(v) for v in out["attributed-conversions"]]
    assert {a["conversion_id"]: a["attribution"] for a in attributed} == {"v1": "post_click"}
    assert attributed[0]["booked_revenue"] == 2.5
    unattributed = [orjson.loads(v) for v in out["unattributed-conversions"]]
    assert {u["conversion_id"]: u["reason"] for u in unattributed} == {"v2": "no_eligible_touch"}
    assert {orjson.loads(v)["fire_id"] for v in out["piggyback-fires"]} == {"v1:0", "v2:0"}
    dead = [orjson.loads(v) for v in out["dead-letters"]]
    assert [(d["topic"], d["error"]["code"], d["payload"]) for d in dead] == [
        (pipeline.prefix + "conversions", "invalid_json", "{not json")
    ]
