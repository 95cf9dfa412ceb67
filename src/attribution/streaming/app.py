"""The Faust app factory. Building an app connects to nothing; `attribution worker` runs it.

Topology (docs/design.md, Architecture):

* `events` agent: impressions, clicks, conversions and the internal re-key and tick topics, one
  co-partitioned stream, concurrency 1 (Faust's concurrency > 1 can commit past an unfinished
  message). Each event is the batch of records fetched for one partition (`batches`). Per record:
  decode -> re-key if its key is not its user_id -> read state -> `domain.step` (or hold /
  release, see `event_time`); per batch: send the outputs; each user's state is written once they
  are acknowledged, while the agent steps the next batches (`pending`).
* `config` agent: pixels and line items, only to dead-letter invalid records once cluster-wide;
  every worker's `ConfigCache` reads the same topics in full to judge conversions.
* `users` table: user_id -> encoded `UserState`, changelogged, memory or RocksDB store.
* report agents (`report_agents`): outcomes -> `report-updates` -> `reports` table ->
  `conversion-reports`, each also a fetched batch per event.
* a timer that sends a tick to a partition whose held conversions outlived the bounded wait, since
  table writes only work inside stream iteration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import faust
import mode

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, OUTPUT_TOPICS
from attribution.settings import Settings, check_token_keys
from attribution.streaming.batches import RecordBatch, records_of
from attribution.streaming.batches import install as install_batches
from attribution.streaming.changelog import TableWriter, aiokafka_batches, aiokafka_producer
from attribution.streaming.collector import Collector
from attribution.streaming.commits import STALLED_AFTER_S, unsettled
from attribution.streaming.commits import install as install_commit_guard
from attribution.streaming.config_cache import RESTORES_HEADER, ConfigCache
from attribution.streaming.decompression import install as install_bounded_gzip
from attribution.streaming.delivery import install as install_fast_delivery
from attribution.streaming.durability import ChangelogGuard
from attribution.streaming.flow import Backpressure, pause_fetching, paused_in_client, report_lag
from attribution.streaming.pending import PendingStates
from attribution.streaming.processor import Processor
from attribution.streaming.recovery import BatchedTableManager
from attribution.streaming.report_agents import BATCHED_TOPICS as REPORT_BATCHED_TOPICS
from attribution.streaming.report_agents import install as install_reports
from attribution.streaming.reports import UPDATES_TOPIC
from attribution.streaming.topics import INTERNAL_TOPICS, REKEY_TOPIC, TICK_TOPIC, bytes_table
from attribution.streaming.tuning import (
    FETCH_MAX_WAIT_MS,
    FETCH_MIN_BYTES,
    fetch_again,
    reactivate_buffered,
    tune_fetch,
)

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.2
#: How often (seconds) the timer logs what held conversions wait for, while some are held.
WAITING_LOG_S = 10.0
#: The order of a fetch's batches: what decides a conversion before it (`batches`).
BATCH_ORDER = ("impressions", "clicks", REKEY_TOPIC, "conversions", TICK_TOPIC)
#: Fetched batches the events stream may have queued (Faust's default, 4,096, counts records).
EVENT_QUEUE_BATCHES = 16
#: aiokafka's batch size per partition (Faust's default 16 KiB), under the topics' record limit.
PRODUCER_BATCH_BYTES = 512 * 1024
#: How long the config agent waits for the cache to apply a record before its follow-up.
CONFIG_WAIT_S = 30.0


def create_app(settings: Settings, middlewares: Sequence[Any] = ()) -> faust.App:
    """Build the app with its topics, table, cache and agents. Nothing runs until a worker starts.
    `middlewares` wrap every route of the app's web server (`attribution.worker` adds the HTTP side).
    Unusable auction token keys (a secret under 32 bytes) raise UsageError: the worker never
    starts with a guessable secret."""
    check_token_keys(settings)
    # gzip batches are inflated in bounded steps, oversized records cut short (`decompression`).
    if not install_bounded_gzip():
        log.warning("no decompression-bomb guard: a small gzip batch can take a lot of memory")
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
        web_application_options={"middlewares": list(middlewares)},
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        table_standby_replicas=0,
        # A crashed worker's partitions move after this long (Faust's default is 60 s).
        broker_session_timeout=settings.session_timeout_s,
        # Static membership (KIP-345): a worker restarted within the session timeout under the same
        # id gets its partitions back without a rebalance of the group.
        consumer_group_instance_id=settings.group_instance_id or None,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        # Batch produce requests for up to 5 ms: the changelog write of every event and the outputs
        # go out in fewer, larger requests (BENCHMARKS.md: more events/s, less CPU per
        # event; each conversion's acknowledgement waits at most 5 ms longer).
        producer_linger=0.005,
        # A batch's state writes fill several of aiokafka's 16 KiB batches, and a full batch waits
        # for the one in flight to be sent (a produce round trip per 16 KiB): one batch per
        # partition per request instead (BENCHMARKS.md).
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # Changelog recovery in batches: Faust's loop is costly per record (`recovery`, BENCHMARKS.md).
        TableManager=BatchedTableManager,
    )

    # Offsets committed never pass a record no stream handled (`commits`).
    delivered = install_commit_guard(app)
    event_topic_names = frozenset(settings.topic(t) for t in (*EVENT_TOPICS, *INTERNAL_TOPICS))
    # The events agent gets each partition's fetched records as one event (`batches`); of one
    # fetch, the touches first, then the re-keyed records, the conversions and the ticks. The
    # report agents get theirs the same way.
    install_batches(app, [settings.topic(t) for t in (*BATCH_ORDER, *REPORT_BATCHED_TOPICS)])

    def topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, **kw)

    event_topic = app.topic(
        *event_topic_names,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
    # Each queued event is a fetched batch, not one record. Faust 0.15.3's `App.topic` takes a
    # `maxsize` and drops it (the topic gets the 4,096 of `stream_buffer_maxsize`); set on the
    # topic, the agent's stream inherits it. A full queue stops the fetching, so under load the
    # next fetch brings larger batches instead of thousands of small ones waiting in line.
    event_topic.maxsize = EVENT_QUEUE_BATCHES
    config_topic = app.topic(*(settings.topic(t) for t in CONFIG_TOPICS), key_type=bytes, value_type=bytes)
    outputs = {name: topic(name) for name in OUTPUT_TOPICS}
    rekey = topic(REKEY_TOPIC, partitions=settings.partitions)
    ticks = topic(TICK_TOPIC, partitions=settings.partitions)
    users = bytes_table(app, "users", settings.partitions)
    cache = ConfigCache(settings)
    # A failed state write stops the worker (and so does a lost report update: `reports`).
    guard = ChangelogGuard([users.changelog_topic.get_topic_name(), settings.topic(UPDATES_TOPIC)])
    app.sensors.add(guard)

    # A batch's changelog writes go out as aiokafka record batches (`changelog`).
    producer = aiokafka_producer(app)
    if producer is None:
        log.warning("no aiokafka producer of Faust's: table writes are sent a record at a time")
    batches = aiokafka_batches(producer) if producer is not None else None

    def writer_for(table: Any) -> TableWriter:
        # A table's writes go through its store and the producer (`changelog`), guarded.
        guard.watch(table.changelog_topic.get_topic_name())
        return TableWriter(table, lambda *args: app.producer.send(*args), unsettled(app), guard.failed, batches)

    writer = writer_for(users)
    # The events agent's states in flight, written behind their outputs' acknowledgements; a
    # failed batch stops the worker as an agent crash does.
    pending = PendingStates(
        lambda _, writes, deletes: writer.put(writes, deletes),
        writer.send_records,
        lambda exc: asyncio.ensure_future(app.crash(exc)),
    )
    # Full collections of the garbage collector skip what survived the timer's last tick (`collector`).
    collector = Collector()
    #: Per agent taking batches, its stream's queue and topics, once the agent runs (`tick`).
    queues: dict[str, tuple[Any, frozenset[str]]] = {}
    # Hourly conversion reports: their own agents and table, off the events agent's path (`reports`).
    reports, report_writer = install_reports(app, settings, cache, writer_for, queues)
    names = {settings.topic(t): t for t in (*EVENT_TOPICS, *CONFIG_TOPICS, *INTERNAL_TOPICS)}
    processor = Processor(settings, names, lambda: cache.config)
    #: Called with each output's label (`processor.output_label`) once the broker acknowledged
    #: it: the HTTP side counts them on `/metrics` (`attribution.worker` adds it).
    output_hooks: list[Callable[[tuple[str, ...]], None]] = []

    @app.on_partitions_assigned.connect
    async def fetch_sooner(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        # Faust hard-codes a 1.5 s fetch wait that can hold records of busy partitions (`tuning`).
        if tune_fetch(app):
            log.info("consumer fetch wait %d ms, minimum %d bytes", FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES)
        else:
            log.warning("could not shorten the consumer's fetch wait: latency may reach 1.5 s")
        # Faust makes four tasks per record to hand it to its stream (`delivery`).
        if not install_fast_delivery(app):
            log.warning("could not install the fast record hand-off: records cost more CPU")

    @app.on_partitions_revoked.connect
    async def forget_states(sender: Any, /, *args: Any, **kw: Any) -> None:
        # Faust has waited for the streams' events in flight, so every batch's states are written
        # (`pending`); drained again here, as nothing may be written once the partitions move.
        await pending.drain()
        # The processor keeps users' states as the table holds them; after a rebalance another
        # worker may have written them (`Processor.forget_states`).
        processor.forget_states()

    @users.on_recover
    async def reindex_held() -> None:
        n = processor.rebuild(users.items)
        log.info("event time: %d held conversions re-indexed after recovery", n)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_config() -> None:
        await cache.run()

    last_said = [0.0]  # when the timer last logged what held conversions wait for

    backpressure = Backpressure({t: settings.topic(t) for t in EVENT_TOPICS})

    @app.timer(TICK_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        if collector.tick(processor.clock()):
            log.info(
                "collector: full collection of everything, %.0f ms, %d objects freed; next in %.0f s",
                collector.last_full_ms,
                collector.last_full_freed,
                collector.interval_s,
            )
        consumer = app._consumer
        if consumer is not None:
            for queue, topics in list(queues.values()):
                resumed = reactivate_buffered(consumer, queue, topics)
                if resumed:
                    log.info("resumed fetching %d partitions left stopped after a full buffer", len(resumed))
        if consumer is not None and not app.rebalancing:
            # Event time needs to know which touch partitions are behind (`event_time`, `flow`).
            report_lag(consumer, processor.time, names, processor.clock())
            pause, resume = backpressure.decide(consumer.assignment(), processor.time)
            for tp, offset in backpressure.seeks(resume, processor.time).items():
                # Records past the cut were fetched and not handled: read again from it.
                await consumer.seek(tp, offset)
            await pause_fetching(consumer, pause, resume)
            for tp, offset in delivered.lost_heads(consumer, processor.clock()).items():
                log.error("offset %d of %s was handed to a stream but never handled: reading it again", offset, tp)
                await consumer.seek(tp, offset)
            queue = queues["events"][0] if "events" in queues else None
            if queue is not None and queue.qsize() <= queue.pressure_drop_size:
                stopped = paused_in_client(consumer)
                for tp, offset in delivered.stalled(consumer, processor.clock(), stopped, event_topic_names).items():
                    log.error(
                        "%s has records to read but none reached the stream for %g s: reading again from offset %d",
                        tp,
                        STALLED_AFTER_S,
                        offset,
                    )
                    fetch_again(consumer, tp)
                    await consumer.seek(tp, offset)
        now = processor.clock()
        if now - last_said[0] >= WAITING_LOG_S and processor.held_conversions():
            # What held conversions wait for, now and then: the first thing to look at when
            # outcomes are late.
            last_said[0] = now
            paused = sorted(f"{topic}/{partition}" for topic, partition in paused_in_client(consumer))
            buffered = sorted(f"{tp.topic}/{tp.partition}" for tp in getattr(consumer, "_buffered_partitions", ()))
            log.info("event time: paused %s; buffered %s", paused or "none", buffered or "none")
            for line in processor.time.waiting(now):
                log.info("event time: %s", line)
        for partition in processor.due_ticks():
            await ticks.send(key=b"tick", value=b"", partition=partition, force=True)

    # A crash of the events agent stops the worker (CrashingSupervisor) instead of restarting the
    # agent past the record it failed on; its records are acked only once fully handled (noack +
    # explicit ack), so the offset committed never passes a record that was not (`commits`).
    @app.agent(event_topic, concurrency=1, supervisor_strategy=mode.CrashingSupervisor)
    async def events(stream: faust.StreamT[bytes]) -> None:
        queues["events"] = (stream.channel.queue, event_topic_names)  # type: ignore[attr-defined]
        await cache.ready.wait()
        manual = stream.noack()  # type: ignore[attr-defined]
        read_state = partial(pending.get, users.get)
        async for event in manual.events():
            m = event.message
            records, batch = records_of(m)
            result = processor.handle_batch(m.topic, m.partition, records, read_state, cuts=batch is not None)
            if result.cut_at is not None and batch is not None:
                # A user holds as many conversions as it may: nothing of the partition's
                # conversions is handed over until it is read again from the cut (`EventTime.cut`).
                delivered.cut(batch.tp, result.cut_at)
                if backpressure.cut(batch.tp) and app._consumer is not None:
                    await pause_fetching(app._consumer, [batch.tp], [])
            # Outputs go out now (not at commit) and are acknowledged *before* the state that
            # records them is written: a crash in between redelivers the batch, which is judged
            # again on the state without it, giving the same bytes. See docs/reliability.md.
            sent = [await outputs[t].send(key=k, value=v, force=True) for t, k, v in result.sends]
            for fut, label in zip(sent, result.labels, strict=True):
                if label is not None:
                    asyncio.ensure_future(fut).add_done_callback(partial(_published, output_hooks, label))
            for user_key, raw, headers in result.rekeys:
                sent.append(await rekey.send(key=user_key, value=raw, headers=headers, force=True))
            # The states (expired users get a tombstone: `expiry`) are written once those sends
            # are acknowledged, while the next batches are stepped on them (`pending`); then the
            # batch counts as handled and its event is acknowledged.
            await pending.submit(
                m.partition,
                result.writes,
                result.deletes,
                sent,
                partial(_handled, manual, event, batch, result.unhandled_from),
            )

    @app.agent(config_topic, concurrency=1)
    async def config(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            m = event.message
            checked = processor.check_config(m.topic, m.key, m.value, m.partition, m.offset, m.headers)
            if checked is not None:
                dead, label = checked
                fut = await outputs["dead-letters"].send(key=m.key, value=dead, force=True)
                asyncio.ensure_future(fut).add_done_callback(partial(_published, output_hooks, label))
            # What the cache decided about this record: re-publish a valid version over an invalid
            # one (compaction then keeps it), warn about deletes of unknown ids and unknown pixels.
            if not await cache.wait_applied(m.topic, m.partition, m.offset, CONFIG_WAIT_S):
                log.warning("config: %s offset %d not applied by the cache in time: no follow-up", m.topic, m.offset)
                continue
            for note in cache.take_notes(names[m.topic], m.partition, m.offset):
                cache.counted[(names[m.topic], note.kind)] += 1
                if note.kind == "restore":
                    restores = [(RESTORES_HEADER, str(m.offset).encode())]
                    # The producer itself (a restore may be a tombstone), on the partition it answers.
                    await app.producer.send_and_wait(
                        m.topic, note.key, note.value, partition=m.partition, timestamp=None, headers=restores
                    )
                    log.warning("config: %s offset %d changed nothing; id %s re-published", m.topic, m.offset, note.key)
                else:
                    log.warning("config: %s offset %d accepted: %s", m.topic, m.offset, note.detail)

    app.attribution = {  # type: ignore[attr-defined]
        "cache": cache,
        "users": users,
        "processor": processor,
        "outputs": outputs,
        "reports": reports,
        "output_hooks": output_hooks,
        "writer": writer,
        "pending": pending,
        "collector": collector,
        "report_writer": report_writer,
    }
    return app


async def _handled(manual: Any, event: Any, batch: RecordBatch | None, unhandled_from: int | None) -> None:
    """A batch's states are written: the offsets of its records handled (all, or those below
    `unhandled_from`) may be committed, its event is acknowledged."""
    if batch is not None:
        batch.handled(unhandled_from)
    await manual.ack(event)


def _published(hooks: list[Callable[[tuple[str, ...]], None]], label: tuple[str, ...], fut: Any) -> None:
    """Done-callback of an output's send: tell the hooks once the broker acknowledged it."""
    if fut.cancelled() or fut.exception() is not None:
        return
    for hook in hooks:
        hook(label)
