"""The offset committed never passes a record that was not handled: a guarded fix of Faust's commit bookkeeping.

faust-streaming 0.15.3 (`faust.transport.consumer.Consumer`) commits, per partition, the end of the
first run of consecutive acknowledged offsets, with offsets it believes do not exist ("gaps")
counted as acknowledged. Three defects let that pass a record no stream handled:

* the head check lets one missing offset through (`min(acked) - committed > 1`) and is skipped
  altogether while nothing was committed yet (upstream issue 606, open PR 707);
* gaps are recorded end-inclusive since the interval tree became end-exclusive (PR 282): the
  record after an offset jump counts as done before it is handled;
* after a seek the read offset means "next to read", elsewhere "last read", so gap ranges are
  off by one after every rebalance.

A crash inside an agent could then commit past the record it failed on, and records a rebalance
dropped from the stream buffers were committed as if handled. This module replaces that
bookkeeping for the topics whose records are acknowledged:

* `Delivered` notes, in the conductor's callback (every record the consumer hands to a stream, in
  offset order per partition), which offsets were skipped since reading (re)started: those are the
  only gaps;
* `next_commit` is the smallest offset at or after the committed one that is neither acknowledged
  nor a gap: the offset committed;
* every assigned partition has a known starting point (Faust leaves partitions with no committed
  offset, or offset 0, without one): the earliest offset, sought explicitly;
* `lost_heads` finds a partition whose first unhandled record was handed to a stream but never
  handled while later ones were (a record dropped from a stream buffer); the app seeks it back, and
  the records from there are handled again (handling is idempotent);
* a seek runs on the consumer's own thread (Faust's driver calls aiokafka's from the caller's,
  racing the fetcher, which then crashed on records deleted under it);
* before offsets are committed, every send handed to Faust's producer buffer so far (the tables'
  changelog writes, `Producer.send_soon`) is acknowledged by the broker (`Unsettled`). Faust's own
  flush before a commit (`ProducerBuffer.flush`) gives up after 100 ms without a message sent, and
  does not wait for the message its sending task has already taken from the queue: on a busy
  worker the offsets of records could be committed while their state writes still waited in the
  buffer, and a SIGKILL then lost those writes for good (the records are not read again). Found
  with the soak of the churn tests on a loaded machine: conversions judged without touches the
  killed worker had read.

The patch is applied to Faust's `Consumer` and `Producer` classes once per process, checked
against the pinned version; they keep their own behaviour for apps that did not `install` it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

import faust
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.transport.producer import Producer

log = logging.getLogger(__name__)

SUPPORTED_FAUST = "0.15.3"
#: A partition's first unhandled record counts as lost when it stays so for this long (seconds)
#: while later records of the partition were handled.
LOST_AFTER_S = 10.0
#: A partition with records to read counts as stalled when none reached a stream for this long
#: (seconds) while the stream's queue was nearly empty (`Delivered.stalled`).
STALLED_AFTER_S = 15.0
#: Longest wait (seconds) for the state writes before a commit: Kafka's default delivery timeout;
#: and while the worker stops, after which it stops without that commit.
SETTLE_TIMEOUT_S = 120.0
STOPPING_SETTLE_TIMEOUT_S = 10.0


def next_commit(
    committed: int,
    done: Collection[int],
    gaps: Iterable[tuple[int, int]],
    spans: Mapping[int, int] | None = None,
) -> int:
    """The smallest offset at or after `committed` that is neither in `done`, nor in a gap, nor in
    a handled span.

    `gaps` are half-open ranges `[start, end)` of offsets that do not exist, sorted by start;
    `spans` maps the first offset of each handled batch (`batches`) to its last."""
    pos = committed
    pending = sorted(gaps)
    i = 0
    while True:
        if pos in done:
            pos += 1
            continue
        if spans:
            end = spans.get(pos)
            if end is not None and end >= pos:
                pos = end + 1
                continue
        while i < len(pending) and pending[i][1] <= pos:
            i += 1
        if i < len(pending) and pending[i][0] <= pos:
            pos = pending[i][1]
            continue
        return pos


class Delivered:
    """Per partition: where reading (re)started, the last offset handed to a stream, the gaps,
    and for the topics handed over in batches (`batched`), the batches handled."""

    def __init__(self) -> None:
        self.base: dict[Any, int | None] = {}
        self.last: dict[Any, int] = {}
        self.gaps: defaultdict[Any, list[tuple[int, int]]] = defaultdict(list)
        #: topics whose records reach their stream in batches (`batches`): for them, only the
        #: spans the agent reported handled count, never Faust's acknowledgements (Faust also
        #: acknowledges the events a stream skipped, those of a stale generation)
        self.batched: dict[str, int] = {}  # topic -> its rank among the batched topics
        #: per partition of a batched topic: first offset -> last offset of each batch handled
        self.spans: defaultdict[Any, dict[int, int]] = defaultdict(dict)
        #: per partition of a batched topic whose reading was cut (`EventTime.cut`): the offset it
        #: is read again from; records fetched meanwhile, from elsewhere, are not handed over
        self.cuts: dict[Any, int] = {}
        #: per partition of a batched topic: its last batch while it waits in its stream's queue
        #: (no agent has its records yet): the next fetched records join it (`batches`)
        self.waiting: dict[Any, Any] = {}
        self._suspect: dict[Any, tuple[int, float]] = {}
        self._still: dict[Any, tuple[int, float]] = {}

    def reset(self, tp: Any, offset: int | None) -> None:
        """Reading of `tp` (re)starts at `offset` (a seek). What is known below it (batches
        handled, offsets absent) stays known, so the offsets handled before the seek may still
        be committed; a cut elsewhere is forgotten (a rebalance: reading starts over)."""
        self.base[tp] = offset
        self.last.pop(tp, None)
        self.waiting.pop(tp, None)  # records read from elsewhere start a batch of their own
        gaps, spans = self.gaps.pop(tp, None), self.spans.pop(tp, None)
        if offset is not None:
            if gaps:
                self.gaps[tp] = [g for g in gaps if g[1] <= offset]
            if spans:
                self.spans[tp] = {first: last for first, last in spans.items() if last < offset}
        if self.cuts.get(tp) != offset:
            self.cuts.pop(tp, None)
        self._suspect.pop(tp, None)
        self._still.pop(tp, None)

    def cut(self, tp: Any, offset: int) -> None:
        """Reading of `tp` was cut at `offset`: until a fetch starting there (after a seek back to
        it), its fetched records are not handed to a stream (`batches`)."""
        self.cuts[tp] = offset
        self.waiting.pop(tp, None)

    def hand_over(self, tp: Any, first: int) -> bool:
        """Whether records of `tp` fetched from `first` may be handed to a stream: always, unless
        `tp` is cut elsewhere; the fetch starting at the cut ends it."""
        cut = self.cuts.get(tp)
        if cut is None:
            return True
        if first != cut:
            return False
        del self.cuts[tp]
        return True

    def saw_batch(self, tp: Any, offsets: Sequence[int]) -> None:
        """The records at `offsets` (increasing) were handed to a stream as one batch: offsets
        skipped before and between them do not exist."""
        first, last = offsets[0], offsets[-1]
        self.saw(tp, first)
        if last - first + 1 != len(offsets):
            # Holes inside the batch (compaction, transaction markers): absent, as between batches.
            self.gaps[tp].extend((a + 1, b) for a, b in pairwise(offsets) if b > a + 1)
        if last > self.last[tp]:
            self.last[tp] = last

    def handled(self, tp: Any, first: int, last: int) -> None:
        """Every record from `first` to `last` was handled (a batch, by its agent)."""
        self.spans[tp][first] = last

    def _done(self, consumer: Any, tp: Any) -> tuple[Collection[int], Mapping[int, int] | None]:
        if tp.topic in self.batched:
            return (), self.spans.get(tp)
        return consumer._acked_index[tp], None

    def saw(self, tp: Any, offset: int) -> None:
        """The record at `offset` was handed to a stream; offsets skipped since do not exist."""
        last = self.last.get(tp)
        expected = self.base.get(tp) if last is None else last + 1
        if expected is not None and offset > expected:
            # Compaction and transaction markers leave such holes; on the event topics, which
            # are neither, a hole would mean records skipped on the way: say so.
            log.warning(
                "offsets %d to %d of %s were not handed to a stream: counted as absent", expected, offset - 1, tp
            )
            self.gaps[tp].append((expected, offset))
        if last is None or offset > last:
            self.last[tp] = offset

    def forget_below(self, tp: Any, offset: int) -> None:
        gaps = self.gaps.get(tp)
        if gaps:
            gaps[:] = [g for g in gaps if g[1] > offset]
        spans = self.spans.get(tp)
        if spans:
            for first in [f for f, last in spans.items() if last < offset]:
                del spans[first]

    def later_handled(self, consumer: Any, tp: Any) -> int | None:
        """The highest offset of `tp` handled (batched topics) or acknowledged (others), if any."""
        if tp.topic in self.batched:
            spans = self.spans.get(tp)
            return max(spans.values()) if spans else None
        acked = consumer._acked.get(tp)
        return max(acked) if acked else None

    def stalled(
        self, consumer: Any, now: float, paused: Collection[tuple[str, int]], topics: Collection[str] | None = None
    ) -> dict[Any, int]:
        """Partitions of the batched topics (of `topics` only, if given) with records to read (the
        broker's high watermark past the last offset handed to a stream) where no record reached a stream for
        `STALLED_AFTER_S`, although neither the worker nor Faust paused them: tp -> the first
        unhandled offset (to seek back to). A fetch that returns nothing for a partition it should
        read (its records dropped on the way, or the partition left out of the fetch) would
        otherwise stop the partition for good, silently."""
        stalled = {}
        excluded = consumer._paused_partitions
        for tp in consumer.assignment():
            watched = tp.topic in self.batched and (topics is None or tp.topic in topics)
            if not watched or tp in excluded or (tp.topic, tp.partition) in paused:
                self._still.pop(tp, None)
                continue
            committed = consumer._committed_offset.get(tp)
            highwater = consumer.highwater(tp)
            last = self.last.get(tp)
            position = last + 1 if last is not None else self.base.get(tp, committed)
            if committed is None or position is None or highwater is None or highwater <= position:
                self._still.pop(tp, None)
                continue
            if _unchanged_for(self._still, tp, position, now, STALLED_AFTER_S):
                done, spans = self._done(consumer, tp)
                stalled[tp] = next_commit(committed, done, self.gaps.get(tp, ()), spans)
        return stalled

    def lost_heads(self, consumer: Any, now: float) -> dict[Any, int]:
        """Partitions whose first unhandled offset was handed to a stream, later offsets were
        handled, and it stayed so for `LOST_AFTER_S`: tp -> that offset (to seek back to)."""
        lost = {}
        for tp, last in list(self.last.items()):
            committed = consumer._committed_offset.get(tp)
            latest = self.later_handled(consumer, tp)
            if committed is None or latest is None:
                self._suspect.pop(tp, None)
                continue
            done, spans = self._done(consumer, tp)
            head = next_commit(committed, done, self.gaps.get(tp, ()), spans)
            if not (head <= last and latest > head):
                self._suspect.pop(tp, None)
                continue
            if _unchanged_for(self._suspect, tp, head, now, LOST_AFTER_S):
                lost[tp] = head
        return lost


def _unchanged_for(marks: dict[Any, tuple[int, float]], tp: Any, value: int, now: float, seconds: float) -> bool:
    """Whether `tp`'s `value` has stayed the same for `seconds` up to `now` (then forgotten, so it
    is reported once); `marks` holds since when each partition's value is what it is."""
    seen = marks.get(tp)
    if seen is None or seen[0] != value:
        marks[tp] = (value, now)
        return False
    if now - seen[1] < seconds:
        return False
    del marks[tp]
    return True


