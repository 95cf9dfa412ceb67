"""Faust glue of the hourly reports (`streaming.reports` holds the logic and the reasoning):
the `reports` table, the feed agent (outcomes -> `report-updates`, by row key) and the rows agent
(`report-updates` -> table -> `conversion-reports`)."""

from __future__ import annotations

import logging
from typing import Any

import faust
import mode

from attribution.settings import Settings
from attribution.streaming.config_cache import ConfigCache
from attribution.streaming.reports import OUTCOME_TOPICS, REPORT_TOPIC, UPDATES_TOPIC, Reports
from attribution.streaming.topics import bytes_table

log = logging.getLogger(__name__)


def install(app: faust.App, settings: Settings, cache: ConfigCache) -> tuple[Reports, Any]:
    """Add the reports table and agents to `app`; returns the logic (for its counters) and the table."""

    def advertiser_of(pixel_id: int) -> int | None:
        pixel = cache.config.pixels.get(pixel_id)
        return None if pixel is None else pixel.advertiser_id

    reports = Reports(settings.partitions, settings.dedup_retention_ms, advertiser_of)

    def topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, **kw)

    outcomes = app.topic(*(settings.topic(t) for t in OUTCOME_TOPICS), key_type=bytes, value_type=bytes)
    updates = topic(UPDATES_TOPIC, partitions=settings.partitions)
    # Compacted also when Faust declares it (a worker started without `attribution topics create`).
    rows = topic(REPORT_TOPIC, compacting=True, partitions=settings.partitions)
    table = bytes_table(app, "reports", settings.partitions)

    @table.on_recover
    async def latest_hours() -> None:
        reports.rebuild(table.keys())

    # Both agents: concurrency 1 (ordered per partition) and a crash stops the worker rather than
    # restarting past a record. The feed's sends need no wait: Faust flushes the producer before
    # it commits the offsets, and a failed send stops the worker (`durability`).
    @app.agent(outcomes, concurrency=1, supervisor_strategy=mode.CrashingSupervisor)
    async def report_feed(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            routed = reports.route(event.message.value)
            if routed is not None:
                key, partition = routed
                await updates.send(key=key, value=event.message.value, partition=partition, force=True)

    @app.agent(updates, concurrency=1, supervisor_strategy=mode.CrashingSupervisor)
    async def report_rows(stream: faust.StreamT[bytes]) -> None:
        await cache.ready.wait()  # unattributed rows name the pixel's advertiser
        async for event in stream.events():
            m = event.message
            update = reports.apply(m.value, m.partition, table.get)
            for key in update.deletes:
                if key in table:  # the index may name a write lost in a crash
                    del table[key]
            for key, value in update.writes.items():
                table[key] = value
            if update.row is not None:
                await rows.send(key=update.row[0], value=update.row[1], force=True)

    return reports, table
