"""The Faust agents of `create_app`, run in memory: what they publish and what they keep per user.

Topics carry a prefix ("acme.") throughout, so the agents are also checked to map real topic names
to the contract's default names. A conversion is held until both touch streams of its partition
have passed its timestamp (docs/design.md, Event time); `pass_touch_streams` moves them with a bystander's touches.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
import pytest

from agents.conftest import SETTINGS, Driver, Recorder
from attribution.streaming.event_time import LAG_SOURCES
from attribution.streaming.processor import SOURCE_HEADER
from attribution.streaming.topics import REKEY_TOPIC, TICK_TOPIC
from helpers import HOUR, MINUTE, PIXEL, T0, USER, click_json, conversion_json, impression_json, pixel_json

UKEY = USER.encode()


async def pass_touch_streams(events: Driver, timestamp: int, partition: int = 0) -> None:
    """Both touch streams of the partition reach `timestamp`: a bystander's impression and click."""
    await events.put("impressions", impression_json(user_id="bystander", timestamp=timestamp), partition=partition)
    await events.put("clicks", click_json(user_id="bystander", timestamp=timestamp), partition=partition)


def outcome_topics(recorder: Recorder) -> list[str]:
    return [s.topic.removeprefix(SETTINGS.topic_prefix) for s in recorder.sent]


