"""Offline replay: the engine over files of records, no broker, same rules as the stream.

Input: JSON lines `{"topic": NAME, "key": optional, "value": record | null | "raw text"}` with the
default topic names (server-side conversions carry a `token`, verified with the keys passed in,
those of the worker's settings). A string `value` is taken as the record's raw bytes (so bad payloads can be
replayed too); a null value on `pixels`/`line-items` deletes that id. Several inputs (for example
one dump per topic) replay as if they were one file, the inputs concatenated in the order given.

Order: config records first, in input order (the last valid write per id wins; an invalid one is a
dead letter and the previous version stays); then events by timestamp, touches before conversions
at equal timestamps, input order otherwise. Dead letters come out in input order; the partition of
a replayed record is 0 and its offset counts the records of its topic in its input, as if each
input had been produced to single-partition topics.

Memory is bounded whatever the input's size: inputs that are topic dumps (events in time order,
config first) are merged as they are read, others sorted in runs spilled to temporary files
(`attribution.replay_order`); outputs go to a sink as they are made (`attribution.replay_sink`).
A user whose state has expired (`domain.state.expires_at` before the current event's timestamp)
is dropped from the map of states by the stream's own `ExpiryIndex`, and a quiet user's state
loses the parts that expired (`expiry_index.due_state`), so replay holds the users active within
the retention windows, not every user of the input. Once those states fill their memory budget
(`attribution.replay_states`), the rest of the input is stepped one shard of users at a time
(`attribution.replay_shards`): the states of the users not being stepped wait in a temporary
file, each moved there about once, and the outputs are merged back into replay order.
`ReplayResult.users` holds the states left at the end (those on disk read back on demand).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from attribution import replay_shards
from attribution.contract import encode, topic_of
from attribution.domain import DEFAULT_LIMITS, EMPTY, Config, Limits, UserState, step
from attribution.expiry_index import ExpiryIndex, expire_due, first_look
from attribution.replay_input import Appender, Row, Unordered, config_id
from attribution.replay_order import RUN_EVENTS, ExternalSort, Input, Order, Streaming, Workspace, sources_of
from attribution.replay_shards import UserShards
from attribution.replay_sink import OUTPUT_FILES, FileSink, MemorySink
from attribution.replay_states import BUDGET_BYTES, SpilledStates

__all__ = ["OUTPUT_FILES", "FileSink", "MemorySink", "ReplayResult", "config_id", "replay", "replay_inputs"]

Progress = Callable[[int], None]
#: Where a row's encoded outputs go: (output topic, record) in the order the engine made them.
Emit = Callable[[Row, Sequence[tuple[str, bytes]]], None]


class Sink(Protocol):
    @property
    def channels(self) -> Mapping[str, Appender]: ...

    @property
    def counts(self) -> dict[str, int]: ...

    def reset(self) -> None: ...


@dataclass
class ReplayResult:
    """Encoded output record values by output topic, in emission order (when replayed into
    memory; empty lists otherwise), and the number of records per output topic."""

    outputs: dict[str, list[bytes]] = field(default_factory=lambda: {t: [] for t in OUTPUT_FILES})
    #: The states left at the end (`replay_states.SpilledStates` after a replay: those it moved to
    #: disk are read back one at a time, and the file is removed with the map).
    users: MutableMapping[str, UserState] = field(default_factory=dict)
    events: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    expired: int = 0  # users dropped from `users` because their state expired
    config: Config = field(default_factory=Config)  # the pixels and line items the events were judged with


def replay(
    lines: Iterable[bytes],
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress | None = None,
    *,
    run_events: int = RUN_EVENTS,
    keys: Mapping[str, str] | None = None,
    memory: int = BUDGET_BYTES,
) -> ReplayResult:
    """Replay JSON lines into memory; see the module docstring for the format and the ordering.
    `keys` verify the auction tokens of server-side conversions, as the stream's do."""
    sink = MemorySink()
    result = replay_inputs([lines], sink, limits, progress, run_events=run_events, keys=keys, memory=memory)
    result.outputs = sink.channels
    return result