class Unsettled:
    """Sends handed to the producer's buffer (`send_soon`) and not acknowledged yet."""

    def __init__(self) -> None:
        self.futures: set[asyncio.Future[Any]] = set()

    def add(self, fut: asyncio.Future[Any]) -> None:
        self.futures.add(fut)
        fut.add_done_callback(self.futures.discard)

    async def settle(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait until every send added so far is acknowledged (or failed: a failed changelog write
        stops the worker, `durability`). Later sends are not waited for, so a busy stream cannot
        hold a commit back. RuntimeError after `timeout` seconds: committing then could pass
        records whose state is not durable."""
        pending = list(self.futures)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        if late:
            raise RuntimeError(f"{len(late)} state writes not acknowledged in {timeout:g} s: offsets not committed")


def _delivered(consumer: Any) -> Delivered | None:
    return getattr(consumer.app, "attribution_delivered", None)


def unsettled(app: Any) -> Unsettled | None:
    """The sends an app's commits wait for (`install`); None for an app without the guard."""
    return getattr(app, "attribution_unsettled", None)


_original: dict[str, Callable[..., Any]] = {}


def _new_offset(self: Any, tp: Any) -> int | None:
    delivered = _delivered(self)
    if delivered is None:
        faust_offset: int | None = _original["_new_offset"](self, tp)
        return faust_offset
    committed = self._committed_offset[tp]
    acked = self._acked[tp]
    if committed is None or not (acked or delivered.spans.get(tp)):
        return None
    done, spans = delivered._done(self, tp)
    pos = next_commit(committed, done, delivered.gaps.get(tp, ()), spans)
    if pos <= committed:
        return None
    acked[:] = [o for o in acked if o >= pos]
    self._acked_index[tp].intersection_update(acked)
    delivered.forget_below(tp, pos)
    return pos


async def _commit_offsets(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
    pending = unsettled(self.app)
    if pending is not None:
        # The offsets are of records whose writes were all issued by now. A worker that is
        # stopping (a crash, a signal) waits less: not committing then only means reading again.
        stopping = bool(getattr(self.app, "should_stop", False))
        await pending.settle(STOPPING_SETTLE_TIMEOUT_S if stopping else SETTLE_TIMEOUT_S)
    done: bool = await _original["_commit_offsets"](self, offsets, start_new_transaction=start_new_transaction)
    return done


def _send_soon(self: Any, fut: Any) -> None:
    pending = unsettled(self.app)
    if pending is not None:
        pending.add(fut)
    _original["send_soon"](self, fut)


async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    if _delivered(self) is None:
        await _original["_add_gap"](self, tp, offset_from, offset_to)
    # else: gaps are what `Delivered.saw` found, not Faust's off-by-one ranges


async def _perform_seek(self: Any) -> None:
    await _original["perform_seek"](self)
    delivered = _delivered(self)
    if delivered is None:
        return
    acking = self.app.topics.acks_enabled_for
    tps = [tp for tp in self.assignment() if acking(tp.topic)]
    missing = [tp for tp in tps if self._committed_offset.get(tp) is None]
    if missing:
        # No committed offset (or 0, which Faust stores as none): start from the earliest record,
        # explicitly, so the commit has a known starting point.
        earliest: Mapping[Any, int] = await self.earliest_offsets(*missing)
        for tp in missing:
            offset = earliest.get(tp)
            if offset is not None:
                await self.seek(tp, offset)
                self._committed_offset[tp] = offset
    for tp in tps:
        delivered.reset(tp, self._committed_offset.get(tp))


async def _seek(self: Any, partition: Any, offset: int) -> None:
    await _original["seek"](self, partition, offset)
    delivered = _delivered(self)
    if delivered is not None:
        delivered.reset(partition, offset)


async def _seek_on_consumer_thread(self: Any, partition: Any, offset: int) -> None:
    # Faust's driver calls aiokafka's `seek` from the caller's thread, and it deletes the
    # partition's fetched records while the consumer thread may be iterating them: a KeyError in
    # aiokafka's `fetched_records` crashed the fetcher during a hand-over. On its own thread.
    await self._thread.call_thread(self._thread.seek, partition, offset)


def patch_consumer() -> None:
    """Apply the fix to Faust's `Consumer` (once; idempotent). RuntimeError on another Faust."""
    if faust.__version__ != SUPPORTED_FAUST:
        raise RuntimeError(
            f"attribution.streaming.commits fixes faust-streaming {SUPPORTED_FAUST}'s commit bookkeeping; "
            f"found {faust.__version__}: check the fix against it before changing the pin"
        )
    if _original:
        return
    for name, fn in (
        ("_new_offset", _new_offset),
        ("_add_gap", _add_gap),
        ("perform_seek", _perform_seek),
        ("seek", _seek),
        ("_commit_offsets", _commit_offsets),
    ):
        _original[name] = getattr(Consumer, name)
        setattr(Consumer, name, fn)
    _original["send_soon"] = Producer.send_soon
    Producer.send_soon = _send_soon  # type: ignore[method-assign]
    _original["_seek"] = ThreadDelegateConsumer._seek
    ThreadDelegateConsumer._seek = _seek_on_consumer_thread  # type: ignore[method-assign]


def install(app: faust.App) -> Delivered:
    """Patch the consumer class and note every record the app's consumer hands to a stream.
    Call before the app starts (the consumer takes the conductor's callback when it is made)."""
    patch_consumer()
    delivered = Delivered()
    app.attribution_delivered = delivered  # type: ignore[attr-defined]
    app.attribution_unsettled = Unsettled()  # type: ignore[attr-defined]
    conductor = app.topics
    deliver = conductor.on_message
    acking = conductor.acks_enabled_for

    async def on_message(message: Any) -> Any:
        if acking(message.topic):
            offsets = getattr(message, "offsets", None)  # a batch (`batches.RecordBatch`)
            if offsets is None:
                delivered.saw(message.tp, message.offset)
            else:
                delivered.saw_batch(message.tp, offsets)
        return await deliver(message)

    conductor.on_message = on_message
    return delivered
