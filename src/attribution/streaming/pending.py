"""The users' states of batches whose outputs are not yet acknowledged, while the agent goes on.

The events agent's rules for a batch (docs/reliability.md, "Outputs before state"): its outputs
are acknowledged by the broker before the states that record them are written; the states of
successive batches are written in the batches' order; a batch is reported handled (its offsets may
be committed) and its Faust event acknowledged only once its states are written. Awaiting each
batch's acknowledgements in the agent kept the rules by stopping the agent for one produce round
trip per batch (the producer's linger and the broker's reply): a quarter to a third of the agent's
time once caught up, when batches are a few records (BENCHMARKS.md, "No collector pauses, states
written behind the outputs").

`PendingStates` keeps the same rules with the agent running ahead:

* `submit` queues a batch and returns. One writer task takes the queued batches in order, as many
  as are ready when it looks (a *group*: the first batch, whose sends it waits for, and the
  batches after it whose sends are all acknowledged already): it puts each batch's states in the
  store in turn (`put`), hands the group's changelog records to the producer, one call per
  partition with each key's last value (`send`), then calls each batch's `done` (report it
  handled, acknowledge its event), in order. So every batch is put after its own outputs and
  after every earlier batch, and `done` follows its changelog records.
* Until the writer has put them, a batch's states are read from here: `get` gives the latest value
  a queued batch wrote for a key (None for a delete), else the table's. The agent's next batches
  are stepped on them, exactly as if the agent had waited.
* At most `depth` batches are queued or being written: `submit` waits for room beyond that.
* A failure (an output or a state write refused) stops the writer: no batch from the failed one
  on is put or `done`, so no offset after it is committed, and `failed` is called once with the
  error (the app stops the worker, as it does when the agent crashes). `submit` raises it too.
* `drain` waits until every batch submitted so far is written. A rebalance needs no call: Faust
  waits for the unacknowledged events of the streams (`Consumer.wait_empty`) before it revokes
  partitions, and a batch's event is acknowledged by its `done`.

Why a group and not a task per batch: a chain of one task per batch, each awaiting the one before
it, moved one batch per few turns of the event loop and per changelog record batch (aiokafka takes
a partition's next record batch only once the one before it left in a produce request). Live,
a fetch makes a batch per partition of each topic, hundreds a second, and the chain could not keep
up: the agent waited for room at 8,000 events/s with half a core idle (BENCHMARKS.md, "One writer
for the states in flight").

A RocksDB store picks a partition's database from the Faust event being handled: `submit` keeps
the context it is called in (the agent's, handling the batch) and the writer puts the batch's
states in that context.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

#: (partition, writes, deletes) into the store, synchronously (`TableWriter.put`).
Put = Callable[[int, Mapping[bytes, bytes], Sequence[bytes]], None]
#: (partition, records) to the changelog: (key, value or None) in order (`TableWriter.send_records`).
Send = Callable[[int, Sequence[tuple[bytes, bytes | None]]], Awaitable[None]]
Done = Callable[[], Awaitable[Any]]


class _Batch(NamedTuple):
    seq: int
    partition: int
    writes: Mapping[bytes, bytes]
    deletes: Sequence[bytes]
    sent: Sequence[Awaitable[Any]]
    done: Done
    context: contextvars.Context


#: Batches queued or being written at most. A bound on how far the agent runs ahead of the
#: broker's acknowledgements (and on the memory of what it holds), not a pace: the writer takes
#: every queued batch at once.
DEPTH = 64


class PendingStates:
    """The queue of batches in flight and the states they wrote (see the module's docstring)."""

    def __init__(self, put: Put, send: Send, failed: Callable[[BaseException], Any], depth: int = DEPTH) -> None:
        """`put(partition, writes, deletes)` sets a batch's states in the store; `send(partition,
        records)` hands changelog records to the producer (`TableWriter.put`, `send_records`)."""
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.put = put
        self.send = send
        self.failed = failed
        self.depth = depth
        #: key -> (sequence number of the last queued batch that wrote it, value or None)
        self._latest: dict[bytes, tuple[int, bytes | None]] = {}
        self._queue: deque[_Batch] = deque()
        self._seq = 0
        self._error: BaseException | None = None
        self._writer: asyncio.Future[None] | None = None
        #: set whenever the writer finished some batches (wakes `submit` and `drain`)
        self._progress: asyncio.Event | None = None

    def __len__(self) -> int:
        """Batches queued or being written."""
        return len(self._queue)

    def get(self, table_get: Callable[[bytes], bytes | None], key: bytes) -> bytes | None:
        """The key's value as the batches submitted so far leave it."""
        latest = self._latest.get(key)
        if latest is not None:
            return latest[1]
        return table_get(key)

    async def submit(
        self,
        partition: int,
        writes: Mapping[bytes, bytes],
        deletes: Sequence[bytes],
        sent: Sequence[Awaitable[Any]],
        done: Done,
    ) -> None:
        """Write `writes` and `deletes` (keys of `partition`) once `sent` are all done and every
        batch submitted before is written, then call `done`. Returns at once unless `depth`
        batches are in flight; raises the error of a failure."""
        while self._error is None and len(self._queue) >= self.depth:
            await self._wait_progress()
        if self._error is not None:
            raise self._error
        self._seq += 1
        seq = self._seq
        latest = self._latest
        for key, value in writes.items():
            latest[key] = (seq, value)
        for key in deletes:
            latest[key] = (seq, None)
        self._queue.append(_Batch(seq, partition, writes, deletes, sent, done, contextvars.copy_context()))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())

    async def drain(self) -> None:
        """Wait until every batch submitted so far is written (raises a failure's error)."""
        target = self._seq
        while self._error is None and self._queue and self._queue[0].seq <= target:
            await self._wait_progress()
        if self._error is not None:
            raise self._error

    async def _wait_progress(self) -> None:
        if self._writer is None or self._writer.done():
            # (a writer cancelled with the app's tasks: the batches still queued are written now)
            self._writer = asyncio.ensure_future(self._write())
        if self._progress is None:
            self._progress = asyncio.Event()
        self._progress.clear()
        await self._progress.wait()

    def _advanced(self) -> None:
        if self._progress is not None:
            self._progress.set()

    async def _write(self) -> None:
        queue = self._queue
        try:
            while queue and self._error is None:
                await self._write_group(list(queue))
        except Exception as exc:
            self._error = exc
            self.failed(exc)
            self._advanced()

    async def _write_group(self, group: list[_Batch]) -> None:
        """Put, send and report done the batches of `group` (the queue's first ones, in order), up
        to the first one after the first whose outputs are not all acknowledged yet; on a failed
        output, those before it, then raise its error."""
        put = self.put
        written: list[_Batch] = []
        records: dict[int, dict[bytes, bytes | None]] = {}
        error: Exception | None = None
        for batch in group:
            if written and not all(isinstance(fut, asyncio.Future) and fut.done() for fut in batch.sent):
                break  # the batches ready go out now, not after the outputs of this one
            try:
                for fut in batch.sent:
                    await fut
            except Exception as exc:  # nothing from a failed batch on is put
                error = exc
                break
            batch.context.run(put, batch.partition, batch.writes, batch.deletes)
            written.append(batch)
            # Each key's last value: one record per key and group (a compacted changelog keeps the last).
            out = records.setdefault(batch.partition, {})
            out.update(batch.writes)
            for key in batch.deletes:
                out[key] = None
        for partition, values in records.items():
            await self.send(partition, list(values.items()))
        if written:
            latest = self._latest
            last = written[-1].seq
            for batch in written:
                for key in (*batch.writes, *batch.deletes):
                    entry = latest.get(key)
                    if entry is not None and entry[0] <= last:  # no later batch queued wrote it
                        del latest[key]
        queue = self._queue
        for batch in written:
            await batch.done()
            queue.popleft()
            self._advanced()
        if error is not None:
            raise error
