"""The synthetic traffic generator (`attribution.synth`)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from attribution.domain import REASONS
from attribution.replay import replay
from attribution.synth import (
    NON_TOUCH_IMP_TYPES,
    OTHER_TOUCH_IMP_TYPES,
    TrafficSpec,
    config_records,
    events,
    layout,
    user_id,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_OF_TOPIC = {
    "impressions": "impression",
    "clicks": "click",
    "conversions": "conversion",
    "pixels": "pixel",
    "line-items": "line_item",
}
SPEC = TrafficSpec(users=2_000, events=20_000, seed=7)


def _validators() -> dict[str, jsonschema.protocols.Validator]:
    out = {}
    for topic, name in SCHEMA_OF_TOPIC.items():
        schema = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        out[topic] = cls(schema)
    return out


@pytest.fixture(scope="module")
def traffic() -> list[tuple[str, str, dict[str, Any]]]:
    return list(events(SPEC))


@pytest.fixture(scope="module")
def config() -> list[tuple[str, str, dict[str, Any] | None]]:
    return config_records(SPEC)


def test_same_seed_same_records() -> None:
    spec = TrafficSpec(users=500, events=3_000, seed=3)
    assert list(events(spec)) == list(events(spec))
    assert config_records(spec) == config_records(spec)


def test_other_seed_other_records() -> None:
    a = list(events(TrafficSpec(users=500, events=3_000, seed=3)))
    b = list(events(TrafficSpec(users=500, events=3_000, seed=4)))
    assert a != b
    assert len(a) == len(b) == 3_000


def test_exact_number_of_events_in_timestamp_order(traffic: list[tuple[str, str, dict[str, Any]]]) -> None:
    assert len(traffic) == SPEC.events
    stamps = [v["timestamp"] for _, _, v in traffic]
    assert stamps == sorted(stamps)
    assert SPEC.start_ms <= stamps[0]
    assert stamps[-1] < SPEC.start_ms + SPEC.duration_ms


def test_events_are_a_lazy_stream() -> None:
    huge = TrafficSpec(users=10**9, events=10**12)
    first = list(itertools.islice(events(huge), 5))
    assert len(first) == 5


def test_every_record_is_valid_against_its_schema(
    traffic: list[tuple[str, str, dict[str, Any]]], config: list[tuple[str, str, dict[str, Any] | None]]
) -> None:
    validators = _validators()
    for topic, _key, value in config:
        if value is not None:
            validators[topic].validate(value)
    for topic, key, value in traffic:
        validators[topic].validate(value)
        assert key == value["user_id"]


def test_ids_are_unique_except_redeliveries(traffic: list[tuple[str, str, dict[str, Any]]]) -> None:
    ids = Counter(v["event_id"] for _, _, v in traffic)
    repeated = {eid for eid, n in ids.items() if n > 1}
    assert repeated, "some conversions are redelivered"
    by_id: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for topic, _, v in traffic:
        if v["event_id"] in repeated:
            by_id.setdefault(v["event_id"], []).append((topic, v))
    for copies in by_id.values():
        assert all(t == "conversions" for t, _ in copies)
        assert all(v == copies[0][1] for _, v in copies)  # identical records


def test_mix_of_events(traffic: list[tuple[str, str, dict[str, Any]]]) -> None:
    topics = Counter(t for t, _, _ in traffic)
    n = SPEC.events
    assert 0.85 * n < topics["impressions"] < 0.95 * n
    assert 0.05 * n < topics["clicks"] < 0.11 * n
    assert 0.01 * n < topics["conversions"] < 0.03 * n
    imp_types = Counter(v.get("imp_type", 7) for t, _, v in traffic if t == "impressions")
    assert imp_types.most_common(1)[0][0] == 7
    assert set(OTHER_TOUCH_IMP_TYPES) <= set(imp_types)
    assert set(NON_TOUCH_IMP_TYPES) <= set(imp_types)
    assert any(t == "impressions" and "imp_type" not in v for t, _, v in traffic)  # default 7
    users = {k for _, k, _ in traffic}
    assert len(users) > SPEC.users / 2
    convs = [v for t, _, v in traffic if t == "conversions"]
    assert any("value" in c for c in convs)
    assert any("order_id" in c for c in convs)
    assert any("other" in c for c in convs)
    known = {p for ps in layout(SPEC).pixel_ids for p in ps}
    assert any(c["pixel_id"] not in known for c in convs)  # an unknown pixel now and then


def test_clicks_follow_an_impression_of_the_same_auction(traffic: list[tuple[str, str, dict[str, Any]]]) -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    for topic, _, v in traffic:
        key = (v.get("user_id"), v.get("advertiser_id"), v.get("line_item_id"), v.get("creative_id"))
        if topic == "impressions":
            seen[v["auction_id"]] = key
        elif topic == "clicks":
            assert seen[v["auction_id"]] == key


def test_config_covers_every_setting(config: list[tuple[str, str, dict[str, Any] | None]]) -> None:
    lay = layout(SPEC)
    pixels = [v for t, _, v in config if t == "pixels" and v is not None]
    items = [v for t, _, v in config if t == "line-items" and v is not None]
    assert {p.get("trigger_type", "hybrid") for p in pixels} == {"hybrid", "view", "click"}
    assert any("trigger_type" not in p for p in pixels)
    rules = [p["min_minutes_per_conv"] for p in pixels if "min_minutes_per_conv" in p]
    assert None in rules
    assert 0 in rules
    assert any(isinstance(r, int) and r > 0 for r in rules)
    assert any("min_minutes_per_conv" not in p for p in pixels)
    for window in ("post_view_expire_mins", "post_click_expire_mins"):
        given = [p[window] for p in pixels if window in p]
        assert None in given
        assert 0 in given
        assert any(g for g in given)
        assert any(window not in p for p in pixels)
    kinds = Counter((p.get("pixel_type", "img"), len(p.get("piggyback_pixels", []))) for p in pixels)
    assert ("img", 0) in kinds
    assert ("img", 1) in kinds
    assert any(t == "js" and n >= 2 for t, n in kinds)
    assert any(p.get("event_category") for p in pixels)
    assert any(p.get("event_category") is None for p in pixels)
    assert any("post_click_value" in p for p in pixels)
    # Exactly one inactive pixel, one paused pixel (only on an inactive line item), one inactive item.
    assert [p["id"] for p in pixels if p.get("state") == "inactive"] == [lay.inactive_pixel_id]
    assert [i["id"] for i in items if i.get("state") == "inactive"] == [lay.inactive_line_item_id]
    carriers = [i for i in items if any(link["id"] == lay.paused_pixel_id for link in i["pixels"])]
    assert [i["id"] for i in carriers] == [lay.inactive_line_item_id]
    assert any(link.get("state") == "inactive" for i in items for link in i["pixels"])
    assert any("post_click_revenue" in link for i in items for link in i["pixels"])
    # A retired pixel: written, then deleted by a tombstone.
    assert [(t, k, v) for t, k, v in config if v is None] == [("pixels", str(lay.retired_pixel_id), None)]


def test_user_ids_are_distinct() -> None:
    ids = [user_id(i) for i in range(100_000)]
    assert len(set(ids)) == len(ids)


def test_replayed_traffic_exercises_every_outcome(
    traffic: list[tuple[str, str, dict[str, Any]]], config: list[tuple[str, str, dict[str, Any] | None]]
) -> None:
    lines = [orjson.dumps({"topic": t, "key": k, "value": v}) for t, k, v in [*config, *traffic]]
    result = replay(lines)
    outs = result.outputs
    assert outs["dead-letters"] == []
    kinds = Counter(orjson.loads(r)["attribution"] for r in outs["attributed-conversions"])
    assert kinds["post_click"] > 0
    assert kinds["post_view"] > 0
    reasons = Counter(orjson.loads(r)["reason"] for r in outs["unattributed-conversions"])
    # Synthetic order ids are unique and no pixel dedupes by order: never `duplicate_order_id`
    # (the rule tests cover it), which keeps the traffic and its figures as they were.
    assert set(reasons) == set(REASONS) - {"duplicate_order_id"}
    fires = [orjson.loads(r) for r in outs["piggyback-fires"]]
    assert {f["pixel_type"] for f in fires} == {"img", "js"}
    assert any(f["index"] >= 1 for f in fires)
    conversions = {v["event_id"] for t, _, v in traffic if t == "conversions"}
    judged = len(outs["attributed-conversions"]) + len(outs["unattributed-conversions"])
    assert judged == len(conversions)  # one outcome per conversion; redeliveries give none
