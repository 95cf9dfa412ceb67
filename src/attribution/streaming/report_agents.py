"""Faust glue of the hourly reports (`streaming.reports` holds the logic and the reasoning):
the `reports` table, the feed agent (outcomes -> `report-updates`, by row key) and the rows agent
(`report-updates` -> table -> `conversion-reports`).

Both agents take a fetched batch of a partition as one event (`batches`), as the events agent
does: the rows agent writes each table key once per batch and publishes each row once per batch
(`Reports.apply_batch`), through the store and the producer (`changelog.TableWriter`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

import faust
import mode

from attribution.settings import Settings
from attribution.streaming.batches import records_of
from attribution.streaming.changelog import TableWriter
from attribution.streaming.config_cache import ConfigCache
from attribution.streaming.reports import OUTCOME_TOPICS, REPORT_TOPIC, UPDATES_TOPIC, Reports
from attribution.streaming.topics import bytes_table

log = logging.getLogger(__name__)

#: Fetched batches each report stream may have queued (Faust's default, 4,096, counts records).
REPORT_QUEUE_BATCHES = 16
#: The report topics handed to their agents in batches (`batches.install`), by product name.
BATCHED_TOPICS = (*OUTCOME_TOPICS, UPDATES_TOPIC)


def install(
    app: faust.App,
    settings: Settings,
    cache: ConfigCache,
    writer_for: Callable[[Any], TableWriter],
    queues: MutableMapping[str, tuple[Any, frozenset[str]]],
) -> tuple[Reports, TableWriter]:
    """Add the reports table and agents to `app`; returns the logic (for its counters) and the
    table's writer.

    `writer_for(table)` makes the table's writer; each agent puts its stream's queue and topics
    in `queues` once it runs (the app's timer resumes partitions a full queue stopped)."""

    def advertiser_of(pixel_id: int) -> int | None:
        pixel = cache.config.pixels.get(pixel_id)
        return None if pixel is None else pixel.advertiser_id

    reports = Reports(settings.partitions, settings.dedup_retention_ms, advertiser_of)

    def topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, **kw)

    outcome_names = frozenset(settings.topic(t) for t in OUTCOME_TOPICS)
    outcomes = app.topic(*sorted(outcome_names), key_type=bytes, value_type=bytes)
    updates = topic(UPDATES_TOPIC, partitions=settings.partitions)
    # Queued events are batches: bound the queues in batches (`app.py` says why on the topic).
    outcomes.maxsize = REPORT_QUEUE_BATCHES
    updates.maxsize = REPORT_QUEUE_BATCHES
    # Compacted also when Faust declares it (a worker started without `attribution topics create`).
    rows = topic(REPORT_TOPIC, compacting=True, partitions=settings.partitions)
    table = bytes_table(app, "reports", settings.partitions)
    writer = writer_for(table)

    @table.on_recover
    async def latest_hours() -> None:
        reports.rebuild(table.keys())

    # Both agents: concurrency 1 (ordered per partition) and a crash stops the worker rather than
    # restarting past a record; a batch's offsets are committed once the agent says it is handled
    # (`RecordBatch.handled`). The feed's sends need no wait: the commit waits for the producer to
    # flush, and a failed send stops the worker (`durability`).
    @app.agent(outcomes, concurrency=1, supervisor_strategy=mode.CrashingSupervisor)
    async def report_feed(stream: faust.StreamT[bytes]) -> None:
        queues["report_feed"] = (stream.channel.queue, outcome_names)  # type: ignore[attr-defined]
        manual = stream.noack()  # type: ignore[attr-defined]
        async for event in manual.events():
            records, batch = records_of(event.message)
            for r in records:
                routed = reports.route(r.value)
                if routed is not None:
                    key, partition = routed
                    await updates.send(key=key, value=r.value, partition=partition, force=True)
            if batch is not None:
                batch.handled()
            await manual.ack(event)

    @app.agent(updates, concurrency=1, supervisor_strategy=mode.CrashingSupervisor)
    async def report_rows(stream: faust.StreamT[bytes]) -> None:
        queue = stream.channel.queue  # type: ignore[attr-defined]
        queues["report_rows"] = (queue, frozenset([updates.get_topic_name()]))
        await cache.ready.wait()  # unattributed rows name the pixel's advertiser
        manual = stream.noack()  # type: ignore[attr-defined]
        async for event in manual.events():
            m = event.message
            records, batch = records_of(m)
            update = reports.apply_batch((r.value for r in records), m.partition, table.get)
            # The state first, then the rows it sums up (a row lost in a crash after the write is
            # published again when the batch is read again).
            await writer.write(m.partition, update.writes, update.deletes)
            for key, value in update.rows.items():
                await rows.send(key=key, value=value, force=True)
            if batch is not None:
                batch.handled()
            await manual.ack(event)

    return reports, writer
