"""Hourly report rows: the row an outcome counts in, the record published, the table state of a
row and the stream's handling of repeats, expired hours and records that are not outcomes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from attribution.contract.report_codec import (
    contains,
    contribution,
    decode_shard,
    digest,
    encode_row,
    encode_shard,
    insert,
    validate_row,
)
from attribution.domain.hourly import HOUR_MS, Row, as_record, fold, hour_of, micros
from attribution.errors import SchemaViolation
from attribution.streaming import reports as reports_module
from attribution.streaming.reports import SHARDS, Reports, report_partition

T0 = 1_767_225_600_000  # an hour start
DAY = 24 * HOUR_MS


def attributed(cid: str, ts: int = T0 + 5, **kw: Any) -> dict[str, Any]:
    return {
        "conversion_id": cid,
        "pixel_id": 7,
        "advertiser_id": 3,
        "user_id": "u1",
        "conversion_timestamp": ts,
        "attribution": "post_click",
        "line_item_id": 40,
        "value": None,
        "booked_revenue": None,
        **kw,
    }


def unattributed(cid: str, reason: str = "no_eligible_touch", ts: int = T0 + 5, pixel_id: int = 7) -> dict[str, Any]:
    return {"conversion_id": cid, "pixel_id": pixel_id, "user_id": "u1", "conversion_timestamp": ts, "reason": reason}


def advertiser_of(pixel_id: int) -> int | None:
    return 3 if pixel_id == 7 else None


def rows(*records: dict[str, Any]) -> dict[str, dict[str, object]]:
    return {k: as_record(r) for k, r in fold(contribution(r, advertiser_of) for r in records).items()}


def test_an_attributed_conversion_counts_in_its_pixel_line_item_and_utc_hour() -> None:
    got = rows(attributed("c1", ts=T0 + HOUR_MS - 1, value=2.5, booked_revenue=0.1))
    assert got == {
        f"7:40:{T0}": {
            "pixel_id": 7,
            "line_item_id": 40,
            "advertiser_id": 3,
            "hour": T0,
            "post_click": 1,
            "post_view": 0,
            "value": 2.5,
            "booked_revenue": 0.1,
            "unattributed": {},
        }
    }


def test_unattributed_conversions_count_by_reason_on_the_pixels_row_without_line_item() -> None:
    got = rows(unattributed("c1"), unattributed("c2", "repeat_limited"), unattributed("c3", "duplicate_order_id"))
    row = got[f"7:none:{T0}"]
    assert row["line_item_id"] is None
    assert row["advertiser_id"] == 3
    assert row["unattributed"] == {"duplicate_order_id": 1, "no_eligible_touch": 1, "repeat_limited": 1}
    assert (row["post_click"], row["post_view"], row["value"]) == (0, 0, 0.0)


def test_an_unknown_pixels_row_has_no_advertiser() -> None:
    assert rows(unattributed("c1", "unknown_pixel", pixel_id=999))[f"999:none:{T0}"]["advertiser_id"] is None


def test_missing_values_add_nothing_and_sums_are_exact_to_the_micro_unit() -> None:
    got = rows(*(attributed(f"c{i}", value=0.1) for i in range(10)), attributed("c10", value=None))
    row = got[f"7:40:{T0}"]
    assert row["value"] == 1.0  # ten float additions of 0.1 would give 0.9999999999999999
    assert row["booked_revenue"] == 0.0
    assert row["post_click"] == 11


def test_a_conversion_delivered_twice_counts_once() -> None:
    assert rows(attributed("c1", value=3), attributed("c1", value=3)) == rows(attributed("c1", value=3))


def test_the_next_hour_starts_a_new_row() -> None:
    assert set(rows(attributed("c1", ts=T0 + HOUR_MS - 1), attributed("c2", ts=T0 + HOUR_MS))) == {
        f"7:40:{T0}",
        f"7:40:{T0 + HOUR_MS}",
    }
    assert hour_of(T0 + HOUR_MS) == T0 + HOUR_MS


def test_micros_round_once_and_treat_none_as_zero() -> None:
    assert (micros(None), micros(1.0000004), micros(1e308)) == (0, 1_000_000, int(1e308) * 1_000_000)


def test_published_rows_follow_the_schema_and_the_schema_refuses_extra_fields() -> None:
    row = Row(7, None, None, T0, unattributed=(("unknown_pixel", 2),))
    validate_row(orjson.loads(encode_row(row)))
    with pytest.raises(SchemaViolation):
        validate_row({**as_record(row), "conversions": 2})
    with pytest.raises(SchemaViolation):
        validate_row({**as_record(row), "hour": T0 + 1})


@pytest.mark.parametrize(
    "record",
    [[], {}, {"conversion_id": "c"}, attributed("c", attribution="post_lunch"), unattributed("c", reason="")],
)
def test_a_record_that_is_not_an_outcome_is_refused(record: Any) -> None:
    with pytest.raises(ValueError, match=r"object|conversion_id|pixel_id|attribution|reason"):
        contribution(record, advertiser_of)


def test_digests_stay_sorted_and_are_found_by_binary_search() -> None:
    ids = b""
    digests = [digest(f"c{i}") for i in range(200)]
    for d in digests:
        ids = insert(ids, d)
    assert ids == b"".join(sorted(digests))
    assert insert(ids, digests[5]) == ids
    assert all(contains(ids, d) for d in digests)
    assert not contains(ids, digest("other"))


def test_a_shard_record_keeps_its_row_and_digests() -> None:
    row = Row(7, 40, 3, T0, 2, 1, 5_000_000, 7, (("pixel_paused", 1),))
    ids = insert(insert(b"", digest("a")), digest("b\n"))
    assert decode_shard(encode_shard(row, ids)) == (row, ids)


def apply_all(reports: Reports, table: dict[bytes, bytes], records: list[dict[str, Any]]) -> list[Any]:
    updates = []
    for record in records:
        raw = orjson.dumps(record)
        routed = reports.route(raw)
        assert routed is not None
        update = reports.apply(raw, routed[1], table.get)
        for k in update.deletes:
            table.pop(k, None)
        table.update(update.writes)
        updates.append(update)
    return updates


def test_the_stream_publishes_the_row_on_every_delivery_and_counts_a_repeat_once() -> None:
    reports = Reports(4, 7 * DAY, advertiser_of)
    table: dict[bytes, bytes] = {}
    first, second, repeat = apply_all(reports, table, [attributed("c1"), attributed("c2"), attributed("c1")])
    assert first.counted
    assert second.counted
    assert not repeat.counted
    assert repeat.writes == {}
    assert repeat.row == second.row
    assert orjson.loads(second.row[1])["post_click"] == 2
    assert reports.duplicates == 1
    assert all(k.startswith(f"7:40:{T0}#".encode()) for k in table)


def test_a_rows_conversions_are_spread_over_shards_and_summed() -> None:
    reports = Reports(1, 7 * DAY, advertiser_of)
    table: dict[bytes, bytes] = {}
    updates = apply_all(reports, table, [attributed(f"c{i}") for i in range(100)])
    assert 1 < len(table) <= SHARDS
    assert orjson.loads(updates[-1].row[1])["post_click"] == 100


def test_hours_older_than_the_retention_leave_the_table_and_late_outcomes_for_them_are_not_counted() -> None:
    reports = Reports(1, 2 * HOUR_MS, advertiser_of)
    table: dict[bytes, bytes] = {}
    apply_all(reports, table, [attributed("old", ts=T0), attributed("mid", ts=T0 + 2 * HOUR_MS)])
    assert any(k.startswith(f"7:40:{T0}#".encode()) for k in table)
    (newer,) = apply_all(reports, table, [attributed("new", ts=T0 + 3 * HOUR_MS)])
    assert newer.deletes
    assert all(k.startswith(f"7:40:{T0}#".encode()) for k in newer.deletes)
    assert not any(k.startswith(f"7:40:{T0}#".encode()) for k in table)
    (late,) = apply_all(reports, table, [attributed("late", ts=T0 + 1)])
    assert late.row is None
    assert late.writes == {}
    assert reports.late == 1


def test_the_latest_hours_are_rebuilt_from_the_table_keys_after_recovery() -> None:
    table: dict[bytes, bytes] = {}
    apply_all(Reports(2, DAY, advertiser_of), table, [attributed("a", ts=T0), attributed("b", ts=T0 + 5 * HOUR_MS)])
    fresh = Reports(2, DAY, advertiser_of)
    fresh.rebuild(table.keys())
    expected: dict[int, int] = {}
    for hour in (T0, T0 + 5 * HOUR_MS):
        p = report_partition(f"7:40:{hour}", 2)
        expected[p] = max(expected.get(p, hour), hour)
    assert fresh.latest_hour == expected
    # and the keys by hour: a much later outcome on a partition expires that partition's old rows
    later = T0 + 30 * DAY
    rebuilt = dict(table)
    (update,) = apply_all(fresh, rebuilt, [attributed("later", ts=later)])
    mine = report_partition(f"7:40:{later}", 2)
    assert update.deletes, "nothing to expire: nothing tested"
    assert sorted(update.deletes) == sorted(k for k in table if report_partition(k.decode().split("#")[0], 2) == mine)


def test_records_that_are_not_outcomes_are_skipped_and_counted() -> None:
    reports = Reports(2, DAY, advertiser_of)
    assert reports.route(b"not json") is None
    assert reports.apply(b"{}", 0, {}.get).row is None
    assert reports.route(None) is None
    assert reports.unreadable == 2


def test_a_full_shard_still_counts_but_says_it_cannot_remember(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports_module, "MAX_SHARD_IDS", 0)
    reports = Reports(1, DAY, advertiser_of)
    (update,) = apply_all(reports, {}, [attributed("c1")])
    assert update.counted
    assert reports.unremembered == 1
    assert decode_shard(next(iter(update.writes.values())))[1] == b""
