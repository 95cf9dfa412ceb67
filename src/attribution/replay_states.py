"""The users' states of a replay in bounded memory: recent ones decoded, the others on disk.

A replay keeps every user whose state has not expired, and with the longest windows (90 days for
clicks and repeat counters) that is every user of a month of traffic: decoded, about 6 KB each.
`SpilledStates` is the map of states `replay` steps through. It holds the states used most
recently decoded in memory, up to an estimated `budget` of bytes; past it, the least recently
written are encoded with the state table's codec (`contract.state_codec`, the bytes the stream's
changelog holds) and written, a batch at a time, to a SQLite file in a temporary directory. Reading
a user that is on disk brings it back to memory; its row stays (only reads on the common path, no
delete) and is overwritten when it goes out again: a state in memory always wins over its row.
The codec is exact, so the outputs never depend on which users were in memory (only the engine's
shortcut, `UserState`'s touch index, is rebuilt on next use).

The estimate is `_estimate`: bytes per touch and per remembered id, measured on the replay
benchmark's traffic, not `sys.getsizeof` (too slow for every event).
"""

from __future__ import annotations

import itertools
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from attribution.contract.state_codec import decode_state, encode_state
from attribution.domain import UserState

if TYPE_CHECKING:
    _Closer = weakref.finalize[[sqlite3.Connection, tempfile.TemporaryDirectory[str]], "SpilledStates"]

#: Estimated bytes of decoded states kept in memory. The process peaks at about 1.8 times it (the
#: estimate undercounts the allocator's share; the rest of a replay takes about 20 to 40 MiB):
#: 226 MiB at 10 million events (BENCHMARKS.md, "Replay at scale").
BUDGET_BYTES = 128 * 2**20
#: What one SQLite connection may cache (its page cache counts in the process's memory).
_CACHE_KIB = 8 * 1024


def _estimate(state: UserState) -> int:
    """Bytes a decoded state takes in the process, about: a touch with 36-character ids about 380
    bytes with its strings (ints and the user id shared between touches, `contract.codec`), a dedup
    id about 220, the state with its tuples, its index and its entry in the map about 750 (the
    replay benchmark's traffic, measured as the peak memory of the process per user held)."""
    return 750 + 380 * len(state.touches) + 220 * len(state.processed)


class SpilledStates(MutableMapping[str, UserState]):
    """User id -> state, in memory up to `budget` estimated bytes, the rest on disk (see the module).

    Reading a state on disk moves it to memory; writing one makes it the most recently used.
    `close` (or dropping the map) removes the file. Not thread-safe.

    With `spilling` off, a write past the budget sets `full` instead of moving states to disk (the
    caller changes strategy, `replay_shards`, and turns `spilling` on)."""

    def __init__(self, budget: int = BUDGET_BYTES, *, spilling: bool = True) -> None:
        self.hot: dict[str, UserState] = {}
        self.budget = budget
        self.spilling = spilling
        self.full = False  # a write went past the budget while `spilling` was off
        self.used = 0  # estimated bytes of `hot`
        self.cold = False  # whether the file has rows (some possibly of states now in memory)
        self.spilled = 0  # states moved to disk, over the map's life (for benchmarks)
        self._db: sqlite3.Connection | None = None
        self._closer: _Closer | None = None

    # -- the mapping ----------------------------------------------------------------------------

    def get(self, key: str, default: UserState | None = None) -> UserState | None:  # type: ignore[override]
        state = self.hot.get(key)
        if state is not None:
            return state
        if self.cold:
            state = self._load(key)
            if state is not None:
                return state
        return default

    def __getitem__(self, key: str) -> UserState:
        state = self.get(key)
        if state is None:
            raise KeyError(key)
        return state

    def __setitem__(self, key: str, state: UserState) -> None:
        hot = self.hot
        old = hot.pop(key, None)  # re-inserted at the end: the dict's order is the order of use
        hot[key] = state  # wins over a row of it on disk
        # `_estimate(state) - _estimate(old)`, inlined: this runs for every event.
        used = self.used + 380 * len(state.touches) + 220 * len(state.processed)
        if old is None:
            used += 750
        else:
            used -= 380 * len(old.touches) + 220 * len(old.processed)
        self.used = used
        if used > self.budget:
            self._over()

    def _put(self, key: str, state: UserState) -> None:
        """`self[key] = state` for a key known not to be in memory."""
        self.hot[key] = state
        self.used += _estimate(state)
        if self.used > self.budget:
            self._over()

    def __delitem__(self, key: str) -> None:
        old = self.hot.pop(key, None)
        if old is not None:
            self.used -= _estimate(old)
        removed = self.cold and self._remove(key)
        if old is None and not removed:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        hot = list(self.hot)
        yield from hot
        if self._db is not None and self.cold:
            known = set(hot)
            yield from [user for (user,) in self._db.execute("SELECT user FROM states") if user not in known]

    def __len__(self) -> int:
        """The users held (counting those on disk reads the file: not for every event)."""
        if not self.cold:
            return len(self.hot)
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if key in self.hot:
            return True
        if not self.cold or self._db is None or not isinstance(key, str):
            return False
        return self._db.execute("SELECT 1 FROM states WHERE user = ?", (key,)).fetchone() is not None

    # -- memory and disk ------------------------------------------------------------------------

    def _over(self) -> None:
        if self.spilling:
            self._spill()
        else:
            self.full = True

    def _spill(self) -> None:
        """Move the least recently written states to disk until memory is 7/8 of the budget."""
        hot, target = self.hot, self.budget * 7 // 8
        rows: list[tuple[str, bytes]] = []
        # Never the state written last: its caller may still hold it to write it back.
        for key in list(itertools.islice(hot, min(len(hot) - 1, max(16, len(hot) // 8)))):
            if self.used <= target:
                break
            state = hot.pop(key)
            self.used -= _estimate(state)
            rows.append((key, encode_state(state)))
        self._connection().executemany("INSERT OR REPLACE INTO states VALUES (?, ?)", rows)
        self.cold = True
        self.spilled += len(rows)

    def _load(self, key: str) -> UserState | None:
        """The state of `key` from disk, brought to memory; None when it is not there."""
        assert self._db is not None  # `cold`: the file is open
        row = self._db.execute("SELECT state FROM states WHERE user = ?", (key,)).fetchone()
        if row is None:
            return None
        state = decode_state(key, row[0])
        self._put(key, state)
        return state

    def _remove(self, key: str) -> bool:
        """Delete the row of `key`; whether there was one."""
        assert self._db is not None  # `cold`: the file is open
        return self._db.execute("DELETE FROM states WHERE user = ?", (key,)).rowcount > 0

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            directory = tempfile.TemporaryDirectory(prefix="attribution-replay-states-")
            db = sqlite3.connect(Path(directory.name) / "states.sqlite", isolation_level=None)
            # A scratch file removed at the end: no journal, no syncing.
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            db.execute("CREATE TABLE states (user TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID")
            # One transaction for the file's life: nothing is committed (so nothing is written per
            # statement); SQLite writes pages out only when its cache is full.
            db.execute("BEGIN")
            self._db = db
            self._closer = weakref.finalize(self, _close, db, directory)
        return self._db

    def close(self) -> None:
        """Forget the states on disk and remove the file (the states in memory stay)."""
        if self._closer is not None:
            self._closer()
        self._db, self._closer, self.cold = None, None, False


def _close(db: sqlite3.Connection, directory: tempfile.TemporaryDirectory[str]) -> None:
    db.close()
    directory.cleanup()
