"""Hourly report rows to bytes and back: outcome records in, report records and table state out.

* `contribution(record, advertiser_of)`: what a parsed attributed or unattributed outcome record
  adds to its row (`domain.hourly`). Only the fields a row needs are read, so outcome fields added
  later (or new unattributed reasons) change nothing here. A record that is not an outcome raises
  `ValueError`.
* `encode_row(row)`: the value of a `conversion-reports` record (schema `conversion_report`).
* Table state of one *shard* of a row (the stream splits a row's conversions over `SHARDS` table
  records by a hash of their id, see `streaming.reports`): the shard's partial row and the sorted
  8-byte digests of the conversion ids it counted, in **one** record, so that counting a
  conversion and remembering it are a single changelog write:
  `<JSON header>\\n<digests>`, the header being `[version, pixel_id, line_item_id, advertiser_id,
  hour, post_click, post_view, value_micros, booked_micros, {reason: count}]`.

Digests are the first 8 bytes of BLAKE2b of the conversion id: among the million conversions a
row could hold at most, the chance of any two colliding (one conversion then not counted) is
about 3e-8.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from attribution.contract.schemas import validator
from attribution.domain.hourly import ATTRIBUTIONS, Contribution, Row, as_record, fold, hour_of, micros

#: The compacted output topic of report rows (default name).
REPORT_TOPIC = "conversion-reports"
VERSION = 1
DIGEST_BYTES = 8
_SEP = b"\n"  # compact JSON never holds a raw newline

#: Validates a report record against its schema (the contract); raises SchemaViolation.
validate_row = validator("conversion_report")


def _int(record: Mapping[str, Any], name: str, nullable: bool = False) -> Any:
    value = record.get(name)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    return value


def _amount(record: Mapping[str, Any], name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
    return float(value)


def contribution(record: Any, advertiser_of: Callable[[int], int | None]) -> Contribution:
    """What an attributed (it has `attribution`) or unattributed (it has `reason`) outcome adds.
    `advertiser_of(pixel_id)` names the advertiser of an unattributed conversion's pixel (None
    when unknown); an attributed one carries its own."""
    if not isinstance(record, Mapping):
        raise ValueError("not a JSON object")
    cid = record.get("conversion_id")
    if not isinstance(cid, str) or not cid:
        raise ValueError("conversion_id: missing")
    pixel_id = _int(record, "pixel_id")
    hour = hour_of(_int(record, "conversion_timestamp"))
    attribution = record.get("attribution")
    if attribution is not None:
        if attribution not in ATTRIBUTIONS:
            raise ValueError(f"attribution: unknown {attribution!r}")
        return Contribution(
            cid,
            pixel_id,
            _int(record, "line_item_id"),
            _int(record, "advertiser_id"),
            hour,
            attribution=attribution,
            value_micros=micros(_amount(record, "value")),
            booked_micros=micros(_amount(record, "booked_revenue")),
        )
    reason = record.get("reason")
    if not isinstance(reason, str) or not reason:
        raise ValueError("neither attribution nor reason: not an outcome record")
    return Contribution(cid, pixel_id, None, advertiser_of(pixel_id), hour, reason=reason)


def parse_contribution(raw: bytes, advertiser_of: Callable[[int], int | None]) -> Contribution:
    """`contribution` of an outcome record's bytes; `ValueError` for anything else."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return contribution(record, advertiser_of)


def rows_of(outcomes: Iterable[bytes], advertiser_of: Callable[[int], int | None]) -> dict[str, Row]:
    """The report rows (by key) of outcome records delivered at least once, in any order: the fold
    the stream computes incrementally. `ValueError` for a record that is not an outcome."""
    return fold(parse_contribution(raw, advertiser_of) for raw in outcomes)


def encode_row(row: Row) -> bytes:
    """The `conversion-reports` record of a row (field order stable)."""
    return orjson.dumps(as_record(row))


def digest(conversion_id: str) -> bytes:
    return hashlib.blake2b(conversion_id.encode(), digest_size=DIGEST_BYTES).digest()


def contains(ids: bytes, d: bytes) -> bool:
    """Whether the sorted digest list `ids` holds `d` (binary search, O(log n))."""
    at = _position(ids, d)
    return ids[at : at + DIGEST_BYTES] == d


def _position(ids: bytes, d: bytes) -> int:
    lo, hi = 0, len(ids) // DIGEST_BYTES
    while lo < hi:
        mid = (lo + hi) // 2
        if ids[mid * DIGEST_BYTES : (mid + 1) * DIGEST_BYTES] < d:
            lo = mid + 1
        else:
            hi = mid
    return lo * DIGEST_BYTES


def insert(ids: bytes, d: bytes) -> bytes:
    """`ids` with `d` in its sorted place (if absent)."""
    at = _position(ids, d)
    if ids[at : at + DIGEST_BYTES] == d:
        return ids
    return ids[:at] + d + ids[at:]


def encode_shard(row: Row, ids: bytes) -> bytes:
    header = [
        VERSION,
        row.pixel_id,
        row.line_item_id,
        row.advertiser_id,
        row.hour,
        row.post_click,
        row.post_view,
        row.value_micros,
        row.booked_micros,
        dict(row.unattributed),
    ]
    return orjson.dumps(header) + _SEP + ids


def decode_shard(raw: bytes) -> tuple[Row, bytes]:
    """(the shard's partial row, its sorted digests)."""
    cut = raw.index(_SEP)
    h = orjson.loads(raw[:cut])
    if h[0] != VERSION:
        raise ValueError(f"report state version {h[0]} unknown")
    row = Row(h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], tuple(sorted(h[9].items())))
    return row, raw[cut + 1 :]
