"""One Faust event per fetched batch of a partition: the events agent's record hand-off.

faust-streaming 0.15.3 makes every consumed record its own event: a message object, the
conductor's decode and queue put, the stream's per-event bookkeeping (sensors, a context variable,
acknowledgements, a `sleep(0)`), which costs more than our whole step of a record and alone holds
a Faust agent to about a tenth of what raw aiokafka consumes (BENCHMARKS.md). `install` gives the
app's consumer a `getmany` that hands the records fetched for a partition of the given topics to
the conductor as one `RecordBatch` message, so that the agent steps a whole batch per event
(`Processor.handle_batch`), writes each user's state once per batch and has the batch's outputs
acknowledged together. The records of other topics (config, reports, changelogs) keep one message
each, as before.

Ordering and safety:

* a batch holds one partition's records in offset order, as fetched; batches of a partition
  reach the stream in offset order (one fetcher, one queue), as single records did;
* a record below the partition's read offset (Faust's `Consumer._read_offset`, moved back by a
  seek) is left out of its batch, as Faust's drain loop drops it;
* a batch counts as handled only when its agent says so (`RecordBatch.handled`), never through
  Faust's acknowledgement, which Faust also gives to events a stream skipped (those of a stale
  generation after a rebalance). `commits` then commits past the batch's last offset;
* a partition whose reading the agent cut at an offset (`Delivered.cut`: a user holding as many
  conversions as it may) has nothing handed over until a fetch that starts there, after the
  app has sought back to it: records fetched before the seek are not handed over twice;
* records fetched while their partition's last batch still waits in the stream's queue (no agent
  has it yet: `records_of` takes it out of `Delivered.waiting`) join that batch (`RecordBatch.join`, up to
  `JOIN_MAX_RECORDS`), in the same generation and past its last offset; a seek or a cut of the
  partition starts a new batch. So a busy agent gets fewer, larger batches, while the queue stays
  short and the fetching goes on: Faust stops fetching a partition whose stream's queue is full
  and waits for it to drain to less than half, which held live records back some 100 ms at
  12,000 events/s (BENCHMARKS.md, "One writer for the states in flight, batches that grow while
  they wait"). A partition's records stay in offset order; between topics the order may change
  (a conversion fetched after a touch may now be handled first), which event time allows: a
  conversion waits for the touches of its partition to pass it however they are read.

The replaced `getmany` keeps what Faust's does around the records: the wait for the next fetch,
the active-partition filter, the flow and generation checks, the seek back while flow is stopped,
and the end-offset tracking of the monitor. `patch_consumer` refuses to run if the
pinned Faust version is another (the patch is of `Consumer.getmany`, checked against the pin).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types.tuples import ConsumerMessage

from attribution.streaming.commits import SUPPORTED_FAUST, Delivered

log = logging.getLogger(__name__)

#: Records a batch still waiting in its stream's queue may grow to by joining the next fetches of
#: its partition (`RecordBatch.join`). Past it a new batch is queued, and a queue that fills up
#: stops the fetching, as Faust does.
JOIN_MAX_RECORDS = 2000


class RecordBatch(ConsumerMessage):
    """The records fetched for one partition (`records`, in offset order), as one message.

    Faust's fields are those of the last record (its `offset` is what Faust's drain loop compares
    with the read offset); `key` is None and `value` empty, so the raw codecs pass them through."""

    __slots__ = ("delivered", "offsets", "records")

    def __init__(self, tp: Any, records: list[Any], generation_id: int | None, delivered: Delivered) -> None:
        last = records[-1]
        timestamp = last.timestamp
        super().__init__(
            last.topic,
            last.partition,
            last.offset,
            timestamp / 1000.0 if timestamp is not None else None,  # type: ignore[arg-type]
            last.timestamp_type,
            None,
            None,
            b"",
            None,
            0,
            0,
            tp,
            generation_id=generation_id,
        )
        self.records = records
        self.offsets = [r.offset for r in records]
        self.delivered = delivered

    def joinable(self, generation_id: int | None, fetched: Sequence[Any]) -> bool:
        """Whether the records `fetched` next for this batch, its partition's `Delivered.waiting`
        one (still in its stream's queue), may join it: in the current generation, past its last
        offset, and within `JOIN_MAX_RECORDS`."""
        return (
            self.generation_id == generation_id
            and fetched[0].offset > self.offsets[-1]
            and len(self.records) + len(fetched) <= JOIN_MAX_RECORDS
        )

    def join(self, fetched: Sequence[Any]) -> list[int]:
        """Append the records `fetched` next for this batch's partition; returns their offsets.
        Faust's fields become those of the new last record, as for a batch made of them all."""
        offsets = [r.offset for r in fetched]
        self.records.extend(fetched)
        self.offsets.extend(offsets)
        last = fetched[-1]
        self.offset = last.offset
        if last.timestamp is not None:
            self.timestamp = last.timestamp / 1000.0
        return offsets

    def handled(self, before: int | None = None) -> None:
        """Every record of the batch was handled, or every one below offset `before` (a batch
        cut there): their offsets may be committed (`commits`)."""
        last = self.offsets[-1] if before is None else before - 1
        if last >= self.offsets[0]:
            self.delivered.handled(self.tp, self.offsets[0], last)


def records_of(message: Any) -> tuple[Sequence[Any], RecordBatch | None]:
    """The records an agent's event carries, and the batch to report handled: a `RecordBatch`'s
    records, or the one record Faust handed over singly (its test context does)."""
    if isinstance(message, RecordBatch):
        # An agent has its records: nothing joins it any more.
        waiting, tp = message.delivered.waiting, message.tp
        if waiting.get(tp) is message:
            del waiting[tp]
        return message.records, message
    return (message,), None


def batched_getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    """`Consumer.getmany` of an app with `install`ed batches: one `RecordBatch` per fetched
    partition of its batched topics, one message per record of any other topic."""
    delivered: Delivered | None = getattr(self.app, "attribution_delivered", None)
    if delivered is None or not delivered.batched:
        faust_getmany: AsyncIterator[tuple[Any, Any]] = _original["getmany"](self, timeout)
        return faust_getmany
    return _batches(self, timeout, delivered)


async def _batches(consumer: Any, timeout: float, delivered: Delivered) -> AsyncIterator[tuple[Any, Any]]:
    app = consumer.app
    topics = delivered.batched
    records, active = await consumer._wait_next_records(timeout)
    generation = app.consumer_generation_id
    if records is None or consumer.should_stop:
        return
    if not consumer.flow_active:
        try:  # as Faust: while flow is stopped, go back to the committed offsets
            await consumer.perform_seek()
        except Exception as exc:  # Faust logs it and goes on too
            log.warning("exception performing seek when flow not active %s", exc)
        return
    read_offsets = consumer._read_offset
    track_end = app.monitor.track_tp_end_offset
    buffered = consumer._buffered_partitions
    singles = {}
    # Records of a partition Faust does not fetch now (paused, or out of its fetch set) that
    # aiokafka returned anyway: Faust's own getmany drops them, moving past them for good (the
    # commit guard then counts them as absent); here the partition goes back to the first of them.
    skipped: dict[Any, int] = {}
    # The batches of one fetch go to the stream in the order of their topics in `batched`: touches
    # before the conversions they decide, as reading in timestamp order would.
    rank = topics.get
    for tp, fetched in sorted(records.items(), key=lambda item: rank(item[0].topic, len(topics))):
        if tp.topic not in topics:
            singles[tp] = fetched
            continue
        if not consumer.flow_active or app.consumer_generation_id != generation:
            return
        if active is not None and tp not in active and tp not in buffered:
            if fetched:
                skipped.setdefault(tp, fetched[0].offset)
            continue
        read = read_offsets.get(tp)
        if read is not None and fetched and fetched[0].offset < read:
            fetched = [r for r in fetched if r.offset >= read]  # from before a seek back: dropped
        if not fetched or not delivered.hand_over(tp, fetched[0].offset):
            continue  # (fetched before a cut took effect: read again from the cut, `EventTime.cut`)
        track_end(tp, consumer.highwater(tp))
        waiting = delivered.waiting.get(tp)
        if waiting is not None and waiting.joinable(generation, fetched):
            # The partition's batch still waits for its agent: the records join it, as Faust's
            # drain loop would have handed them over after it (`read_offsets`, `saw_batch`).
            delivered.saw_batch(tp, waiting.join(fetched))
            read_offsets[tp] = fetched[-1].offset
            continue
        batch = delivered.waiting[tp] = RecordBatch(tp, fetched, generation, delivered)
        yield tp, batch
    if singles:
        to_message = consumer._to_message
        for tp, record in consumer.scheduler.iterate(singles):
            if not consumer.flow_active or app.consumer_generation_id != generation:
                return
            if active is None or tp in active or tp in buffered:
                track_end(tp, consumer.highwater(tp))
                yield tp, to_message(tp, record)
            else:
                skipped.setdefault(tp, record.offset)
    for tp, offset in skipped.items():
        await consumer.seek(tp, offset)


_original: dict[str, Callable[..., Any]] = {}


def patch_consumer() -> None:
    """Replace Faust's `Consumer.getmany` (once; idempotent); apps without `install` keep
    Faust's. RuntimeError on another Faust version."""
    if faust.__version__ != SUPPORTED_FAUST:
        raise RuntimeError(
            f"attribution.streaming.batches replaces faust-streaming {SUPPORTED_FAUST}'s Consumer.getmany; "
            f"found {faust.__version__}: check it against the new version before changing the pin"
        )
    if _original:
        return
    _original["getmany"] = Consumer.getmany
    Consumer.getmany = batched_getmany  # type: ignore[method-assign]


def install(app: Any, topics: Sequence[str]) -> None:
    """Hand the records of `topics` to their agent as `RecordBatch` events; the batches of one
    fetch in the order of `topics`. Call after `commits.install` and before the app starts; the
    agent must call `RecordBatch.handled` for each batch it handled, or its offsets are never
    committed."""
    delivered = getattr(app, "attribution_delivered", None)
    if delivered is None:
        raise RuntimeError("batches.install needs commits.install first (the commit bookkeeping of batches)")
    patch_consumer()
    delivered.batched = {topic: i for i, topic in enumerate(topics)}