def replay_inputs(
    inputs: Sequence[Input],
    sink: Sink,
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress | None = None,
    *,
    run_events: int = RUN_EVENTS,
    keys: Mapping[str, str] | None = None,
    memory: int = BUDGET_BYTES,
) -> ReplayResult:
    """Replay inputs (paths, lists of lines or iterables of lines) into `sink`, in bounded memory.

    Tries the streaming merge first; at the first sign that an input is not a topic dump, the
    sink is reset and the inputs are read again and sorted externally (runs of `run_events`).
    `memory` is the estimated bytes of users' states kept decoded (`replay_states`).
    """
    # Records, states and outputs form no reference cycles: the cyclic collector would only walk
    # millions of young objects again and again (a quarter of the run time on 1M events).
    collecting = gc.isenabled()
    gc.disable()
    workspace = Workspace()
    try:
        sources = sources_of(inputs, workspace)
        dead = sink.channels["dead-letters"]
        try:
            return _replay(Streaming(sources, dead, keys), sink, limits, progress, memory, workspace)
        except Unordered:
            sink.reset()
        order = ExternalSort(sources, dead, workspace, run_events, keys)
        return _replay(order, sink, limits, progress, memory, workspace)
    finally:
        workspace.close()
        if collecting:
            gc.enable()


def _replay(
    order: Order, sink: Sink, limits: Limits, progress: Progress | None, memory: int, workspace: Workspace
) -> ReplayResult:
    users = SpilledStates(memory, spilling=False)
    result = ReplayResult(users=users)
    order.prime()
    result.config = order.folded.config
    outs = sink.channels

    def emit(row: Row, records: Sequence[tuple[str, bytes]]) -> None:
        for topic, record in records:
            outs[topic].append(record)

    # Expiry state lives here: `_replay` may run twice in one replay (merge, then sort).
    steps = _Steps(result, limits, ExpiryIndex(), progress)
    rows = order.rows()
    steps.run(rows, 0, emit)
    if users.full:
        # The states outgrew their budget: the rest goes by user shard (`replay_shards`).
        users.spilling, users.full = True, False
        _by_shard(rows, steps, UserShards(workspace, replay_shards.SHARDS), outs)
    order.finish()
    result.counts = sink.counts
    return result


class _Steps:
    """The engine over rows: states in `result.users`, expiry in `index` (one partition per shard)."""

    def __init__(self, result: ReplayResult, limits: Limits, index: ExpiryIndex[str], progress: Progress | None):
        self.result = result
        self.limits = limits
        self.index = index
        self.progress = progress

    def run(self, rows: Iterator[Row], partition: int, emit: Emit) -> None:
        """Step `rows`, in which each user's rows are in replay order (other users' may come in any
        order between them); stops after the row that fills the states' budget while the map may
        not spill (`SpilledStates.full`)."""
        result, limits, index, progress = self.result, self.limits, self.index, self.progress
        config = result.config
        retention = config.retention
        users = result.users
        assert isinstance(users, SpilledStates)
        hot = users.hot.get  # the states in memory: nearly every event's
        n = result.events
        for row in rows:
            ts, event = row[0], row[4]
            uid = event.user_id
            before = hot(uid)
            if before is None and users.cold:
                before = users.get(uid)
            state, outputs = step(EMPTY if before is None else before, event, config, limits)
            users[uid] = state
            if before is None:
                index.add(partition, uid, first_look(state, retention, limits))
            # The horizon: no later event of this partition is earlier than this one.
            if index.any_due(partition, ts):
                result.expired += len(expire_due(index, users, ts, retention, limits, partition))
            if outputs:
                emit(row, [(topic_of(out), encode(out)) for out in outputs])
            n += 1
            if progress is not None and not n % 65536:
                progress(65536)
            if users.full:
                break
        result.events = n

    def sweep(self, partition: int, horizon: int) -> None:
        """Expire what the index holds of `partition` before `horizon`, then drop the partition."""
        retention, limits = self.result.config.retention, self.limits
        while self.index.any_due(partition, horizon):
            self.result.expired += len(expire_due(self.index, self.result.users, horizon, retention, limits, partition))
        self.index.heaps.pop(partition, None)


def _by_shard(rows: Iterator[Row], steps: _Steps, shards: UserShards, outs: Mapping[str, Appender]) -> None:
    """Step the rest of `rows` one user shard at a time (see `replay_shards`)."""
    shards.write(rows)
    shards.park_entries(steps.index.heaps.pop(0, []))
    last = shards.last_timestamp
    for k in range(shards.count):
        if not shards.events[k]:
            continue
        steps.index.replace({k: shards.entries(k)})
        spool = shards.spool(k)
        try:
            steps.run(shards.rows(k), k, spool.emit)
        finally:
            spool.close()
        if last is not None:
            steps.sweep(k, last)
    shards.merge_outputs(outs)
