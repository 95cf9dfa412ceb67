"""The CLI without a broker: refused input, argument errors, an unreachable broker, and the pure
aggregation behind `attribution report`.

Commands that would publish are pointed at a closed port (127.0.0.1:1): a refusal must come from
validation, before any connection is attempted, so the output never mentions Kafka.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from attribution.app.reports import REASONS, percentile
from attribution.cli import main
from attribution.cli.config_cmd import InputError, parse_file, repeat_rule, window
from attribution.cli.report_cmd import duration, render, summarize
from attribution.cli.simulate_cmd import Stats, TokenBucket
from helpers import pixel_json

NO_BROKER = "127.0.0.1:1"


def invoke(*args: str, stdin: bytes | str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def put(kind: str, content: Any) -> Result:
    data = content if isinstance(content, (bytes, str)) else orjson.dumps(content)
    return invoke(kind, "put", "-", "--broker", NO_BROKER, stdin=data)


def pixel(**fields: Any) -> dict[str, Any]:
    return pixel_json(**{"id": 42, "advertiser_id": 7, "name": "checkout", **fields})


# --- pixels put / line-items put: refusals ----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"post_view_expire_mins": 43201}, "post_view_expire_mins: must be smaller than or equal to 43200"),
        ({"post_click_expire_mins": 129601}, "post_click_expire_mins: must be smaller than or equal to 129600"),
        ({"min_minutes_per_conv": -1}, "min_minutes_per_conv: must be bigger than or equal to 0"),
        ({"trigger_type": "both"}, "trigger_type: must be one of"),
        ({"name": ""}, "name:"),
        ({"colour": "red"}, "colour: unknown field"),
        (
            {"piggyback_pixels": [{"pixel_type": "img", "url": "https://a.example/1"}] * 2},
            "an img pixel takes at most one piggyback pixel",
        ),
        (
            {"pixel_type": "js", "piggyback_pixels": [{"pixel_type": "img", "url": "https://a.example/1"}]},
            "piggyback_pixels[0].pixel_type",
        ),
        ({"piggyback_pixels": [{"pixel_type": "img", "url": "ftp://a.example/1"}]}, "piggyback_pixels[0].url"),
    ],
)
def test_an_invalid_pixel_is_refused_naming_the_field_and_rule(fields: dict[str, Any], expected: str) -> None:
    result = put("pixels", pixel(**fields))
    assert result.exit_code == 1
    assert result.stderr.startswith("pixel 42: ")
    assert expected in result.stderr
    assert result.stdout == ""
    assert "Kafka" not in result.output  # refused before any connection attempt


def test_one_bad_pixel_refuses_the_whole_array_and_names_it() -> None:
    result = put("pixels", [pixel(id=1), pixel(id=2, state="paused"), pixel(id=3)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("pixel 2: state: must be one of")
    assert lines[-1] == "nothing published: 1 of 3 pixels refused"
    assert "put pixel" not in result.output


def test_json_lines_name_a_pixel_without_id_by_its_position() -> None:
    lines = orjson.dumps(pixel(id=1)) + b"\n\n" + orjson.dumps({"advertiser_id": 7, "name": "x"}) + b"\n"
    result = put("pixels", lines)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "pixel #2: id: is required"


def test_a_non_object_pixel_is_refused() -> None:
    result = put("pixels", [pixel(), 5])
    assert result.exit_code == 1
    assert "pixel #2: record: expected a JSON object, got a number" in result.stderr


def test_an_invalid_line_item_is_refused() -> None:
    item = {"id": 300, "advertiser_id": 7, "pixels": [{"id": n} for n in range(1, 22)]}
    result = put("line-items", item)
    assert result.exit_code == 1
    assert result.stderr.startswith("line item 300: pixels: ")
    assert "at most 20 pixels" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no pixels in the input"),
        (b"  \n", "no pixels in the input"),
        (b"[]", "no pixels in the input"),
        (b'{"id": 1,\n', "line 1: not valid JSON"),
        (b'{"id": 1}\n{"id": 2', "line 2: not valid JSON"),
    ],
)
def test_unreadable_input_is_a_usage_error(content: bytes, message: str) -> None:
    result = put("pixels", content)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_file_is_a_usage_error(tmp_path: Any) -> None:
    result = invoke("pixels", "put", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "No such file" in result.stderr


@pytest.mark.parametrize(
    ("content", "count"),
    [
        (b'{\n  "id": 42,\n  "advertiser_id": 7,\n  "name": "x"\n}\n', 1),
        (b'[{"id": 1, "advertiser_id": 7, "name": "x"}, {"id": 2, "advertiser_id": 7, "name": "y"}]', 2),
        (b'{"id": 1, "advertiser_id": 7, "name": "x"}\n\n{"id": 2, "advertiser_id": 7, "name": "y"}\n', 2),
    ],
)
def test_parse_file_accepts_an_object_an_array_or_json_lines(content: bytes, count: int) -> None:
    values = parse_file(content, "pixel")
    assert len(values) == count
    assert all(isinstance(v, dict) for v in values)


def test_parse_file_refuses_an_empty_array() -> None:
    with pytest.raises(InputError):
        parse_file(b"[]", "pixel")


# --- unreachable broker ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("pixels", "list"),
        ("line-items", "list"),
        ("pixels", "delete", "42"),
        ("report",),
        ("simulate", "--events", "10", "--no-progress"),
    ],
)
def test_an_unreachable_broker_is_one_line_and_exit_1(args: tuple[str, ...]) -> None:
    result = invoke(*args, "--broker", NO_BROKER)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: cannot reach Kafka: no broker answers at {NO_BROKER}"


def test_a_valid_pixel_with_an_unreachable_broker_is_not_reported_as_put() -> None:
    result = put("pixels", pixel())
    assert result.exit_code == 1
    assert "cannot reach Kafka" in result.stderr
    assert "put pixel" not in result.stdout


# --- argument errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("pixels", "delete", "abc"),
        ("pixels", "delete", "0"),
        ("pixels", "delete"),
        ("line-items", "delete", "-3"),
        ("pixels", "put"),
        ("pixels", "list", "--advertiser", "x"),
        ("simulate", "--events", "-1"),
        ("simulate", "--users", "0"),
        ("simulate", "--rate", "0"),
        ("simulate", "--bogus"),
        ("report", "--timeout", "0"),
        ("report", "--timeout", "soon"),
        ("pixels", "frobnicate"),
    ],
)
def test_argument_errors_exit_2(args: tuple[str, ...]) -> None:
    result = invoke(*args, "--broker", NO_BROKER) if args[-1] != "frobnicate" else invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Error:" in result.stderr
    assert "Kafka" not in result.stderr


def test_help_of_every_new_command() -> None:
    for args in (("pixels",), ("line-items",), ("simulate",), ("report",), ("pixels", "put")):
        result = invoke(*args, "--help")
        assert result.exit_code == 0
        assert "Usage:" in result.stdout


# --- display helpers ------------------------------------------------------------------------------


def test_windows_and_repeat_rules_display_as_configured() -> None:
    assert [window(m) for m in (None, 0, 1440, 20160, 60, 90, 1500)] == ["off", "off", "1d", "14d", "1h", "90m", "25h"]
    assert [repeat_rule(m) for m in (None, 0, 60)] == ["one per user", "all", "every 60 min"]


def test_durations_in_human_units() -> None:
    assert [duration(ms) for ms in (0, 850, 12_300, 270_000, 7_560_000, 276_480_000)] == [
        "0ms",
        "850ms",
        "12.3s",
        "4.5m",
        "2.1h",
        "3.2d",
    ]


# --- summarize (report) ---------------------------------------------------------------------------


def attributed(cid: str, pixel_id: int = 1, **fields: Any) -> dict[str, Any]:
    record = {
        "conversion_id": cid,
        "pixel_id": pixel_id,
        "advertiser_id": 10,
        "user_id": "u1",
        "conversion_timestamp": 1000,
        "attribution": "post_click",
        "touch_event_id": "t",
        "touch_timestamp": 0,
        "auction_id": "a",
        "line_item_id": 100,
        "creative_id": 7,
        "campaign_id": None,
        "latency_ms": 1000,
        "value": None,
        "booked_revenue": None,
        "order_id": None,
        "other": None,
        "event_category": None,
    }
    record.update(fields)
    return record


def unattributed(cid: str, reason: str, pixel_id: int = 1) -> dict[str, Any]:
    return {"conversion_id": cid, "pixel_id": pixel_id, "user_id": "u1", "conversion_timestamp": 1, "reason": reason}


def fire(cid: str, index: int, pixel_id: int = 1) -> dict[str, Any]:
    return {
        "fire_id": f"{cid}:{index}",
        "conversion_id": cid,
        "pixel_id": pixel_id,
        "pixel_type": "img",
        "url": "https://a.example/",
        "index": index,
        "user_id": "u1",
        "conversion_timestamp": 1,
    }


def letter(offset: int, code: str) -> dict[str, Any]:
    return {"topic": "conversions", "partition": 0, "offset": offset, "error": {"code": code, "message": "m"}}


def test_summarize_counts_per_pixel_and_totals() -> None:
    records = {
        "attributed-conversions": [
            attributed("c1", latency_ms=100, value=10.5, booked_revenue=2.0),
            attributed("c2", attribution="post_view", latency_ms=300, value=None, booked_revenue=0.25),
            attributed("c3", pixel_id=2, attribution="post_view", latency_ms=200, value=4),
        ],
        "unattributed-conversions": [
            unattributed("c4", "no_eligible_touch"),
            unattributed("c5", "repeat_limited"),
            unattributed("c6", "unknown_pixel", pixel_id=99),
            unattributed("c7", "duplicate_order_id"),
        ],
        "piggyback-fires": [fire("c1", 0), fire("c1", 1), fire("c3", 0, pixel_id=2)],
        "dead-letters": [letter(1, "invalid_json"), letter(2, "schema_violation"), letter(3, "invalid_json")],
    }
    s = summarize(records)
    p1 = s["pixels"]["1"]
    assert p1["attributed"] == {"post_click": 1, "post_view": 1, "total": 2}
    assert p1["unattributed"] == {
        "unknown_pixel": 0,
        "inactive_pixel": 0,
        "pixel_paused": 0,
        "duplicate_order_id": 1,
        "no_eligible_touch": 1,
        "repeat_limited": 1,
        "total": 3,
    }
    assert p1["conversions"] == 5
    assert p1["value"] == 10.5
    assert p1["booked_revenue"] == 2.25
    assert p1["piggyback_fires"] == 2
    assert p1["latency_ms"] == {"p50": 100, "p90": 300, "p99": 300}
    assert s["pixels"]["99"]["unattributed"]["unknown_pixel"] == 1
    assert s["pixels"]["99"]["latency_ms"] is None
    totals = s["totals"]
    assert totals["conversions"] == 7
    assert totals["attributed"]["total"] == 3
    assert totals["unattributed"]["total"] == 4
    assert totals["value"] == 14.5
    assert totals["piggyback_fires"] == 3
    assert totals["latency_ms"] == {"p50": 200, "p90": 300, "p99": 300}
    assert s["dead_letters"] == {"total": 3, "by_code": {"invalid_json": 2, "schema_violation": 1}}
    assert s["conflicts"] == 0
    assert s["unreadable"] == 0
    assert list(s["pixels"]) == ["1", "2", "99"]


def test_summarize_counts_repeated_records_once() -> None:
    a, u, f, d = (
        attributed("c1", value=5.0),
        unattributed("c2", "pixel_paused"),
        fire("c2", 0),
        letter(7, "invalid_json"),
    )
    once = summarize({"attributed-conversions": [a], "unattributed-conversions": [u], "piggyback-fires": [f]})
    twice = summarize(
        {
            "attributed-conversions": [a, orjson.dumps(a)],
            "unattributed-conversions": [u, u],
            "piggyback-fires": [f, f, f],
            "dead-letters": [d, d],
        }
    )
    assert twice["totals"] == once["totals"]
    assert twice["dead_letters"]["total"] == 1
    assert twice["records"]["attributed-conversions"] == {"read": 2, "duplicates": 1}
    assert twice["records"]["piggyback-fires"] == {"read": 3, "duplicates": 2}
    assert twice["conflicts"] == 0


def test_summarize_flags_a_conversion_with_two_outcomes() -> None:
    s = summarize(
        {
            "attributed-conversions": [attributed("c1")],
            "unattributed-conversions": [unattributed("c1", "no_eligible_touch")],
        }
    )
    assert s["conflicts"] == 1
    assert s["totals"]["conversions"] == 1  # counted once, first outcome wins
    assert "CONFLICTS: 1" in render(s)


def test_summarize_accepts_bytes_and_counts_unreadable_records() -> None:
    s = summarize({"attributed-conversions": [orjson.dumps(attributed("c1")), b"{oops", b"[1]"]})
    assert s["totals"]["attributed"]["total"] == 1
    assert s["unreadable"] == 2


def test_summarize_of_nothing_and_its_rendering() -> None:
    s = summarize({})
    assert s["pixels"] == {}
    assert s["totals"]["conversions"] == 0
    assert s["totals"]["latency_ms"] is None
    assert set(s["totals"]["unattributed"]) == {*REASONS, "total"}
    text = render(s)
    assert text.splitlines()[1].split()[:2] == ["TOTAL", "0"]
    assert "dead letters: 0" in text
    orjson.dumps(s)  # JSON-serializable for --json


def test_render_shows_latencies_in_human_units() -> None:
    s = summarize({"attributed-conversions": [attributed("c1", latency_ms=90 * 60_000, value=1234.5)]})
    row = render(s).splitlines()[1].split()
    assert row[0] == "1"
    assert "1,234.50" in row
    assert row[-3:] == ["1.5h", "1.5h", "1.5h"]


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert percentile([7], 99) == 7


# --- simulate helpers -----------------------------------------------------------------------------


def test_token_bucket_paces_to_the_rate() -> None:
    async def take(n: int, bucket: TokenBucket) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await bucket.take()
        return time.perf_counter() - started

    elapsed = asyncio.run(take(101, TokenBucket(1000.0, burst=1)))
    assert 0.09 <= elapsed < 1.0


def test_simulate_summary_line() -> None:
    stats = Stats()
    stats.events.update({"impressions": 900, "clicks": 80, "conversions": 20})
    stats.config.update({"pixels": 3, "line-items": 2})
    stats.seconds = 2.0
    assert stats.summary() == (
        "published 1,000 events in 2.00s (500 events/s): 900 impressions, 80 clicks, 20 conversions; "
        "config: 3 pixels, 2 line-items"
    )


def test_the_report_has_a_column_of_order_id_duplicates() -> None:
    s = summarize({"unattributed-conversions": [unattributed("c1", "duplicate_order_id")]})
    header, row = render(s).splitlines()[:2]

    assert header.split()[header.split().index("DUP-ORDER")] == "DUP-ORDER"
    assert row.split()[header.split().index("DUP-ORDER")] == "1"


def test_the_pixel_list_shows_whether_a_pixel_dedupes_order_ids() -> None:
    from attribution.cli.config_cmd import PIXEL_HEADERS, pixel_rows
    from attribution.domain import Config, Pixel

    pixels = [Pixel(1, 10, "a", dedupe_order_id=True), Pixel(2, 10, "b")]
    rows = pixel_rows(Config.of(pixels), pixels)
    column = PIXEL_HEADERS.index("ORDER-DEDUP")

    assert [r[column] for r in rows] == ["yes", "no"]
