"""The rest of a replay by user shard: what keeps a replay's memory flat whatever its input's size.

Every attribution rule reads and writes one user's state only (the stream partitions by user for
the same reason), so a replay may step the users one group at a time, as long as each user's
events stay in replay order and the outputs come out in the order the events would have made them.

A replay steps its events in memory until the users' states fill their budget
(`replay_states.SpilledStates` with spilling off). It then hands the rows not yet stepped to
`UserShards`, which:

1. writes each row to one of `SHARDS` files by its user (`shard_of`): each file holds its users'
   rows in replay order;
2. moves the expiry index's entries to the same shards (`park_entries`), so that the entries of
   users not being stepped wait on disk, not in memory;
3. gives back one shard at a time (`rows`, `entries`); the replay steps it with the same loop
   into an output spool (`spool`), each output prefixed by its event's row key and its place among
   that event's outputs;
4. merges the spools on that key into the sink (`merge_outputs`): the outputs come out exactly as
   the replay in memory would have emitted them.

The states stay in the one `SpilledStates` map: a shard's users come back from disk when their shard
is stepped, and the previous shards' states go to disk as the budget needs room. Each user's state
moves out and back about once, instead of once per event when users are stepped in time order
across a budget too small for them.

Memory: the budget of states, one shard's expiry entries, and a 64 KiB buffer per shard file
(16 MiB while rows are written and while spools are merged).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import orjson

from attribution.replay_input import Appender, Row
from attribution.replay_order import Workspace, encode_row, read_rows

#: Files the rows are spread over. Each is stepped with its users only: with U users held, about
#: U / SHARDS are in play at a time.
SHARDS = 256
#: The output topics, numbered in the spools.
OUTPUT_TOPICS = ("attributed-conversions", "unattributed-conversions", "piggyback-fires")
_TOPIC_NUMBER = {t: i for i, t in enumerate(OUTPUT_TOPICS)}
_BUFFER = 1 << 16

Entry = tuple[int, str]  # (when to look, user id), as in `expiry_index.ExpiryIndex`


class UserShards:
    """Rows, expiry entries and outputs of the users of a replay, by shard (see the module)."""

    def __init__(self, workspace: Workspace, count: int = SHARDS) -> None:
        self.count = count
        self._rows = [workspace.file("shard") for _ in range(count)]
        self._entries = [workspace.file("entries") for _ in range(count)]
        self._spools = [workspace.file("outputs") for _ in range(count)]
        self.events = [0] * count
        self.last_timestamp: int | None = None

    def shard_of(self, user_id: str) -> int:
        """The shard of a user; stable within one process (str hashes are salted per process)."""
        return hash(user_id) % self.count

    def write(self, rows: Iterable[Row]) -> None:
        """Spread `rows` (in replay order) over the shard files."""
        files: list[IO[bytes]] = []
        try:
            for path in self._rows:
                files.append(open(path, "wb", buffering=_BUFFER))  # noqa: SIM115 (closed below)
            writes = [f.write for f in files]
            count, events = self.count, self.events
            ts = self.last_timestamp
            for row in rows:
                k = hash(row[4].user_id) % count
                writes[k](encode_row(row))
                events[k] += 1
                ts = row[0]
            self.last_timestamp = ts
        finally:
            for f in files:
                f.close()

    def park_entries(self, entries: Iterable[Entry]) -> None:
        """Write expiry entries to their user's shard (given back by `entries`)."""
        by_shard: list[list[Entry]] = [[] for _ in range(self.count)]
        for entry in entries:
            by_shard[hash(entry[1]) % self.count].append(entry)
        for path, group in zip(self._entries, by_shard, strict=True):
            path.write_bytes(orjson.dumps(group))

    def entries(self, k: int) -> list[Entry]:
        """The expiry entries of shard `k` parked by `park_entries` (read once, then removed)."""
        path = self._entries[k]
        if not path.exists():
            return []
        entries = [(int(e[0]), str(e[1])) for e in orjson.loads(path.read_bytes())]
        path.unlink()
        return entries

    def rows(self, k: int) -> Iterator[Row]:
        """The rows of shard `k`, in replay order; the file is removed once read."""
        path = self._rows[k]
        yield from read_rows(path, _BUFFER)
        path.unlink()

    def spool(self, k: int) -> Spool:
        """Where the outputs of shard `k`'s events go (close it once the shard is stepped)."""
        return Spool(self._spools[k])

    def merge_outputs(self, channels: Mapping[str, Appender]) -> None:
        """Append every spool's outputs to `channels` in replay order, then remove the spools."""
        readers = [_spooled(p) for p in self._spools if p.exists()]
        targets = [channels[t] for t in OUTPUT_TOPICS]
        for *_, topic, record in heapq.merge(*readers):
            targets[topic].append(record)
        for p in self._spools:
            p.unlink(missing_ok=True)


class Spool:
    """The outputs of one shard, each line `ts rank input line seq topic record`."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb", buffering=_BUFFER)  # noqa: SIM115 (closed by `close`)

    def emit(self, row: Row, records: Sequence[tuple[str, bytes]]) -> None:
        """The encoded outputs of `row`'s event, in the order the engine made them."""
        ts, rank, index, line, _ = row
        write = self._file.write
        for seq, (topic, record) in enumerate(records):
            write(b"%d %d %d %d %d %d %b\n" % (ts, rank, index, line, seq, _TOPIC_NUMBER[topic], record))

    def close(self) -> None:
        self._file.close()


def _spooled(path: Path) -> Iterator[tuple[int, int, int, int, int, int, bytes]]:
    with open(path, "rb", buffering=_BUFFER) as f:
        for raw in f:
            ts, rank, index, line, seq, topic, record = raw.split(b" ", 6)
            yield int(ts), int(rank), int(index), int(line), int(seq), int(topic), record[:-1]
