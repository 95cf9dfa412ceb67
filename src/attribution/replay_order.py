"""Replay order in bounded memory: merge inputs that are topic dumps, sort the others externally.

Both strategies yield the same `Row`s in the same order as sorting every row of every input in
memory would (see `attribution.replay_input` for the row and its key), and apply the same
configuration and dead letters:

* `Streaming` reads every input at once and merges them (a k-way merge on the row key) while the
  replay steps the events. It holds one row per input. It needs each input to be a topic dump
  (events in time order, configuration first); its readers raise `Unordered` as soon as one is
  not, and the replay then starts over with:
* `ExternalSort`, which reads the inputs one after the other, cuts their rows into runs of at most
  `run_events`, sorts each run in memory and writes it to a temporary file unless it is the only
  one, and then merges the runs (in several passes if there are more than `FAN_IN`). It holds one
  run while reading, then one row per run.

Inputs are read twice only when the first strategy gives up: a path is reopened, a list of lines
read again, and any other iterable of lines is copied to a temporary file while it is first read.
"""

from __future__ import annotations

import heapq
import itertools
import os
import struct
import tempfile
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from sys import intern
from typing import IO, Protocol

import orjson

from attribution.app.config import ConfigFold
from attribution.contract.codec import shared_ids
from attribution.domain import Conversion, Touch
from attribution.replay_input import Appender, Reader, Row

#: Rows held in memory per sorted run of the external sort (about 0.5 KiB each).
RUN_EVENTS = 100_000
#: Runs merged at once; more runs are merged in several passes (each an open file).
FAN_IN = 64

Input = str | os.PathLike[str] | Iterable[bytes]

_NL = orjson.OPT_APPEND_NEWLINE
_FIELDS = {
    0: attrgetter(*(f.name for f in fields(Touch))),
    1: attrgetter(*(f.name for f in fields(Conversion))),
}
_BUFFER = 1 << 20
_LENGTH = struct.Struct("<Q")


class Workspace:
    """A temporary directory made on first use and removed on `close`."""

    def __init__(self) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._names = itertools.count()

    def file(self, kind: str) -> Path:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="attribution-replay-")
        return Path(self._dir.name) / f"{kind}-{next(self._names)}"

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class Source(Protocol):
    def lines(self) -> Iterable[bytes]:
        """The input's lines from its start; may be called again after a partial read."""
        ...


class _PathSource:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def lines(self) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=0) as f:
            yield from split_lines(f)


def split_lines(f: IO[bytes]) -> Iterator[bytes]:
    """The lines of a binary stream as `bytes.splitlines` would cut the whole (at \\n, \\r\\n or \\r,
    without the line break), read a block at a time."""
    carry = b""
    while block := f.read(_BUFFER):
        data = carry + block if carry else block
        # The last line break that is surely complete: a CR as the very last byte may be half of a CRLF.
        cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1))
        if cut < 0:
            carry = data
            continue
        yield from data[: cut + 1].splitlines()
        carry = data[cut + 1 :]
    if carry:
        yield from carry.splitlines()


class _ListSource:
    def __init__(self, lines: Sequence[bytes]) -> None:
        self._lines = lines

    def lines(self) -> Sequence[bytes]:
        return self._lines


class _TeeSource:
    """An iterable read once: copied to a temporary file as it is read, so it can be read again.

    The copy stores each line with its length, so a line keeps its exact bytes, line breaks and all.
    """

    def __init__(self, lines: Iterable[bytes], workspace: Workspace) -> None:
        self._it = iter(lines)
        self._workspace = workspace
        self._copy: Path | None = None
        self._first: Generator[bytes] | None = None

    def lines(self) -> Iterator[bytes]:
        if self._copy is None:
            self._copy = self._workspace.file("input")
            self._first = self._copying(self._copy)
            return self._first
        if self._first is not None:
            self._first.close()  # flushes the copy where the first read stopped
            self._first = None
        return self._again(self._copy)

    def _copying(self, copy: Path) -> Generator[bytes]:
        with open(copy, "wb", buffering=_BUFFER) as out:
            for line in self._it:
                out.write(_LENGTH.pack(len(line)))
                out.write(line)
                yield line

    def _again(self, copy: Path) -> Iterator[bytes]:
        with open(copy, "rb", buffering=_BUFFER) as f:
            while head := f.read(_LENGTH.size):
                yield f.read(_LENGTH.unpack(head)[0])
        yield from self._it  # what the first read had not reached


def sources_of(inputs: Sequence[Input], workspace: Workspace) -> list[Source]:
    """Each input as a `Source`: a path, a list of lines, or any other iterable of lines."""
    out: list[Source] = []
    for item in inputs:
        if isinstance(item, (str, os.PathLike)):
            out.append(_PathSource(item))
        elif isinstance(item, (list, tuple)):
            out.append(_ListSource(item))
        else:
            out.append(_TeeSource(item, workspace))
    return out


class Order(Protocol):
    folded: ConfigFold

    def prime(self) -> None:
        """Read until the configuration is complete (before the first row is asked for)."""

    def rows(self) -> Iterator[Row]:
        """The event rows in replay order."""
        ...

    def finish(self) -> None:
        """Write the dead letters still held, in input order."""


