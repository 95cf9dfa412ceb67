"""Through real Kafka topics and a real worker, every scenario class gives replay's outputs."""

from __future__ import annotations

from pathlib import Path

import orjson

from integration.harness import Pipeline, normalized, outcome_count, replay_outputs
from scenarios import all_scenarios, in_stream_order


def test_every_scenario_class_through_kafka_gives_the_same_outputs_as_replay(pipeline: Pipeline) -> None:
    scenarios = all_scenarios()
    entries = in_stream_order([e for s in scenarios for e in s.entries])
    expected = replay_outputs(entries)
    expected_outcomes = sum(len(s.expected) for s in scenarios)
    assert outcome_count(expected) == expected_outcomes  # the oracle itself is complete

    pipeline.produce(entries)
    pipeline.start_worker()
    out = pipeline.read(
        until=lambda o: (
            outcome_count(o) >= expected_outcomes and len(o["dead-letters"]) >= len(expected["dead-letters"])
        ),
        timeout=120,
    )
    assert normalized(out, pipeline.prefix) == normalized(expected), pipeline.log()


def test_a_pixel_updated_on_the_config_topic_takes_effect_for_later_conversions(pipeline: Pipeline) -> None:
    s = all_scenarios()[0]  # post_click: pixel, line item, touches
    pixel = next(e["value"] for e in s.entries if e["topic"] == "pixels")
    pipeline.produce(in_stream_order(s.entries))
    pipeline.start_worker()
    before = pipeline.read(until=lambda o: outcome_count(o) >= 1, timeout=90)
    assert [orjson.loads(v)["attribution"] for v in before["attributed-conversions"]] == ["post_click"]

    pipeline.produce([{"topic": "pixels", "value": {**pixel, "state": "inactive"}}])
    later = {"event_id": "later", "pixel_id": pixel["id"], "user_id": "s1-a", "timestamp": 1_700_000_010_000}
    # The config cache follows the topic asynchronously: give it a moment, as an operator would.
    pipeline.read(timeout=2, settle=0)
    pipeline.produce([{"topic": "conversions", "value": later}])
    after = pipeline.read(until=lambda o: outcome_count(o) >= 2, timeout=90)
    reasons = {orjson.loads(v)["conversion_id"]: orjson.loads(v)["reason"] for v in after["unattributed-conversions"]}
    assert reasons == {"later": "inactive_pixel"}


def test_the_rocksdb_store_keeps_user_state_across_a_worker_restart(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, store="rocksdb://")
    try:
        s = all_scenarios()[11]  # repeat_rule_one_per_user
        assert s.name == "repeat_rule_one_per_user"
        first, second = s.entries[-2], s.entries[-1]
        pipeline.produce(in_stream_order(s.entries[:-1]))
        worker = pipeline.start_worker()
        pipeline.read(until=lambda o: outcome_count(o) >= 1, timeout=90)
        pipeline.stop(worker)
        assert list((tmp_path / "w0").rglob("*.sst")) or list((tmp_path / "w0").rglob("CURRENT")), "no RocksDB files"

        pipeline.start_worker()  # same data dir: state comes from RocksDB (and the changelog)
        pipeline.produce([second])
        out = pipeline.read(until=lambda o: outcome_count(o) >= 2, timeout=90)
        reasons = [orjson.loads(v)["reason"] for v in out["unattributed-conversions"]]
        assert reasons == ["repeat_limited"], pipeline.log()
        assert first["value"]["event_id"] in {orjson.loads(v)["conversion_id"] for v in out["attributed-conversions"]}
    finally:
        pipeline.close()
