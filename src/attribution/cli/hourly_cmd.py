"""`attribution report --hourly`: the rows of `conversion-reports`, as a table or JSON.

The topic is compacted and keyed by row, so its last record per key is the row; it is read from
the beginning to its current end by the shared group-less reader (`kafka.client.read_to_end`: no
consumer group, nothing committed). Rows are printed by hour, then pixel, then line item (the
row of unattributed conversions, which has no line item, after the pixel's line items).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from attribution.app.hourly import latest_rows
from attribution.cli.config_cmd import call, table
from attribution.contract.report_codec import REPORT_TOPIC
from attribution.settings import Settings

HEADERS = (
    "HOUR (UTC)",
    "PIXEL",
    "LINE ITEM",
    "ADVERTISER",
    "POST-CLICK",
    "POST-VIEW",
    "VALUE",
    "REVENUE",
    "UNATTRIBUTED",
)


async def read_rows(settings: Settings, timeout: float) -> list[dict[str, Any]]:
    """The current rows of `conversion-reports`."""
    from attribution.kafka.client import read_to_end

    name = settings.topic(REPORT_TOPIC)
    records = await read_to_end(settings, [name], timeout=timeout)
    return latest_rows((r.key, r.value) for r in records[name])


def _hour(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:00")


def render_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per row; unattributed conversions as `reason count` pairs."""
    if not rows:
        return "no report rows yet"
    body = [
        [
            _hour(r["hour"]),
            str(r["pixel_id"]),
            "-" if r["line_item_id"] is None else str(r["line_item_id"]),
            "-" if r["advertiser_id"] is None else str(r["advertiser_id"]),
            str(r["post_click"]),
            str(r["post_view"]),
            f"{r['value']:,.2f}",
            f"{r['booked_revenue']:,.2f}",
            ", ".join(f"{reason} {n}" for reason, n in sorted(r["unattributed"].items())) or "-",
        ]
        for r in rows
    ]
    return table(HEADERS, body)


def hourly_report(settings: Settings, timeout: float, as_json: bool) -> None:
    """Print the rows (`--json`: one JSON array)."""
    rows = call(read_rows(settings, timeout))
    click.echo(orjson.dumps(rows) if as_json else render_rows(rows))