class Streaming:
    """The k-way merge of inputs that are topic dumps; raises `Unordered` if one is not."""

    def __init__(self, sources: Sequence[Source], dead: Appender, keys: Mapping[str, str] | None = None) -> None:
        self.folded = ConfigFold()
        self._dead = dead
        # With several inputs read at once, each input's dead letters wait in a file so that
        # they come out in input order.
        self._spools = [] if len(sources) == 1 else [_Spool() for _ in sources]
        self._readers = [
            iter(Reader(i, s.lines(), self.folded, self._spools[i] if self._spools else dead, True, keys))
            for i, s in enumerate(sources)
        ]
        self._heads: list[Row | None] = []

    def prime(self) -> None:
        # A topic dump has its configuration before its first event, so once every input has
        # produced its first row the configuration is final.
        self._heads = [next(r, None) for r in self._readers]

    def rows(self) -> Iterator[Row]:
        live = [itertools.chain((h,), r) for h, r in zip(self._heads, self._readers, strict=True) if h is not None]
        self._heads = []
        if len(live) == 1:
            return live[0]
        return heapq.merge(*live)

    def finish(self) -> None:
        for spool in self._spools:
            for record in spool.drain():
                self._dead.append(record)


class ExternalSort:
    """All inputs read in order, cut into sorted runs of at most `run_events`, then merged."""

    def __init__(
        self,
        sources: Sequence[Source],
        dead: Appender,
        workspace: Workspace,
        run_events: int,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        if run_events < 1:
            raise ValueError("run_events must be >= 1")
        self._keys = keys
        self.folded = ConfigFold()
        self._sources = sources
        self._dead = dead
        self._workspace = workspace
        self._run_events = run_events
        self._runs: list[Path] = []
        self._memory: list[Row] = []

    def prime(self) -> None:
        chunk: list[Row] = []
        for i, source in enumerate(self._sources):
            for row in Reader(i, source.lines(), self.folded, self._dead, False, self._keys):
                chunk.append(row)
                if len(chunk) >= self._run_events:
                    self._runs.append(self._spill(chunk))
                    chunk = []
        if not self._runs:
            chunk.sort()
            self._memory = chunk
            return
        if chunk:
            self._runs.append(self._spill(chunk))
        while len(self._runs) > FAN_IN:
            groups = [self._runs[k : k + FAN_IN] for k in range(0, len(self._runs), FAN_IN)]
            self._runs = [self._merge_files(group) for group in groups]

    def rows(self) -> Iterator[Row]:
        if not self._runs:
            memory, self._memory = self._memory, []
            return iter(memory)
        return heapq.merge(*(read_rows(p) for p in self._runs))

    def finish(self) -> None:
        pass

    def _spill(self, chunk: list[Row]) -> Path:
        # Rows are unique on (input, line), so sorting never compares two events.
        chunk.sort()
        path = self._workspace.file("run")
        with open(path, "wb", buffering=_BUFFER) as f:
            write = f.write
            for row in chunk:
                write(encode_row(row))
        return path

    def _merge_files(self, paths: list[Path]) -> Path:
        if len(paths) == 1:
            return paths[0]
        path = self._workspace.file("run")
        with open(path, "wb", buffering=_BUFFER) as f:
            write = f.write
            for *_, raw in heapq.merge(*(_keyed_lines(p) for p in paths)):
                write(raw)
        for p in paths:
            p.unlink()
        return path


def encode_row(row: Row) -> bytes:
    """A row as one line of a run file (read back by `read_rows`)."""
    ts, rank, index, line, event = row
    return orjson.dumps((ts, rank, index, line, *_FIELDS[rank](event)), option=_NL)


def read_rows(path: Path, buffering: int = _BUFFER) -> Iterator[Row]:
    """The rows of a file of `encode_row` lines, in file order (user ids interned, as decoding does)."""
    loads = orjson.loads
    share = shared_ids().setdefault
    with open(path, "rb", buffering=buffering) as f:
        for line in f:
            r = loads(line)
            rank = r[1]
            r[6] = intern(r[6])  # the user id: third field of both events, after (ts, rank, input, line)
            if rank:
                yield r[0], rank, r[2], r[3], Conversion(*r[4:])
                continue
            # Shared as decoding shares them: the kind, and the advertiser, line item, creative and campaign ids.
            r[4] = intern(r[4])
            r[8], r[9], r[10], r[12] = share(r[8], r[8]), share(r[9], r[9]), share(r[10], r[10]), share(r[12], r[12])
            yield r[0], rank, r[2], r[3], Touch(*r[4:])


def _keyed_lines(path: Path) -> Iterator[tuple[int, int, int, int, bytes]]:
    loads = orjson.loads
    with open(path, "rb", buffering=_BUFFER) as f:
        for line in f:
            r = loads(line)
            yield r[0], r[1], r[2], r[3], line


class _Spool:
    """Encoded records kept in order: in memory up to 1 MiB, then in a temporary file."""

    def __init__(self) -> None:
        # Closed (and so removed) by `drain`.
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_BUFFER)  # noqa: SIM115

    def append(self, record: bytes, /) -> None:
        self._file.write(record + b"\n")

    def drain(self) -> Iterator[bytes]:
        self._file.seek(0)
        for line in self._file:
            yield line[:-1]
        self._file.close()
