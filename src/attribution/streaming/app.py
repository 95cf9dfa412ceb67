"""The Faust app factory. Building an app connects to nothing; `attribution worker` runs it.

Topology (DESIGN §3):

* `events` agent: impressions, clicks, conversions and the internal re-key and tick topics, one
  co-partitioned stream, concurrency 1 (Faust's concurrency > 1 can commit past an unfinished
  message). Per message: decode -> re-key if its key is not its user_id -> read state ->
  `domain.step` (or hold / release, see `event_time`) -> state writes -> send outputs.
* `config` agent: pixels and line items, only to dead-letter invalid records once cluster-wide;
  every worker's `ConfigCache` reads the same topics in full to judge conversions.
* `users` table: user_id -> encoded `UserState`, changelogged, memory or RocksDB store.
* a timer that sends a tick to a partition whose held conversions outlived the bounded wait, since
  table writes only work inside stream iteration.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, OUTPUT_TOPICS
from attribution.settings import Settings
from attribution.streaming.config_cache import ConfigCache
from attribution.streaming.delivery import install as install_fast_delivery
from attribution.streaming.durability import ChangelogGuard
from attribution.streaming.processor import Processor
from attribution.streaming.recovery import BatchedTableManager
from attribution.streaming.topics import INTERNAL_TOPICS, MAX_MESSAGE_BYTES, REKEY_TOPIC, TICK_TOPIC
from attribution.streaming.tuning import FETCH_MAX_WAIT_MS, reactivate_buffered, shorten_fetch_wait

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.2


def create_app(settings: Settings) -> faust.App:
    """Build the app with its topics, table, cache and agents. Nothing runs until a worker starts."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store=settings.store,
        datadir=settings.data_dir,
        autodiscover=False,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        table_standby_replicas=0,
        # A crashed worker's partitions move after this long (Faust's default is 60 s).
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        # Batch produce requests for up to 5 ms: the changelog write of every event and the outputs
        # go out in fewer, larger requests (BENCHMARKS.md: more events/s, less CPU per
        # event; each conversion's acknowledgement waits at most 5 ms longer).
        producer_linger=0.005,
        # Changelog recovery in batches: Faust's loop costs ~100 µs per record (`recovery`).
        TableManager=BatchedTableManager,
    )

    def topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, **kw)

    event_topic = app.topic(
        *(settings.topic(t) for t in (*EVENT_TOPICS, *INTERNAL_TOPICS)),
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
    config_topic = app.topic(*(settings.topic(t) for t in CONFIG_TOPICS), key_type=bytes, value_type=bytes)
    outputs = {name: topic(name) for name in OUTPUT_TOPICS}
    rekey = topic(REKEY_TOPIC, partitions=settings.partitions)
    ticks = topic(TICK_TOPIC, partitions=settings.partitions)
    users = app.Table(
        "users",
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        default=None,
        extra_topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
    )
    app.sensors.add(ChangelogGuard([users.changelog_topic.get_topic_name()]))  # a failed state write stops the worker
    watermarks = app.Table(
        "touch-watermarks", key_type=bytes, value_type=bytes, partitions=settings.partitions, default=None
    )
    cache = ConfigCache(settings)
    names = {settings.topic(t): t for t in (*EVENT_TOPICS, *CONFIG_TOPICS, *INTERNAL_TOPICS)}
    processor = Processor(settings, names, lambda: cache.config)

    @app.on_partitions_assigned.connect
    async def fetch_sooner(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        # Faust hard-codes a 1.5 s fetch wait that can hold records of busy partitions (`tuning`).
        if shorten_fetch_wait(app):
            log.info("consumer fetch wait set to %d ms", FETCH_MAX_WAIT_MS)
        else:
            log.warning("could not shorten the consumer's fetch wait: latency may reach 1.5 s")
        # Faust makes four tasks per record to hand it to its stream (`delivery`).
        if not install_fast_delivery(app):
            log.warning("could not install the fast record hand-off: records cost more CPU")

    @users.on_recover
    async def reindex_held() -> None:
        n = processor.rebuild(users.items, watermarks.items)
        log.info("event time: %d held conversions re-indexed after recovery", n)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_config() -> None:
        await cache.run()

    event_queue: list[Any] = []  # the events stream's queue, once its agent runs
    event_topic_names = set(event_topic.topics)

    @app.timer(TICK_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        if event_queue and app._consumer is not None:
            resumed = reactivate_buffered(app._consumer, event_queue[0], event_topic_names)
            if resumed:
                log.info("resumed fetching %d partitions left stopped after a full buffer", len(resumed))
        for partition in processor.due_ticks():
            await ticks.send(key=b"tick", value=b"", partition=partition, force=True)

    @app.agent(event_topic, concurrency=1)
    async def events(stream: faust.StreamT[bytes]) -> None:
        event_queue[:] = [stream.channel.queue]  # type: ignore[attr-defined]
        await cache.ready.wait()
        async for event in stream.events():
            m = event.message
            result = processor.handle(m.topic, m.key, m.value, m.partition, m.offset, m.headers, users.get)
            # Outputs go out now (not at commit) and are acknowledged *before* the state that
            # records them is written: a crash in between redelivers the record, which is judged
            # again on the state without it, giving the same bytes. See docs/reliability.md.
            sent = [await outputs[t].send(key=k, value=v, force=True) for t, k, v in result.sends]
            if result.rekey is not None:
                user_key, raw, headers = result.rekey
                sent.append(await rekey.send(key=user_key, value=raw, headers=headers, force=True))
            if sent and result.writes:
                await asyncio.gather(*sent)
            for user_key, state in result.writes.items():
                users[user_key] = state
            for user_key in result.deletes:  # expired: a tombstone to the changelog (`expiry`)
                del users[user_key]
            if result.watermark is not None:
                watermarks[result.watermark[0]] = result.watermark[1]

    @app.agent(config_topic, concurrency=1)
    async def config(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            m = event.message
            dead = processor.check_config(m.topic, m.key, m.value, m.partition, m.offset)
            if dead is not None:
                await outputs["dead-letters"].send(key=m.key, value=dead, force=True)

    # --- web side (attribution.web): HTTP API, /stats, /dashboard, /metrics; fed by a Faust sensor ---
    from attribution.web import register as register_web

    register_web(app, settings, cache=cache, processor=processor)

    app.attribution = {"cache": cache, "users": users, "processor": processor, "outputs": outputs}  # type: ignore[attr-defined]
    return app
