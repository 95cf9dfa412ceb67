"""The hourly report agents of `create_app`, run in memory: the feed forwards an outcome to its
row's partition of `report-updates`; the rows agent counts it once in the `reports` table and
publishes the row, also when the outcome comes again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import faust
import orjson
import pytest

from agents.conftest import SETTINGS, Driver, Recorder, _agent
from attribution.contract.report_codec import validate_row
from attribution.streaming.reports import report_partition
from helpers import PIXEL, T0, USER

HOUR_START = T0 - T0 % 3_600_000
ROW_KEY = f"{PIXEL}:none:{HOUR_START}"


def unattributed(cid: str) -> dict[str, Any]:
    return {
        "conversion_id": cid,
        "pixel_id": PIXEL,
        "user_id": USER,
        "conversion_timestamp": T0,
        "reason": "no_eligible_touch",
    }


@pytest.fixture
async def feed(app: faust.App, recorder: Recorder) -> AsyncIterator[Driver]:
    async with _agent(app, "report_feed").test_context() as ctx:
        yield Driver(app, ctx, recorder)


@pytest.fixture
async def rows(app: faust.App, recorder: Recorder) -> AsyncIterator[Driver]:
    recorder.record_writes(app.attribution["report_writer"])  # type: ignore[attr-defined]
    async with _agent(app, "report_rows").test_context() as ctx:
        yield Driver(app, ctx, recorder)


async def test_the_feed_forwards_an_outcome_unchanged_to_its_rows_partition(feed: Driver, recorder: Recorder) -> None:
    await feed.put("unattributed-conversions", unattributed("v1"))

    [sent] = recorder.to("report-updates")
    assert sent.key == ROW_KEY.encode()
    assert sent.partition == report_partition(ROW_KEY, SETTINGS.partitions)
    assert sent.record == unattributed("v1")


async def test_the_rows_agent_counts_an_outcome_once_and_publishes_the_row_each_time(
    rows: Driver, recorder: Recorder, app: faust.App
) -> None:
    partition = report_partition(ROW_KEY, SETTINGS.partitions)
    for cid in ("v1", "v2", "v1"):
        await rows.put("report-updates", unattributed(cid), key=ROW_KEY.encode(), partition=partition)

    published = recorder.to("conversion-reports")
    assert [s.key for s in published] == [ROW_KEY.encode()] * 3
    counts = [s.record["unattributed"] for s in published]
    assert counts == [{"no_eligible_touch": 1}, {"no_eligible_touch": 2}, {"no_eligible_touch": 2}]
    last = published[-1].record
    validate_row(last)
    assert (last["pixel_id"], last["line_item_id"], last["hour"]) == (PIXEL, None, HOUR_START)
    assert last["advertiser_id"] is not None  # the pixel's, from the config cache
    assert app.attribution["reports"].counts()["duplicate"] == 1  # type: ignore[attr-defined]
    # The shard record is written through the table's writer: once per counted outcome, not for the repeat.
    assert [s.topic for s in recorder.changelog] == [f"{app.conf.id}-reports-changelog"] * 2
    assert orjson.loads(published[1].value) == last
