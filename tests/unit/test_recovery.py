"""Batched changelog recovery (`streaming.recovery`): Faust's bookkeeping, records applied in batches."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
from faust.tables.recovery import Recovery
from faust.types import TP

from attribution.streaming.recovery import BatchedRecovery, BatchedTableManager


class _Table:
    recovery_buffer_size = 3
    standby_buffer_size = 2

    def __init__(self) -> None:
        self.applied: list[list[int]] = []
        self.seen: list[int] = []

    def apply_changelog_batch(self, batch: list[Any]) -> None:
        self.applied.append([e.message.offset for e in batch])

    async def on_changelog_event(self, event: Any) -> None:
        self.seen.append(event.message.offset)


def _event(tp: TP, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))


def _recovery() -> BatchedRecovery:
    app = faust.App("recovery-test", broker="kafka://127.0.0.1:1", autodiscover=False, TableManager=BatchedTableManager)
    recovery = app.tables.recovery
    assert isinstance(recovery, BatchedRecovery)
    return recovery


def test_the_app_setting_installs_the_batched_recovery_as_the_one_changelog_task() -> None:
    recovery = _recovery()
    # Faust's parent loop is replaced by name, not run beside ours.
    assert "_slurp_changelogs" in type(recovery)._tasks[type(recovery)._get_class_id()]
    assert type(recovery)._slurp_changelogs is not Recovery._slurp_changelogs


async def test_a_batch_records_offsets_skips_replayed_ones_and_flushes_full_buffers() -> None:
    recovery = _recovery()
    active, standby, gone = TP("c", 0), TP("c", 1), TP("c", 2)
    table, standby_table = _Table(), _Table()
    recovery.tp_to_table.update({active: table, standby: standby_table})  # type: ignore[dict-item]
    recovery.active_tps.add(active)
    recovery.standby_tps.add(standby)
    recovery._set_recovery_started()

    await recovery._apply([_event(active, o) for o in (0, 1, 1, 2, 3)] + [_event(gone, 9), _event(standby, 5)])

    assert recovery.active_offsets[active] == 3
    assert recovery.standby_offsets[standby] == 5
    assert table.seen == [0, 1, 2, 3]  # the replayed offset 1 and the untracked partition skipped
    assert table.applied == [[0, 1, 2]]  # the active buffer (3) flushed once; the rest waits
    assert [e.message.offset for e in recovery.buffers[table]] == [3]
    assert standby_table.seen == [5]
    assert standby_table.applied == []
    assert gone not in recovery.active_offsets
    assert gone not in recovery.standby_offsets


async def test_recovery_ends_once_every_active_partition_reached_its_highwater() -> None:
    recovery = _recovery()
    tp = TP("c", 0)
    table = _Table()
    recovery.tp_to_table[tp] = table  # type: ignore[assignment]
    recovery.active_tps.add(tp)
    recovery.active_highwaters[tp] = 1
    recovery.active_offsets[tp] = -1
    recovery._set_recovery_started()

    await recovery._apply([_event(tp, 0)])
    await recovery._signal_end_if_done(0)
    assert not recovery.signal_recovery_end.is_set()

    await recovery._apply([_event(tp, 1)])
    await recovery._signal_end_if_done(0)
    assert recovery.signal_recovery_end.is_set()
    assert table.applied == [[0, 1]]  # the partial buffer is flushed at the end
