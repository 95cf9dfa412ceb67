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

* `submit` appends a batch to a chain. Its link awaits the link before it, then the batch's sends,
  then writes the batch's states (`write`), then calls the batch's `done` (report it handled,
  acknowledge its event). So writes and `done` calls happen in the order of `submit`, each after
  its own outputs and after every earlier batch's writes.
* Until its link has written them, a batch's states are read from here: `get` gives the latest
  value a batch in flight wrote for a key (None for a delete), else the table's. The agent's next
  batches are stepped on them, exactly as if the agent had waited.
* At most `depth` batches are in flight: `submit` waits for the oldest beyond that.
* A link that fails (an output or a state write refused) fails every link after it: none of them
  writes or calls `done`, so no offset after the failed batch is committed, and `failed` is called
  once with the error (the app stops the worker, as it does when the agent crashes). `submit`
  raises it too.
* `drain` waits until every batch in flight is written. A rebalance needs no call: Faust waits for
  the unacknowledged events of the streams (`Consumer.wait_empty`) before it revokes partitions,
  and a batch's event is acknowledged by its `done`.

A RocksDB store picks a partition's database from the Faust event being handled; each link is a
task made while the agent handles its batch, so it runs in that event's context, and `done` keeps
the event alive until then.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

Write = Callable[[int, Mapping[bytes, bytes], Iterable[bytes]], Awaitable[None]]
Done = Callable[[], Awaitable[Any]]


class _Batch(NamedTuple):
    partition: int
    writes: Mapping[bytes, bytes]
    deletes: Sequence[bytes]
    sent: Sequence[Awaitable[Any]]
    done: Done


#: Batches in flight at most: a produce round trip's worth of small live batches (near saturation
#: 8 gave a lower p99 than 16: BENCHMARKS.md).
DEPTH = 8


class PendingStates:
    """The chain of batches in flight and the states they wrote (see the module's docstring)."""

    def __init__(self, write: Write, failed: Callable[[BaseException], Any], depth: int = DEPTH) -> None:
        """`write(partition, writes, deletes)` writes a batch's states (`TableWriter.write`)."""
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.write = write
        self.failed = failed
        self.depth = depth
        #: key -> (sequence number of the last batch in flight that wrote it, value or None)
        self._latest: dict[bytes, tuple[int, bytes | None]] = {}
        self._links: deque[asyncio.Future[None]] = deque()
        self._seq = 0
        self._error: BaseException | None = None

    def __len__(self) -> int:
        """Batches in flight."""
        return sum(1 for link in self._links if not link.done())

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
        batches are in flight; raises the error of a failed link."""
        links = self._links
        while links and links[0].done():
            links.popleft().result()
        while len(links) >= self.depth:
            await links.popleft()
        if self._error is not None:
            raise self._error
        self._seq += 1
        seq = self._seq
        latest = self._latest
        for key, value in writes.items():
            latest[key] = (seq, value)
        for key in deletes:
            latest[key] = (seq, None)
        before = links[-1] if links else None
        link = asyncio.ensure_future(self._link(before, seq, _Batch(partition, writes, deletes, sent, done)))
        link.add_done_callback(self._settled)
        links.append(link)

    async def drain(self) -> None:
        """Wait until every batch submitted so far is written (raises a failed link's error)."""
        links = self._links
        while links:
            await links.popleft()

    async def _link(self, before: asyncio.Future[None] | None, seq: int, batch: _Batch) -> None:
        if before is not None:
            await asyncio.shield(before)  # raises its error: nothing after a failed batch is written
        if batch.sent:
            await asyncio.gather(*batch.sent)
        await self.write(batch.partition, batch.writes, batch.deletes)
        latest = self._latest
        for key in (*batch.writes, *batch.deletes):
            entry = latest.get(key)
            if entry is not None and entry[0] == seq:  # no later batch in flight wrote it
                del latest[key]
        await batch.done()

    def _settled(self, link: asyncio.Future[None]) -> None:
        if link.cancelled() or self._error is not None:
            return
        exc = link.exception()
        if exc is not None:
            self._error = exc
            self.failed(exc)
