"""Hourly conversion reports: which row an outcome counts in, and how rows add up. Pure.

A row counts the outcomes of one pixel, one line item (or none: the row of the pixel's
unattributed conversions, which have no line item) and one hour of the conversion's timestamp
(UTC; hours start at multiples of `HOUR_MS` since the epoch).

Amounts are kept as integer micro-units (a value is rounded to 6 decimals once, when it enters a
row) so that sums are exact: the same outcomes give the same row in any order and any grouping,
which is what lets the stream (one record at a time, in several table records) and `replay` (all
at once) agree to the last digit. A missing `value` or `booked_revenue` adds nothing: a sum is the
sum of the values present, 0 when none is.

`fold` counts each conversion once (by `conversion_id`, the first outcome seen wins: the contract
never gives one conversion two different outcomes), so folding outcomes delivered at least once,
in any order, gives the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HOUR_MS = 3_600_000
MICROS = 1_000_000
#: The attributions an attributed outcome can carry (the row's two counters).
ATTRIBUTIONS = ("post_click", "post_view")


def hour_of(timestamp_ms: int) -> int:
    """Start (ms since the epoch, UTC) of the hour holding `timestamp_ms`."""
    return timestamp_ms - timestamp_ms % HOUR_MS


def micros(amount: float | None) -> int:
    """An amount (>= 0) in integer micro-units, rounded half to even; None is 0."""
    if amount is None:
        return 0
    try:
        return round(amount * MICROS)
    except OverflowError:  # beyond ~1.8e302: micro-units no longer matter
        return int(amount) * MICROS


def amount(micro_units: int) -> float:
    """Micro-units back to an amount (the nearest float)."""
    return micro_units / MICROS


def row_key(pixel_id: int, line_item_id: int | None, hour: int) -> str:
    """`<pixel_id>:<line_item_id or none>:<hour start ms>`, the row's key on the reports topic."""
    return f"{pixel_id}:{'none' if line_item_id is None else line_item_id}:{hour}"


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one outcome adds to its row: an attributed one (`attribution` set) or an
    unattributed one (`reason` set, no line item)."""

    conversion_id: str
    pixel_id: int
    line_item_id: int | None
    advertiser_id: int | None
    hour: int
    attribution: str | None = None
    reason: str | None = None
    value_micros: int = 0
    booked_micros: int = 0

    @property
    def key(self) -> str:
        return row_key(self.pixel_id, self.line_item_id, self.hour)


@dataclass(frozen=True, slots=True)
class Row:
    """One report row. `unattributed` holds (reason, count) pairs sorted by reason, counts > 0."""

    pixel_id: int
    line_item_id: int | None
    advertiser_id: int | None
    hour: int
    post_click: int = 0
    post_view: int = 0
    value_micros: int = 0
    booked_micros: int = 0
    unattributed: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> str:
        return row_key(self.pixel_id, self.line_item_id, self.hour)

    @property
    def conversions(self) -> int:
        return self.post_click + self.post_view + sum(n for _, n in self.unattributed)


def empty_row(c: Contribution) -> Row:
    return Row(c.pixel_id, c.line_item_id, c.advertiser_id, c.hour)


def add(row: Row | None, c: Contribution) -> Row:
    """`row` (None: an empty one) with `c` counted once more. No deduplication here."""
    base = empty_row(c) if row is None else row
    delta = Row(
        c.pixel_id,
        c.line_item_id,
        c.advertiser_id,
        c.hour,
        post_click=int(c.attribution == "post_click"),
        post_view=int(c.attribution == "post_view"),
        value_micros=c.value_micros if c.attribution is not None else 0,
        booked_micros=c.booked_micros if c.attribution is not None else 0,
        unattributed=((c.reason, 1),) if c.attribution is None and c.reason is not None else (),
    )
    return merge(base, delta)


def merge(a: Row, b: Row) -> Row:
    """The sum of two parts of one row (same key). Commutative and associative. The advertiser
    is the first known one (a pixel's advertiser does not change)."""
    reasons = dict(a.unattributed)
    for reason, n in b.unattributed:
        reasons[reason] = reasons.get(reason, 0) + n
    return Row(
        a.pixel_id,
        a.line_item_id,
        a.advertiser_id if a.advertiser_id is not None else b.advertiser_id,
        a.hour,
        a.post_click + b.post_click,
        a.post_view + b.post_view,
        a.value_micros + b.value_micros,
        a.booked_micros + b.booked_micros,
        tuple(sorted((r, n) for r, n in reasons.items() if n)),
    )


def fold(contributions: Iterable[Contribution], rows: Mapping[str, Row] | None = None) -> dict[str, Row]:
    """Rows (by key) counting every conversion once, whatever the order and repetitions of
    `contributions`; added to `rows` when given (whose conversions must not be in
    `contributions`)."""
    out = dict(rows or {})
    seen: set[str] = set()
    for c in contributions:
        if c.conversion_id in seen:
            continue
        seen.add(c.conversion_id)
        out[c.key] = add(out.get(c.key), c)
    return out


def as_record(row: Row) -> dict[str, object]:
    """The row as the reports topic's record (schema `conversion_report`)."""
    return {
        "pixel_id": row.pixel_id,
        "line_item_id": row.line_item_id,
        "advertiser_id": row.advertiser_id,
        "hour": row.hour,
        "post_click": row.post_click,
        "post_view": row.post_view,
        "value": amount(row.value_micros),
        "booked_revenue": amount(row.booked_micros),
        "unattributed": dict(row.unattributed),
    }
