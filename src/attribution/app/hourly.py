"""Hourly report rows for every adapter: the rows of `conversion-reports` as read from the topic
(`latest_rows`), their display order, and the rows of a set of outcome records (`rows_of`, the
fold the worker's report agents compute one outcome at a time)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from attribution.contract.report_codec import rows_of
from attribution.domain.hourly import as_record


def row_order(row: Mapping[str, Any]) -> tuple[int, int, bool, int]:
    """Sort key: hour, pixel, line item, the row without line item (unattributed) last."""
    line_item = row["line_item_id"]
    return row["hour"], row["pixel_id"], line_item is None, line_item or 0


def latest_rows(records: Iterable[tuple[bytes | None, bytes | None]]) -> list[dict[str, Any]]:
    """The rows of (key, value) records in topic order: the last value per key; a null value
    (a tombstone) deletes the key. Sorted by `row_order`."""
    rows: dict[bytes | None, bytes | None] = {}
    for key, value in records:
        rows[key] = value
    return sorted((orjson.loads(v) for v in rows.values() if v is not None), key=row_order)


def outcome_rows(outcomes: Iterable[bytes], advertiser_of: Callable[[int], int | None]) -> list[dict[str, Any]]:
    """The report records of outcome records (delivered at least once, in any order), sorted by
    `row_order`; `ValueError` for a record that is not an outcome."""
    return sorted((as_record(r) for r in rows_of(outcomes, advertiser_of).values()), key=row_order)
