"""States written behind their outputs (`streaming.pending`) leave what waiting for each batch would:
whatever order the broker acknowledges the batches' outputs in and however many are in flight, every
read sees the batches submitted before it, the table ends as if each batch were written in turn,
and no batch is written before its outputs are acknowledged or before an earlier batch, nor
reported handled before the changelog holds its states."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.streaming.pending import PendingStates

KEYS = [b"a", b"b", b"c", b"d"]

#: A batch: per key written a value, or None for a delete (keys absent: untouched).
batch = st.dictionaries(st.sampled_from(KEYS), st.none() | st.binary(min_size=1, max_size=3), max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(batch, min_size=1, max_size=12),
    acks=st.randoms(use_true_random=False),
    depth=st.integers(1, 6),
    initial=st.dictionaries(st.sampled_from(KEYS), st.binary(min_size=1, max_size=3)),
)
def test_reads_and_the_final_table_equal_writing_each_batch_in_turn(
    batches: list[dict[bytes, bytes | None]], acks: Any, depth: int, initial: dict[bytes, bytes]
) -> None:
    asyncio.run(_run(batches, acks, depth, initial))


async def _run(batches: list[dict[bytes, bytes | None]], acks: Any, depth: int, initial: dict[bytes, bytes]) -> None:
    table = dict(initial)
    expected = dict(initial)
    written: list[int] = []  # batch numbers, in the order the chain wrote them
    acked: set[int] = set()
    handled: list[int] = []
    outputs: dict[int, asyncio.Future[None]] = {}

    changelog = dict(initial)  # the changelog as compaction keeps it: each key's last record

    def put(partition: int, writes: Mapping[bytes, bytes], deletes: Sequence[bytes]) -> None:
        # The chain puts the batches in order: the number of the next one not yet put.
        n = len(written)
        assert n in acked, f"batch {n} written before its outputs were acknowledged"
        written.append(n)
        table.update(writes)
        for key in deletes:
            table.pop(key, None)

    async def send(partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            if value is None:
                changelog.pop(key, None)
            else:
                changelog[key] = value

    pending = PendingStates(put, send, lambda exc: None, depth)

    def ack_some() -> None:
        waiting = [n for n, f in outputs.items() if not f.done()]
        for n in acks.sample(waiting, acks.randint(0, len(waiting))):
            acked.add(n)
            outputs[n].set_result(None)

    for n, b in enumerate(batches):
        for key in KEYS:  # every read sees the batches submitted before
            assert pending.get(table.get, key) == expected.get(key)
        writes = {k: v for k, v in b.items() if v is not None}
        deletes = [k for k, v in b.items() if v is None]
        outputs[n] = asyncio.get_running_loop().create_future()

        async def done(n: int = n) -> None:
            # Reported handled (its offsets committable) only once the changelog holds its states.
            assert changelog == table, f"batch {n} done before its states were sent"
            handled.append(n)

        submitting = asyncio.ensure_future(pending.submit(0, writes, deletes, [outputs[n]], done))
        while not submitting.done():  # depth batches in flight: acknowledge until it is taken
            ack_some()
            await asyncio.sleep(0)
        await submitting
        expected.update(writes)
        for key in deletes:
            expected.pop(key, None)
        ack_some()
        for _ in range(acks.randint(0, 3)):
            await asyncio.sleep(0)

    for n, f in outputs.items():
        if not f.done():
            acked.add(n)
            f.set_result(None)
    await pending.drain()

    assert written == list(range(len(batches)))
    assert handled == list(range(len(batches)))
    assert table == expected
    assert changelog == expected
    for key in KEYS:
        assert pending.get(table.get, key) == expected.get(key)
    assert len(pending) == 0
