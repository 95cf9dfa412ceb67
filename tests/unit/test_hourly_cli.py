"""`attribution report --hourly` and `replay --reports`: the rows of a compacted topic (last value
per key, tombstones delete), their order and their table; replay's rows are the fold's."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from attribution.app.hourly import latest_rows
from attribution.cli import main
from attribution.cli.hourly_cmd import render_rows
from attribution.contract.report_codec import validate_row

H = 1_767_225_600_000  # 2026-01-01T00:00Z


def row(pixel: int, line_item: int | None, hour: int, **kw: object) -> dict[str, object]:
    return {
        "pixel_id": pixel,
        "line_item_id": line_item,
        "advertiser_id": 3,
        "hour": hour,
        "post_click": 0,
        "post_view": 0,
        "value": 0.0,
        "booked_revenue": 0.0,
        "unattributed": {},
        **kw,
    }


def record(r: dict[str, object]) -> tuple[bytes, bytes]:
    key = f"{r['pixel_id']}:{r['line_item_id'] or 'none'}:{r['hour']}"
    return key.encode(), orjson.dumps(r)


def test_the_last_value_per_key_is_the_row_and_a_tombstone_removes_it() -> None:
    old, new = row(7, 40, H, post_click=1), row(7, 40, H, post_click=2)
    gone = row(8, 41, H)
    records = [record(old), record(gone), record(new), (record(gone)[0], None)]
    assert latest_rows(records) == [new]


def test_rows_are_ordered_by_hour_pixel_and_line_item_with_the_unattributed_row_last() -> None:
    rows = [row(7, None, H), row(7, 41, H), row(7, 40, H), row(6, 99, H + 3_600_000), row(9, 1, H)]
    ordered = latest_rows(record(r) for r in rows)
    assert [(r["hour"], r["pixel_id"], r["line_item_id"]) for r in ordered] == [
        (H, 7, 40),
        (H, 7, 41),
        (H, 7, None),
        (H, 9, 1),
        (H + 3_600_000, 6, 99),
    ]


def test_the_table_shows_the_utc_hour_amounts_and_reasons() -> None:
    text = render_rows([row(7, None, H, advertiser_id=None, unattributed={"repeat_limited": 2, "pixel_paused": 1})])
    header, line = text.splitlines()
    assert header.split()[:3] == ["HOUR", "(UTC)", "PIXEL"]
    assert line.split() == [
        "2026-01-01",
        "00:00",
        "7",
        "-",
        "-",
        "0",
        "0",
        "0.00",
        "0.00",
        "pixel_paused",
        "1,",
        "repeat_limited",
        "2",
    ]
    assert render_rows([]) == "no report rows yet"


def test_replay_writes_the_rows_of_its_outcomes(tmp_path: Path) -> None:
    lines = [
        {"topic": "pixels", "value": {"id": 1, "advertiser_id": 10, "name": "signup"}},
        {"topic": "line-items", "value": {"id": 5, "advertiser_id": 10, "pixels": [{"id": 1, "post_click_revenue": 2.5}]}},
        {"topic": "clicks", "value": {"event_id": "c1", "user_id": "u1", "timestamp": H + 1000, "advertiser_id": 10,
                                      "line_item_id": 5, "creative_id": 7, "auction_id": "a1"}},
        {"topic": "conversions", "value": {"event_id": "v1", "pixel_id": 1, "user_id": "u1", "timestamp": H + 5000, "value": 0.1}},
        {"topic": "conversions", "value": {"event_id": "v2", "pixel_id": 1, "user_id": "u1", "timestamp": H + 6000}},
        {"topic": "conversions", "value": {"event_id": "v3", "pixel_id": 2, "user_id": "u1", "timestamp": H + 3_600_000}},
    ]  # fmt: skip
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    rows_file = tmp_path / "rows.jsonl"
    args = ["replay", str(source), "--out", str(tmp_path / "out"), "--reports", str(rows_file), "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in rows_file.read_bytes().splitlines()]
    for r in rows:
        validate_row(r)
    assert rows == [
        row(1, 5, H, advertiser_id=10, post_click=1, value=0.1, booked_revenue=2.5),
        row(1, None, H, advertiser_id=10, unattributed={"repeat_limited": 1}),
        row(2, None, H + 3_600_000, advertiser_id=None, unattributed={"unknown_pixel": 1}),
    ]
