"""Changelog recovery that applies records in batches (Faust's own loop pays per record).

Faust 0.15.3's `Recovery._slurp_changelogs` takes each changelog record with
`asyncio.wait_for(queue.get(), 5.0)` (a task, a timer and two loop turns), formats two debug
f-strings and builds a `Counter` over all partitions (`need_recovery`) for every record, and a
recovering worker reads one record per user (BENCHMARKS.md, "Recovery", has the cost measured). `BatchedRecovery` keeps that loop's semantics (offset bookkeeping, buffered
`apply_changelog_batch`, the end-of-recovery signal, the standby path) but takes every record
already queued in one turn and checks for the end of recovery once per batch.

The batch is handled without yielding to the event loop (`on_changelog_event` has no callback
here and returns without suspending), so a rebalance can not interleave with half a batch: it sees
the state before or after the batch, as it would see Faust's loop between two records.

Installed through Faust's documented `TableManager` setting (`app.py`); the faust-streaming version
is pinned and `tests/unit/test_recovery.py` checks the parent still has the method replaced.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Any

from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.utils.tracing import finish_span
from mode import Service

log = logging.getLogger(__name__)

#: Most records taken from the queue in one turn of the loop (Faust's recovery buffer is 1,000).
MAX_BATCH = 1000


class BatchedRecovery(Recovery):
    """Faust's `Recovery`, with the changelog loop replaced by a batched one (see module doc)."""

    @Service.task
    async def _slurp_changelogs(self) -> None:
        queue = self.tables.changelog_queue
        timeouts = 0
        while not self.should_stop:
            try:
                self.signal_recovery_end.clear()
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=5.0)
                except TimeoutError:
                    timeouts += 1
                    if self.should_stop:
                        return
                    await self._signal_end_if_done(timeouts)
                    continue
                timeouts = 0
                batch = [first]
                while len(batch) < MAX_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                await self._apply(batch)
                await self._signal_end_if_done(0)
                standby_ready = self._standbys_span is None and self.tables.standbys_ready
                if not standby_ready and not self.standby_remaining_total():
                    if self._standbys_span:
                        finish_span(self._standbys_span)
                        self._standbys_span = None
                    self.tables.on_standbys_ready()
            except Exception as exc:  # as Faust's loop: log and go on reading
                log.warning("Error in recovery %r", exc)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        # Faust resumes the stream partitions, seeks them to their committed offsets and only then
        # resumes the flow, which clears every stream queue: records delivered in between (the
        # consumer's flow is active since recovery began) were dropped, and the fetch position had
        # moved past them. Stopping the flow first closes that window; Faust resumes it at the end.
        self.app.consumer.stop_flow()
        await super().on_recovery_completed(generation_id)

    async def _resume_streams(self, generation_id: int = 0) -> None:
        # The same window when no table needed recovery.
        self.app.consumer.stop_flow()
        await super()._resume_streams(generation_id)

    async def _apply(self, batch: list[Any]) -> None:
        """Record each event's offset and buffer it, flushing a table's buffer when it is full."""
        now = monotonic()
        active_tps, standby_tps = self.active_tps, self.standby_tps
        tp_to_table, buffers, sizes = self.tp_to_table, self.buffers, self.buffer_sizes
        applied_active = 0
        for event in batch:
            message = event.message
            tp, offset = message.tp, message.offset
            if tp in active_tps:
                table, offsets = tp_to_table[tp], self.active_offsets
                size = sizes.get(tp) or sizes.setdefault(tp, table.recovery_buffer_size)
                self._active_events_received_at[tp] = now
                applied_active += 1
            elif tp in standby_tps:
                table, offsets = tp_to_table[tp], self.standby_offsets
                size = sizes.get(tp) or sizes.setdefault(tp, table.standby_buffer_size)
                self._standby_events_received_at[tp] = now
            else:
                # Faust's loop would apply this record to the previous record's table (see the
                # "XXX bug" note in faust/tables/recovery.py); a record of a partition this worker
                # no longer recovers is skipped instead.
                log.warning("recovery: record of untracked %s offset %d skipped", tp, offset)
                continue
            seen = offsets.get(tp)
            if seen is None or offset > seen:
                offsets[tp] = offset
                buf = buffers[table]
                buf.append(event)
                await table.on_changelog_event(event)
                if len(buf) >= size:
                    table.apply_changelog_batch(buf)
                    buf.clear()
                    self._last_flush_at = now
        if applied_active:
            self._sample_processing_time(monotonic(), applied_active)

    def _sample_processing_time(self, now: float, n: int) -> None:
        # Faust estimates the remaining recovery time from per-record processing times.
        last = getattr(self, "_last_active_event_processed_at", None)  # set when recovery starts
        if last is not None:
            times = self._processing_times
            times.append((now - last) / n)
            if len(times) > self.num_samples_required_for_estimate:
                times.popleft()
        self._last_active_event_processed_at = now

    async def _signal_end_if_done(self, timeouts: int) -> None:
        # As Faust: after two empty 5 s waits in a transactional app, skip aborted transactions.
        if timeouts > 1 and self.app.in_transaction:
            await self._skip_aborted_transactions()
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()

    async def _skip_aborted_transactions(self) -> None:
        offsets = self.active_offsets
        for tp, highwater in self.active_highwaters.items():
            if highwater is not None and offsets[tp] is not None and offsets[tp] < highwater:
                position = await self.app.consumer.position(tp)
                if position is not None and position >= highwater:
                    log.info("recovery: aborted transactions until highwater for %s", tp)
                    offsets[tp] = highwater


class BatchedTableManager(TableManager):
    """Faust's table manager with `BatchedRecovery` (the `TableManager` app setting)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BatchedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
