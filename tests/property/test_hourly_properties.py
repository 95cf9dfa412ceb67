"""Hourly report rows count every conversion once, whatever the order and repetition of the
outcomes: the pure fold, and the stream's table logic (with crashes between a record and its
state write), give the same rows."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from attribution.contract.report_codec import contribution, encode_row, validate_row
from attribution.domain.hourly import HOUR_MS, Contribution, as_record, fold
from attribution.streaming.reports import Reports

T0 = 1_767_225_600_000
ADVERTISERS = {1: 10, 2: 10, 3: 20}


def advertiser_of(pixel_id: int) -> int | None:
    return ADVERTISERS.get(pixel_id)


@st.composite
def outcome(draw: st.DrawFn, n: int) -> dict[str, Any]:
    ts = T0 + draw(st.integers(0, 3 * HOUR_MS))
    pixel_id = draw(st.sampled_from([1, 2, 3, 99]))
    if draw(st.booleans()):
        return {
            "conversion_id": f"c{n}",
            "pixel_id": pixel_id,
            "advertiser_id": ADVERTISERS.get(pixel_id, 30),
            "user_id": "u",
            "conversion_timestamp": ts,
            "attribution": draw(st.sampled_from(["post_click", "post_view"])),
            "line_item_id": draw(st.sampled_from([100, 101])),
            "value": draw(st.none() | st.floats(0, 1e9) | st.integers(0, 10**6)),
            "booked_revenue": draw(st.none() | st.floats(0, 1e6)),
        }
    reason = draw(st.sampled_from(["unknown_pixel", "pixel_paused", "no_eligible_touch", "some_new_reason"]))
    return {
        "conversion_id": f"c{n}",
        "pixel_id": pixel_id,
        "user_id": "u",
        "conversion_timestamp": ts,
        "reason": reason,
    }


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the distinct outcomes, a delivery of them: every one at least once, in any order)."""
    distinct = [draw(outcome(n)) for n in range(draw(st.integers(0, 25)))]
    delivered = (
        distinct + [draw(st.sampled_from(distinct)) for _ in range(draw(st.integers(0, 15)))] if distinct else []
    )
    return distinct, draw(st.permutations(delivered))


def contributions(records: list[dict[str, Any]]) -> list[Contribution]:
    return [contribution(r, advertiser_of) for r in records]


@given(deliveries())
def test_folding_any_delivery_with_repeats_gives_the_rows_of_the_distinct_outcomes(
    case: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    distinct, delivered = case
    assert fold(contributions(delivered)) == fold(contributions(distinct))


@given(deliveries(), st.data())
def test_the_streams_table_logic_gives_the_folds_rows_even_when_crashes_drop_state_writes(
    case: tuple[list[dict[str, Any]], list[dict[str, Any]]], data: st.DataObject
) -> None:
    distinct, delivered = case
    reports = Reports(partitions=3, retention_ms=7 * 24 * HOUR_MS, advertiser_of=advertiser_of)
    table: dict[bytes, bytes] = {}
    published: dict[bytes, bytes] = {}
    for record in delivered:
        raw = orjson.dumps(record)
        _key, partition = reports.route(raw) or (b"", -1)
        update = reports.apply(raw, partition, table.get)
        if update.row is not None:
            published[update.row[0]] = update.row[1]
        if data.draw(st.booleans(), label="crash before the state write"):
            continue  # the state write is lost; the record is delivered again
        table.update(update.writes)
        for k in update.deletes:
            table.pop(k, None)
        again = reports.apply(raw, partition, table.get)
        assert again.writes == {}, "an outcome counted twice"
        assert again.row == update.row
    # Every distinct outcome was applied at least once with its write kept, unless the last
    # delivery of it crashed: apply the distinct ones once more, as a restart would redeliver them.
    for record in distinct:
        raw = orjson.dumps(record)
        _key, partition = reports.route(raw) or (b"", -1)
        update = reports.apply(raw, partition, table.get)
        table.update(update.writes)
        assert update.row is not None
        published[update.row[0]] = update.row[1]
    expected = {k.encode(): encode_row(row) for k, row in fold(contributions(distinct)).items()}
    assert published == expected
    for value in published.values():
        validate_row(orjson.loads(value))


@given(deliveries())
def test_every_row_has_one_hour_and_a_key_naming_it(case: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    for key, row in fold(contributions(case[0])).items():
        record = as_record(row)
        validate_row(record)
        assert record["hour"] % HOUR_MS == 0
        assert key == f"{row.pixel_id}:{row.line_item_id if row.line_item_id is not None else 'none'}:{row.hour}"


@given(deliveries(), st.data())
def test_a_batch_of_outcomes_leaves_the_table_and_rows_that_applying_them_one_by_one_leaves(
    case: tuple[list[dict[str, Any]], list[dict[str, Any]]], data: st.DataObject
) -> None:
    _distinct, delivered = case
    # A short retention, so that later hours expire earlier ones inside a batch too.
    one, batched = (Reports(partitions=1, retention_ms=HOUR_MS, advertiser_of=advertiser_of) for _ in range(2))
    single_table: dict[bytes, bytes] = {}
    single_rows: dict[bytes, bytes] = {}
    for record in delivered:
        update = one.apply(orjson.dumps(record), 0, single_table.get)
        for k in update.deletes:
            single_table.pop(k, None)
        single_table.update(update.writes)
        if update.row is not None:
            single_rows[update.row[0]] = update.row[1]
    batch_table: dict[bytes, bytes] = {}
    batch_rows: dict[bytes, bytes] = {}
    rest = [orjson.dumps(r) for r in delivered]
    while rest:
        size = data.draw(st.integers(1, len(rest)), label="batch size")
        batch, rest = rest[:size], rest[size:]
        update = batched.apply_batch(batch, 0, batch_table.get)
        assert not set(update.writes) & set(update.deletes)
        for k in update.deletes:
            batch_table.pop(k, None)
        batch_table.update(update.writes)
        batch_rows.update(update.rows)
    assert batch_table == single_table
    assert batch_rows == single_rows
    assert batched.counts() == one.counts()