async def test_a_conversion_after_a_click_is_published_as_attributed_post_click(
    events: Driver, recorder: Recorder
) -> None:
    await events.put("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    conv = conversion_json(event_id="v1", timestamp=T0, value=12.5, order_id="o-1")
    await events.put("conversions", conv)
    await pass_touch_streams(events, T0 + MINUTE)

    [sent] = recorder.to("attributed-conversions")
    assert sent.key == UKEY
    record = sent.record
    assert (record["conversion_id"], record["user_id"], record["pixel_id"]) == ("v1", USER, PIXEL)
    assert (record["attribution"], record["touch_event_id"], record["latency_ms"]) == ("post_click", "c1", HOUR)
    assert (record["value"], record["order_id"]) == (12.5, "o-1")
    assert recorder.to("unattributed-conversions") == []


async def test_the_users_table_keeps_the_touch_and_remembers_the_judged_conversion(events: Driver) -> None:
    await events.put("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    await events.put("conversions", conversion_json(event_id="v1", timestamp=T0))
    assert [c.event_id for c, _ in events.state(USER).held] == ["v1"]

    await pass_touch_streams(events, T0 + MINUTE)
    state = events.state(USER)
    assert [(t.kind, t.event_id) for t in state.touches] == [("click", "c1")]
    assert state.has_processed("v1")
    assert state.held == ()
    assert state.last_counted(PIXEL) == T0


async def test_each_users_state_goes_to_the_users_changelog_on_the_records_partition(
    events: Driver, recorder: Recorder
) -> None:
    await events.put("clicks", click_json(event_id="c1", timestamp=T0 - HOUR), partition=2)
    [write] = recorder.changelog
    assert (write.topic, write.key, write.partition) == (f"{SETTINGS.app_id}-users-changelog", UKEY, 2)
    assert [t.event_id for t in events.state(USER).touches] == ["c1"]
    users = events.app.attribution["users"]  # type: ignore[attr-defined]
    assert users.get(UKEY) == write.value  # the store holds what the changelog got


async def test_a_conversion_is_not_published_before_the_touch_streams_pass_it(
    events: Driver, recorder: Recorder
) -> None:
    await events.put("conversions", conversion_json(timestamp=T0))
    await events.put("impressions", impression_json(user_id="bystander", timestamp=T0 + MINUTE))
    assert recorder.sent == []  # the clicks stream has not passed the conversion yet


async def test_a_conversion_without_an_eligible_touch_is_published_as_unattributed_no_eligible_touch(
    events: Driver, recorder: Recorder
) -> None:
    await events.put("clicks", click_json(advertiser_id=999, timestamp=T0 - HOUR))  # another advertiser's
    await events.put("conversions", conversion_json(event_id="v1", timestamp=T0))
    await pass_touch_streams(events, T0 + MINUTE)

    [sent] = recorder.to("unattributed-conversions")
    assert sent.key == UKEY
    assert (sent.record["conversion_id"], sent.record["reason"]) == ("v1", "no_eligible_touch")
    assert recorder.to("attributed-conversions") == []


@pytest.mark.parametrize(
    "pixels",
    [
        [
            pixel_json(
                pixel_type="js",
                piggyback_pixels=[{"pixel_type": "js", "url": f"https://t{i}.example/p.js"} for i in range(3)],
            )
        ]
    ],
)
async def test_a_conversion_of_a_pixel_with_piggybacks_publishes_one_fire_per_url_in_order_before_the_outcome(
    events: Driver, recorder: Recorder, pixels: list[dict[str, Any]]
) -> None:
    await events.put("impressions", impression_json(event_id="i1", timestamp=T0 - HOUR))
    await events.put("conversions", conversion_json(event_id="v1", timestamp=T0))
    await pass_touch_streams(events, T0 + MINUTE)

    assert outcome_topics(recorder) == ["piggyback-fires"] * 3 + ["attributed-conversions"]
    fires = recorder.to("piggyback-fires")
    assert {s.key for s in fires} == {UKEY}
    assert [(f.record["fire_id"], f.record["index"], f.record["url"]) for f in fires] == [
        (f"v1:{i}", i, f"https://t{i}.example/p.js") for i in range(3)
    ]
    [attributed] = recorder.records("attributed-conversions")
    assert (attributed["attribution"], attributed["touch_event_id"]) == ("post_view", "i1")


@pytest.mark.parametrize("line_items", [[]])
async def test_a_paused_pixel_still_fires_its_piggybacks_but_attributes_nothing(
    events: Driver, recorder: Recorder, line_items: list[Any]
) -> None:
    await events.put("clicks", click_json(timestamp=T0 - HOUR))
    await events.put("conversions", conversion_json(timestamp=T0))
    await pass_touch_streams(events, T0 + MINUTE)
    assert [r["reason"] for r in recorder.records("unattributed-conversions")] == ["pixel_paused"]


async def test_invalid_json_becomes_a_dead_letter_and_the_stream_goes_on_with_the_next_record(
    events: Driver, recorder: Recorder
) -> None:
    await events.put("clicks", b'{"event_id": "c0", ', key=b"u1", partition=2)
    await events.put("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    await events.put("conversions", conversion_json(event_id="v1", timestamp=T0))
    await pass_touch_streams(events, T0 + MINUTE)

    [dead] = recorder.to("dead-letters")
    assert dead.key == b"u1"
    letter = dead.record
    assert (letter["topic"], letter["partition"], letter["offset"]) == (SETTINGS.topic("clicks"), 2, 0)
    assert letter["error"]["code"] == "invalid_json"
    assert letter["payload"] == '{"event_id": "c0", '
    [attributed] = recorder.records("attributed-conversions")
    assert attributed["touch_event_id"] == "c1"
    assert "c0" not in [t.event_id for t in events.state(USER).touches]


async def test_a_record_that_breaks_its_schema_becomes_a_dead_letter_naming_the_field(
    events: Driver, recorder: Recorder
) -> None:
    await events.put("conversions", {**conversion_json(), "pixel_id": "one"})
    [letter] = recorder.records("dead-letters")
    assert letter["error"]["code"] == "schema_violation"
    assert letter["error"]["message"].startswith("pixel_id:")
    assert events.state(USER).is_empty


async def test_a_mis_keyed_click_is_forwarded_to_the_re_key_topic_and_kept_when_it_comes_back(
    events: Driver, recorder: Recorder
) -> None:
    click = click_json(event_id="c1", timestamp=T0 - HOUR)
    await events.put("clicks", click, key=b"not-the-user")
    [forward] = recorder.to(REKEY_TOPIC)
    assert (forward.key, orjson.loads(forward.value)) == (UKEY, click)
    assert list(forward.headers) == [(SOURCE_HEADER, b"clicks")]
    assert events.state(USER).touches == ()

    await events.put(REKEY_TOPIC, forward.value, key=forward.key, headers=forward.headers)
    assert [(t.kind, t.event_id) for t in events.state(USER).touches] == [("click", "c1")]
    assert len(recorder.to(REKEY_TOPIC)) == 1  # not forwarded again


async def test_a_held_conversion_is_judged_on_a_tick_once_the_bounded_wait_is_over(
    app: Any, events: Driver, recorder: Recorder
) -> None:
    processor = app.attribution["processor"]
    now = [100.0]
    processor.clock = lambda: now[0]
    await events.put("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    await events.put("conversions", conversion_json(event_id="v1", timestamp=T0))
    for source in LAG_SOURCES:  # the consumer reports every touch source read to its end
        processor.time.report_lag(0, source, 0, 0, now[0])
    assert processor.due_ticks() == []

    now[0] += SETTINGS.hold_ms / 1000
    assert processor.due_ticks() == [0]
    await events.put(TICK_TOPIC, b"", key=b"tick", partition=0)
    [attributed] = recorder.records("attributed-conversions")
    assert (attributed["conversion_id"], attributed["touch_event_id"]) == ("v1", "c1")


async def test_a_redelivered_conversion_publishes_nothing_new(events: Driver, recorder: Recorder) -> None:
    conv = conversion_json(event_id="v1", timestamp=T0)
    await pass_touch_streams(events, T0 + MINUTE)
    await events.put("conversions", conv)
    await events.put("conversions", conv)
    assert [r["conversion_id"] for r in recorder.records("unattributed-conversions")] == ["v1"]


async def test_a_state_is_written_only_once_its_outcome_is_acknowledged_while_the_next_records_are_stepped_on_it(
    events: Driver, recorder: Recorder
) -> None:
    await pass_touch_streams(events, T0 + MINUTE)
    users = events.app.attribution["users"]  # type: ignore[attr-defined]
    recorder.unacked = []  # the broker acknowledges nothing until the test says so
    written_before = len(recorder.changelog)

    conv = conversion_json(event_id="v1", timestamp=T0)
    await events.put("conversions", conv)
    assert [r["conversion_id"] for r in recorder.records("unattributed-conversions")] == ["v1"]
    assert users.get(UKEY) is None, "the state that records the outcome waits for its acknowledgement"
    assert all(w.key != UKEY for w in recorder.changelog[written_before:])

    # The agent goes on meanwhile, on the state in flight (not the table's), even with the
    # processor's own copy of it forgotten: the redelivered conversion is a duplicate.
    events.app.attribution["processor"].forget_states()  # type: ignore[attr-defined]
    await events.put("conversions", conv)
    await events.put("clicks", click_json(user_id="later", event_id="c9", timestamp=T0 + 2 * MINUTE))
    assert [r["conversion_id"] for r in recorder.records("unattributed-conversions")] == ["v1"]

    for ack in recorder.unacked:
        ack.set_result(None)
    for _ in range(20):
        await asyncio.sleep(0)
    keys = [w.key for w in recorder.changelog[written_before:]]
    assert keys[0] == UKEY, "states are written in the order of their records"
    assert keys[-1] == b"later"
    assert events.state(USER).has_processed("v1")


# --- the config agent: dead-letters invalid config records once, cluster-wide -----------------


async def test_the_config_agent_dead_letters_an_invalid_pixel_and_passes_a_valid_one(
    config_agent: Driver, recorder: Recorder
) -> None:
    await config_agent.put("pixels", orjson.dumps(pixel_json(id=2, trigger_type="sometimes")), key=b"2")
    await config_agent.put("pixels", orjson.dumps(pixel_json(id=3)), key=b"3")
    await config_agent.put("pixels", None, key=b"not-an-id")

    letters = recorder.to("dead-letters")
    assert [(s.key, s.record["error"]["code"]) for s in letters] == [
        (b"2", "invalid_pixel"),
        (b"not-an-id", "invalid_key"),
    ]
    assert letters[0].record["error"]["message"].startswith("trigger_type:")


async def test_the_config_agent_re_publishes_the_valid_version_over_an_invalid_record_on_its_key(
    app: faust.App, config_agent: Driver, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[tuple[Any, ...]] = []

    async def send_and_wait(topic: str, key: bytes, value: bytes | None, **kw: Any) -> None:
        published.append((topic, key, value, kw["partition"], kw["headers"]))

    monkeypatch.setattr(app.producer, "send_and_wait", send_and_wait)
    valid = orjson.dumps(pixel_json(id=3))
    await config_agent.put("pixels", valid, key=b"3")
    await config_agent.put("pixels", orjson.dumps(pixel_json(id=3, name="")), key=b"3")
    await config_agent.put("pixels", orjson.dumps(pixel_json(id=81)), key=b"3")

    codes = [s.record["error"]["code"] for s in recorder.to("dead-letters")]
    assert codes == ["invalid_pixel", "invalid_key"]
    topic = SETTINGS.topic("pixels")
    assert published == [
        (topic, b"3", valid, 0, [("attribution-restores", b"1")]),
        (topic, b"3", valid, 0, [("attribution-restores", b"2")]),
    ]
    assert app.attribution["cache"].pixels[3].name == pixel_json()["name"]  # type: ignore[attr-defined]
