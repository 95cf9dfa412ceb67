"""Offline replay (docs/design.md, Event time and Architecture): the function, the CLI, and a hand-computed scenario."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from attribution.cli import main
from attribution.errors import InvalidKey
from attribution.replay import OUTPUT_FILES, ReplayResult, config_id, replay
from helpers import (
    MINUTE,
    T0,
    click_line,
    conversion_line,
    decoded,
    impression_line,
    line,
    line_item_line,
    pixel_json,
    pixel_line,
)

OUTPUT_NAMES = [
    "attributed-conversions.jsonl",
    "unattributed-conversions.jsonl",
    "piggyback-fires.jsonl",
    "dead-letters.jsonl",
]


def outcome_of(result: ReplayResult, conversion_id: str) -> str:
    for rec in decoded(result.outputs["attributed-conversions"]):
        if rec["conversion_id"] == conversion_id:
            return f"attributed:{rec['attribution']}:{rec['touch_event_id']}"
    for rec in decoded(result.outputs["unattributed-conversions"]):
        if rec["conversion_id"] == conversion_id:
            return str(rec["reason"])
    return "nothing"


def dead(result: ReplayResult) -> list[dict[str, Any]]:
    return decoded(result.outputs["dead-letters"])


def world(*extra: bytes) -> list[bytes]:
    """Pixel 1 on line item 100, then the given lines."""
    return [pixel_line(), line_item_line(), *extra]


# --- config -----------------------------------------------------------------------------------


def test_config_records_apply_before_every_event_wherever_they_are_in_the_file() -> None:
    lines = [
        click_line(event_id="k", timestamp=T0),
        conversion_line(event_id="c", timestamp=T0 + 1),
        line_item_line(),
        pixel_line(),
    ]

    assert outcome_of(replay(lines), "c") == "attributed:post_click:k"


def test_the_last_valid_write_of_a_pixel_wins() -> None:
    lines = [
        pixel_line(trigger_type="click"),
        pixel_line(trigger_type="view"),
        line_item_line(),
        impression_line(event_id="i", timestamp=T0),
        conversion_line(event_id="c", timestamp=T0 + 1),
    ]

    assert outcome_of(replay(lines), "c") == "attributed:post_view:i"


def test_the_last_write_of_a_line_item_wins() -> None:
    lines = world(
        line_item_line(state="inactive"),
        click_line(timestamp=T0),
        conversion_line(event_id="c", timestamp=T0 + 1),
    )

    assert outcome_of(replay(lines), "c") == "pixel_paused"


@pytest.mark.parametrize("key", [1, "1"], ids=["int-key", "string-key"])
def test_a_null_pixel_value_deletes_the_pixel(key: Any) -> None:
    lines = world(line("pixels", None, key=key), conversion_line(event_id="c", timestamp=T0))

    result = replay(lines)

    assert outcome_of(result, "c") == "unknown_pixel"
    assert dead(result) == []


def test_a_null_line_item_value_deletes_the_line_item() -> None:
    lines = world(line("line-items", None, key="100"), conversion_line(event_id="c", timestamp=T0))

    assert outcome_of(replay(lines), "c") == "pixel_paused"


def test_a_pixel_written_again_after_its_deletion_exists() -> None:
    lines = world(line("pixels", None, key=1), pixel_line(), conversion_line(event_id="c", timestamp=T0))

    assert outcome_of(replay(lines), "c") == "no_eligible_touch"


@pytest.mark.parametrize("key", [None, 0, -3, "abc", True, 1.5])
def test_a_tombstone_without_a_usable_key_is_a_dead_letter_and_deletes_nothing(key: Any) -> None:
    entry: dict[str, Any] = {"topic": "pixels", "value": None}
    if key is not None:
        entry["key"] = key
    lines = world(orjson.dumps(entry), conversion_line(event_id="c", timestamp=T0))

    result = replay(lines)

    assert [d["error"]["code"] for d in dead(result)] == ["invalid_key"]
    assert outcome_of(result, "c") == "no_eligible_touch"


@pytest.mark.parametrize("key", ["2", "zz1", 2])
def test_a_config_record_keyed_by_another_id_is_a_dead_letter_and_changes_nothing(key: Any) -> None:
    # As on the compacted topics: the record would otherwise replace what its key names there.
    lines = world(line("pixels", pixel_json(state="inactive"), key=key), conversion_line(event_id="c", timestamp=T0))
    lines = [line("pixels", pixel_json(id=2)), *lines]

    result = replay(lines)

    assert [d["error"]["code"] for d in dead(result)] == ["invalid_key"]
    assert outcome_of(result, "c") == "no_eligible_touch"  # pixel 1 is still active


def test_a_config_record_without_a_key_is_keyed_by_its_id() -> None:
    entry = {"topic": "pixels", "value": pixel_json(state="inactive")}
    lines = world(orjson.dumps(entry), conversion_line(event_id="c", timestamp=T0))

    assert outcome_of(replay(lines), "c") == "inactive_pixel"


def test_config_id_accepts_positive_ints_and_their_decimal_text_only() -> None:
    assert (config_id(7), config_id("7"), config_id(b"7")) == (7, 7, 7)
    for bad in (0, "0", "-1", "x", None, True, 2.0, " 1 ", "01", "+1", 2**63):
        with pytest.raises(InvalidKey):
            config_id(bad)


def test_an_invalid_pixel_is_a_dead_letter_and_the_previous_version_stays_in_force() -> None:
    lines = [
        pixel_line(piggyback_pixels=[{"pixel_type": "img", "url": "https://pb.example/1"}]),
        pixel_line(post_click_expire_mins=129_601, piggyback_pixels=[]),
        line_item_line(),
        conversion_line(event_id="c", timestamp=T0),
    ]

    result = replay(lines)

    (letter,) = dead(result)
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("pixels", 0, 1)
    assert letter["error"]["code"] == "invalid_pixel"
    assert "post_click_expire_mins" in letter["error"]["message"]
    assert orjson.loads(letter["payload"])["post_click_expire_mins"] == 129_601
    assert [f["fire_id"] for f in decoded(result.outputs["piggyback-fires"])] == ["c:0"]


def test_an_invalid_first_version_of_a_pixel_leaves_it_unknown() -> None:
    lines = [pixel_line(name=""), line_item_line(), conversion_line(event_id="c", timestamp=T0)]

    result = replay(lines)

    assert outcome_of(result, "c") == "unknown_pixel"
    assert dead(result)[0]["error"]["code"] == "invalid_pixel"


def test_an_invalid_line_item_is_a_dead_letter_and_the_previous_version_stays() -> None:
    lines = world(line_item_line(state="paused"), click_line(event_id="k"), conversion_line(event_id="c"))

    result = replay(lines)

    assert [d["error"]["code"] for d in dead(result)] == ["invalid_line_item"]
    assert outcome_of(result, "c") == "attributed:post_click:k"


# --- event order ------------------------------------------------------------------------------


def test_events_are_judged_in_timestamp_order_not_file_order() -> None:
    lines = world(
        conversion_line(event_id="c", timestamp=T0 + 10),
        click_line(event_id="k", timestamp=T0),
    )

    assert outcome_of(replay(lines), "c") == "attributed:post_click:k"


def test_a_touch_at_the_same_timestamp_as_a_conversion_is_applied_first() -> None:
    lines = world(conversion_line(event_id="c", timestamp=T0), impression_line(event_id="i", timestamp=T0))

    assert outcome_of(replay(lines), "c") == "attributed:post_view:i"


def test_a_touch_one_ms_after_a_conversion_is_not_seen_by_it() -> None:
    lines = world(conversion_line(event_id="c", timestamp=T0), impression_line(timestamp=T0 + 1))

    assert outcome_of(replay(lines), "c") == "no_eligible_touch"


def test_touches_with_equal_timestamps_keep_their_file_order() -> None:
    lines = world(
        click_line(event_id="first", timestamp=T0),
        click_line(event_id="second", timestamp=T0),
        conversion_line(event_id="c", timestamp=T0 + 1),
    )

    assert outcome_of(replay(lines), "c") == "attributed:post_click:second"


def test_outputs_come_out_in_event_time_order_across_users() -> None:
    lines = world(
        conversion_line(event_id="late", user_id="a", timestamp=T0 + 2, pixel_id=9),
        conversion_line(event_id="early", user_id="b", timestamp=T0 + 1, pixel_id=9),
    )

    result = replay(lines)

    assert [r["conversion_id"] for r in decoded(result.outputs["unattributed-conversions"])] == ["early", "late"]


def test_the_record_key_does_not_decide_the_user() -> None:
    lines = world(
        line("clicks", {**orjson.loads(click_line(event_id="k"))["value"]}, key="someone-else"),
        line("conversions", orjson.loads(conversion_line(event_id="c", timestamp=T0 + 1))["value"], key="x"),
    )

    result = replay(lines)

    assert outcome_of(result, "c") == "attributed:post_click:k"
    assert set(result.users) == {"u1"}


def test_a_redelivered_conversion_later_in_the_file_changes_nothing() -> None:
    conv = conversion_line(event_id="c", timestamp=T0 + 1)
    once = replay(world(click_line(event_id="k", timestamp=T0), conv))
    twice = replay(world(click_line(event_id="k", timestamp=T0), conv, impression_line(timestamp=T0 + 5), conv))

    assert twice.outputs == once.outputs


def test_a_raw_string_value_is_decoded_as_the_records_bytes() -> None:
    value = orjson.loads(click_line(event_id="k", timestamp=T0))["value"]
    lines = world(line("clicks", orjson.dumps(value).decode()), conversion_line(event_id="c", timestamp=T0 + 1))

    assert outcome_of(replay(lines), "c") == "attributed:post_click:k"


# --- bad records ------------------------------------------------------------------------------


def test_bad_lines_and_values_become_dead_letters_in_file_order_and_processing_continues() -> None:
    lines = world(
        b"this is not json",
        b"[1, 2]",
        orjson.dumps({"topic": "purchases", "value": {}}),
        line("clicks", {"event_id": "k0"}),
        line("conversions", "{not json"),
        line("impressions", None),
        line("conversions", {**orjson.loads(conversion_line())["value"], "timestamp": True}),
        b"",
        b"   ",
        click_line(event_id="k", timestamp=T0),
        conversion_line(event_id="c", timestamp=T0 + 1),
    )

    result = replay(lines)

    assert [(d["topic"], d["offset"], d["error"]["code"]) for d in dead(result)] == [
        ("<input>", 2, "invalid_json"),
        ("<input>", 3, "invalid_line"),
        ("<input>", 4, "invalid_line"),
        ("clicks", 0, "schema_violation"),
        ("conversions", 0, "invalid_json"),
        ("impressions", 0, "not_an_object"),
        ("conversions", 1, "schema_violation"),
    ]
    assert outcome_of(result, "c") == "attributed:post_click:k"
    assert result.events == 2


def test_a_dead_letter_keeps_the_bad_payload_and_names_the_field() -> None:
    lines = [line("conversions", {"event_id": "c", "pixel_id": 1, "user_id": "u", "timestamp": True})]

    (letter,) = dead(replay(lines))

    assert letter["error"] == {"code": "schema_violation", "message": letter["error"]["message"]}
    assert letter["error"]["message"].startswith("timestamp:")
    assert orjson.loads(letter["payload"]) == {"event_id": "c", "pixel_id": 1, "user_id": "u", "timestamp": True}


def test_a_line_with_invalid_utf8_is_a_dead_letter() -> None:
    (letter,) = dead(replay([b'{"topic": "clicks", "value": "\xff"}']))

    assert letter["error"]["code"] == "invalid_utf8"
    assert "\ufffd" in letter["payload"]


def test_a_huge_bad_payload_is_cut_to_4_kib_in_its_dead_letter() -> None:
    value = {**orjson.loads(conversion_line())["value"], "timestamp": "x" * 10_000}

    (letter,) = dead(replay([line("conversions", value)]))

    assert len(letter["payload"].encode()) == 4096


# --- a hand-computed scenario -----------------------------------------------------------------

M = MINUTE
SCENARIO_INPUT = [
    {"topic": "pixels", "key": 1, "value": {
        "id": 1, "advertiser_id": 10, "name": "purchase", "post_click_value": 5, "post_view_value": 1,
        "event_category": "purchase", "piggyback_pixels": [{"pixel_type": "img", "url": "https://pb.example/1.gif"}]}},
    {"topic": "pixels", "key": 2, "value": {
        "id": 2, "advertiser_id": 20, "name": "lead", "trigger_type": "view", "post_view_expire_mins": 60,
        "min_minutes_per_conv": 30}},
    {"topic": "pixels", "key": 3, "value": {"id": 3, "advertiser_id": 10, "name": "never carried"}},
    {"topic": "line-items", "key": 100, "value": {
        "id": 100, "advertiser_id": 10, "pixels": [{"id": 1, "post_click_revenue": 0.5, "post_view_revenue": 0.1}]}},
    {"topic": "line-items", "key": 200, "value": {"id": 200, "advertiser_id": 20, "pixels": [{"id": 2}]}},
    # user a
    {"topic": "impressions", "value": {"event_id": "i1", "user_id": "a", "timestamp": 1_700_000_000_000,
        "advertiser_id": 10, "line_item_id": 100, "creative_id": 1, "auction_id": "A1"}},
    {"topic": "clicks", "value": {"event_id": "k1", "user_id": "a", "timestamp": 1_700_000_600_000,
        "advertiser_id": 10, "line_item_id": 100, "creative_id": 2, "auction_id": "A2", "campaign_id": 7}},
    {"topic": "impressions", "value": {"event_id": "i2", "user_id": "a", "timestamp": 1_700_001_200_000,
        "advertiser_id": 10, "line_item_id": 100, "creative_id": 3, "auction_id": "A3"}},
    {"topic": "conversions", "value": {"event_id": "c1", "pixel_id": 1, "user_id": "a",
        "timestamp": 1_700_001_800_000, "order_id": "O-1"}},
    {"topic": "conversions", "value": {"event_id": "c2", "pixel_id": 1, "user_id": "a",
        "timestamp": 1_700_002_400_000}},
    {"topic": "conversions", "value": {"event_id": "c3", "pixel_id": 3, "user_id": "a",
        "timestamp": 1_700_002_460_000}},
    # user b (j2 is in the file after the conversion it precedes in time)
    {"topic": "impressions", "value": {"event_id": "j1", "user_id": "b", "timestamp": 1_700_000_000_000,
        "advertiser_id": 20, "line_item_id": 200, "creative_id": 4, "auction_id": "B1"}},
    {"topic": "conversions", "value": {"event_id": "d1", "pixel_id": 2, "user_id": "b",
        "timestamp": 1_700_003_600_000, "value": 0}},
    {"topic": "conversions", "value": {"event_id": "d2", "pixel_id": 2, "user_id": "b",
        "timestamp": 1_700_003_660_000}},
    {"topic": "conversions", "value": {"event_id": "d3", "pixel_id": 2, "user_id": "b",
        "timestamp": 1_700_005_400_000, "value": 19.99, "other": "ext"}},
    {"topic": "impressions", "value": {"event_id": "j2", "user_id": "b", "timestamp": 1_700_004_200_000,
        "advertiser_id": 20, "line_item_id": 200, "creative_id": 5, "auction_id": "B2", "imp_type": 9}},
    {"topic": "impressions", "value": {"event_id": "j3", "user_id": "b", "timestamp": 1_700_004_300_000,
        "advertiser_id": 20, "line_item_id": 200, "creative_id": 6, "auction_id": "B3", "imp_type": 3}},
    {"topic": "conversions", "value": {"event_id": "d4", "pixel_id": 9, "user_id": "b",
        "timestamp": 1_700_005_700_000}},
    {"topic": "conversions", "value": {"event_id": "d1", "pixel_id": 2, "user_id": "b",
        "timestamp": 1_700_003_600_000, "value": 0}},
    {"topic": "conversions", "value": {"event_id": "bad", "pixel_id": 2, "user_id": "b", "timestamp": "soon"}},
]  # fmt: skip

SCENARIO_ATTRIBUTED = [
    {"conversion_id": "c1", "pixel_id": 1, "advertiser_id": 10, "user_id": "a", "conversion_timestamp": 1_700_001_800_000,
     "attribution": "post_click", "touch_event_id": "k1", "touch_timestamp": 1_700_000_600_000, "auction_id": "A2",
     "line_item_id": 100, "creative_id": 2, "campaign_id": 7, "latency_ms": 20 * M, "value": 5, "booked_revenue": 0.5,
     "order_id": "O-1", "other": None, "event_category": "purchase", "source": "pixel"},
    {"conversion_id": "d1", "pixel_id": 2, "advertiser_id": 20, "user_id": "b", "conversion_timestamp": 1_700_003_600_000,
     "attribution": "post_view", "touch_event_id": "j1", "touch_timestamp": 1_700_000_000_000, "auction_id": "B1",
     "line_item_id": 200, "creative_id": 4, "campaign_id": None, "latency_ms": 60 * M, "value": 0,
     "booked_revenue": None, "order_id": None, "other": None, "event_category": None, "source": "pixel"},
    {"conversion_id": "d3", "pixel_id": 2, "advertiser_id": 20, "user_id": "b", "conversion_timestamp": 1_700_005_400_000,
     "attribution": "post_view", "touch_event_id": "j2", "touch_timestamp": 1_700_004_200_000, "auction_id": "B2",
     "line_item_id": 200, "creative_id": 5, "campaign_id": None, "latency_ms": 20 * M, "value": 19.99,
     "booked_revenue": None, "order_id": None, "other": "ext", "event_category": None, "source": "pixel"},
]  # fmt: skip
SCENARIO_UNATTRIBUTED = [
    {"conversion_id": "c2", "pixel_id": 1, "user_id": "a", "conversion_timestamp": 1_700_002_400_000,
     "reason": "repeat_limited", "source": "pixel"},
    {"conversion_id": "c3", "pixel_id": 3, "user_id": "a", "conversion_timestamp": 1_700_002_460_000,
     "reason": "pixel_paused", "source": "pixel"},
    {"conversion_id": "d2", "pixel_id": 2, "user_id": "b", "conversion_timestamp": 1_700_003_660_000,
     "reason": "no_eligible_touch", "source": "pixel"},
    {"conversion_id": "d4", "pixel_id": 9, "user_id": "b", "conversion_timestamp": 1_700_005_700_000,
     "reason": "unknown_pixel", "source": "pixel"},
]  # fmt: skip
SCENARIO_FIRES = [
    {"fire_id": f"{c}:0", "conversion_id": c, "pixel_id": 1, "pixel_type": "img", "url": "https://pb.example/1.gif",
     "index": 0, "user_id": "a", "conversion_timestamp": ts}
    for c, ts in (("c1", 1_700_001_800_000), ("c2", 1_700_002_400_000))
]  # fmt: skip


def scenario_lines() -> list[bytes]:
    return [orjson.dumps(entry) for entry in SCENARIO_INPUT]


def test_a_small_scenario_gives_the_hand_computed_result() -> None:
    result = replay(scenario_lines())

    assert decoded(result.outputs["attributed-conversions"]) == SCENARIO_ATTRIBUTED
    assert decoded(result.outputs["unattributed-conversions"]) == SCENARIO_UNATTRIBUTED
    assert decoded(result.outputs["piggyback-fires"]) == SCENARIO_FIRES
    assert [(d["topic"], d["offset"], d["error"]["code"]) for d in dead(result)] == [
        ("conversions", 8, "schema_violation")
    ]
    assert "timestamp" in dead(result)[0]["error"]["message"]
    assert result.events == 14  # 6 touches (one not a real-auction impression) + 8 conversions
    assert set(result.users) == {"a", "b"}


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(scenario_lines()) + b"\n")
    return path


def read_outputs(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: [orjson.loads(x) for x in (out / name).read_bytes().splitlines()] for name in OUTPUT_NAMES}


def test_the_output_file_names_are_the_four_output_topics() -> None:
    assert list(OUTPUT_FILES.values()) == OUTPUT_NAMES


def test_the_replay_command_writes_the_four_output_files(scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "nested"

    result = CliRunner().invoke(main, ["replay", str(scenario_file), "--out", str(out), "--no-progress"])

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_NAMES)
    outputs = read_outputs(out)
    assert outputs["attributed-conversions.jsonl"] == SCENARIO_ATTRIBUTED
    assert outputs["unattributed-conversions.jsonl"] == SCENARIO_UNATTRIBUTED
    assert outputs["piggyback-fires.jsonl"] == SCENARIO_FIRES
    assert len(outputs["dead-letters.jsonl"]) == 1
    assert "replayed 14 events" in result.stderr


def test_the_replay_command_output_files_hold_exactly_the_replay_results_bytes(
    scenario_file: Path, tmp_path: Path
) -> None:
    expected = replay(scenario_lines())

    CliRunner().invoke(main, ["replay", str(scenario_file), "--out", str(tmp_path)])

    for topic, name in OUTPUT_FILES.items():
        assert (tmp_path / name).read_bytes() == b"".join(r + b"\n" for r in expected.outputs[topic])


def test_the_replay_command_reads_standard_input_for_a_dash(tmp_path: Path) -> None:
    data = b"\n".join(world(click_line(event_id="k"), conversion_line(event_id="c", timestamp=T0 + 1)))

    result = CliRunner().invoke(main, ["replay", "-", "--out", str(tmp_path)], input=data)

    assert result.exit_code == 0, result.output
    assert [r["conversion_id"] for r in read_outputs(tmp_path)["attributed-conversions.jsonl"]] == ["c"]


def test_the_replay_command_replays_one_file_per_topic_like_the_files_concatenated(
    scenario_file: Path, tmp_path: Path
) -> None:
    lines = [x for x in scenario_lines() if x.strip()]
    by_topic: dict[str, list[bytes]] = {}
    for x in lines:
        entry = orjson.loads(x) if x.startswith(b"{") else {}
        topic = entry.get("topic") if isinstance(entry.get("topic"), str) else "other"
        by_topic.setdefault(topic, []).append(x)
    paths = []
    for n, (topic, records) in enumerate(by_topic.items()):
        paths.append(tmp_path / f"{n}-{topic}.jsonl")
        paths[-1].write_bytes(b"\n".join(records) + b"\n")
    expected = replay([x for records in by_topic.values() for x in records])

    result = CliRunner().invoke(main, ["replay", *map(str, paths), "--out", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    for topic, name in OUTPUT_FILES.items():
        if topic != "dead-letters":  # a dead letter's offset counts within its own file
            assert (tmp_path / "out" / name).read_bytes() == b"".join(r + b"\n" for r in expected.outputs[topic])
    assert expected.outputs["attributed-conversions"]


def test_the_replay_command_writes_empty_files_for_an_empty_input(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")

    result = CliRunner().invoke(main, ["replay", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "o")])

    assert result.exit_code == 0
    assert all((tmp_path / "o" / name).read_bytes() == b"" for name in OUTPUT_NAMES)


def test_a_missing_input_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"

    result = CliRunner().invoke(main, ["replay", str(missing), "--out", str(tmp_path / "o")])

    assert result.exit_code == 2
    assert f"cannot read {missing}" in result.stderr
    assert "No such file" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_an_output_path_that_is_a_file_exits_2(scenario_file: Path) -> None:
    result = CliRunner().invoke(main, ["replay", str(scenario_file), "--out", str(scenario_file)])

    assert result.exit_code == 2
    assert "--out" in result.stderr


def test_the_replay_command_requires_out(scenario_file: Path) -> None:
    result = CliRunner().invoke(main, ["replay", str(scenario_file)])

    assert result.exit_code == 2
    assert "--out" in result.stderr


def test_the_state_limits_come_from_the_environment(tmp_path: Path) -> None:
    data = b"\n".join(
        world(
            click_line(event_id="k", timestamp=T0),
            click_line(timestamp=T0 + 1, line_item_id=555),  # same advertiser and kind, no pixel
            conversion_line(event_id="c", timestamp=T0 + 2),
        )
    )
    runner = CliRunner()

    default = runner.invoke(main, ["replay", "-", "--out", str(tmp_path / "a")], input=data)
    capped = runner.invoke(
        main, ["replay", "-", "--out", str(tmp_path / "b")], input=data, env={"ATTRIBUTION_MAX_TOUCHES": "1"}
    )

    assert (default.exit_code, capped.exit_code) == (0, 0)
    assert read_outputs(tmp_path / "a")["attributed-conversions.jsonl"][0]["touch_event_id"] == "k"
    assert read_outputs(tmp_path / "b")["unattributed-conversions.jsonl"][0]["reason"] == "no_eligible_touch"


def test_an_unusable_environment_variable_exits_2_with_a_one_line_message(scenario_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["replay", str(scenario_file), "--out", str(tmp_path)], env={"ATTRIBUTION_MAX_TOUCHES": "many"}
    )

    assert result.exit_code == 2
    assert "ATTRIBUTION_MAX_TOUCHES" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "mib"),
    [([], {}, 128), (["--memory", "64"], {}, 64), ([], {"ATTRIBUTION_REPLAY_MEMORY_MB": "32"}, 32)],
)
def test_the_replay_command_keeps_states_within_the_memory_it_is_given(
    scenario_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], mib: int
) -> None:
    replay_cmd = importlib.import_module("attribution.cli.replay_cmd")  # the module, not its command
    budgets: list[int] = []
    original = replay_cmd.replay_inputs

    def spy(*a: Any, memory: int, **kw: Any) -> Any:
        budgets.append(memory)
        return original(*a, memory=memory, **kw)

    monkeypatch.setattr(replay_cmd, "replay_inputs", spy)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["replay", str(scenario_file), "--out", str(tmp_path), "--no-progress", *args])
    assert result.exit_code == 0, result.output
    assert budgets == [mib * 2**20]
    assert read_outputs(tmp_path)["attributed-conversions.jsonl"] == SCENARIO_ATTRIBUTED
