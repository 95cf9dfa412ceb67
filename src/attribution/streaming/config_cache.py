"""Every worker's replica of the pixel and line-item config, read from the compacted topics.

Each worker reads *all* partitions of `pixels` and `line-items` from the beginning with its own
group-less consumer and keeps the last valid version per id (an invalid record is skipped here;
the config agent dead-letters it once, cluster-wide). `ready` is set once the cache has caught up
with the end offsets seen at start, so no event is judged against a half-loaded config.

Read-after-write: the cache records, per partition, the offset up to which it has applied the
topic, and wakes `wait_applied` callers after every batch; a writer (the HTTP API) publishes,
learns its record's offset from the broker's ack, and waits until the cache has applied it, so a
read that follows on the same worker sees the write.

Why not Faust's GlobalTable: its own docstring warns of an infinite recovery loop with several
app instances; a plain consumer is simpler and has no such failure mode.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attribution.app.config import ConfigFold
from attribution.contract import config_key, decode_config, reject_oversized
from attribution.domain import Config, LineItem, Pixel
from attribution.errors import RecordError
from attribution.kafka.follower import TopicFollower
from attribution.settings import Settings

log = logging.getLogger(__name__)


#: Header of a record the config agent re-published to keep a valid version on the compacted topic:
#: the offset of the record it answers (`Note`). Such a record is applied only if no write to its
#: id came after that offset (otherwise it is stale, and the agent re-publishes the current state).
RESTORES_HEADER = "attribution-restores"
#: Notes kept for the config agent (only unusual records make one): the oldest are dropped.
MAX_NOTES = 10_000


@dataclass(frozen=True, slots=True)
class Note:
    """What the config agent must do about one record, decided by the cache as it applied it.

    `kind`: `restore` (publish `value` - the id's current version, None for a delete - on `key`
    with `RESTORES_HEADER`, so compaction cannot leave an invalid or stale record as the key's last);
    `unknown_id` (a delete of an id that does not exist) and `unknown_pixel` (a line item naming
    pixels that do not exist): accepted, but logged as a warning and counted."""

    kind: str
    key: bytes
    value: bytes | None = None
    detail: str = ""


class ConfigCache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folded = ConfigFold()
        self.pixels: dict[int, Pixel] = self.folded.pixels
        self.line_items: dict[int, LineItem] = self.folded.line_items
        self.ready = asyncio.Event()
        self._topics = {settings.topic("pixels"): "pixels", settings.topic("line-items"): "line-items"}
        #: (actual topic, partition) -> offset of the next record to apply (last applied + 1)
        self.applied: dict[tuple[str, int], int] = {}
        self._progress = asyncio.Condition()
        #: (default topic, id) -> the bytes of its current version, and the offset of its last write
        self._raw: dict[tuple[str, int], bytes] = {}
        self._written: dict[tuple[str, int], int] = {}
        #: (default topic, partition, offset) -> what the config agent must do about that record
        self.notes: collections.OrderedDict[tuple[str, int, int], list[Note]] = collections.OrderedDict()
        #: (default topic, note kind) -> notes the config agent acted on (for /metrics)
        self.counted: collections.Counter[tuple[str, str]] = collections.Counter()

    @property
    def config(self) -> Config:
        """The current snapshot; rebuilt lazily after a change (config changes are rare)."""
        return self.folded.config

    def apply(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int = 0,
        offset: int = -1,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Apply one config record (default topic name). Only a valid record keyed by its id is a
        write (`contract.decode_config`, the config agent's rule too); any other leaves the cache
        as it was, and if its key names an id that has a version, a `restore` note asks the agent
        to re-publish that version, so that compaction keeps it."""
        try:
            reject_oversized(headers)
            ident, obj = decode_config(topic, key, value)
        except RecordError:
            named = config_key(key)
            if named is not None and (topic, named) in self._raw:
                self._note(topic, partition, offset, Note("restore", key or b"", self._raw[(topic, named)]))
            return
        restores = _restores(headers)
        if restores is not None and self._written.get((topic, ident), -1) > restores:
            # A write came after the record this one answers: keep it, and have it re-published.
            self._note(topic, partition, offset, Note("restore", key or b"", self._raw.get((topic, ident))))
            return
        self._written[(topic, ident)] = offset
        previous = self.folded.apply(topic, ident, obj)
        if obj is None:
            self._raw.pop((topic, ident), None)
            if previous is None and restores is None:
                self._note(topic, partition, offset, Note("unknown_id", key or b"", detail=f"{topic} {ident}"))
        else:
            self._raw[(topic, ident)] = value or b""
            if isinstance(obj, LineItem):
                unknown = sorted({link.id for link in obj.pixels if link.id not in self.pixels})
                if unknown:
                    detail = f"line item {ident} names unknown pixels {', '.join(map(str, unknown))}"
                    self._note(topic, partition, offset, Note("unknown_pixel", key or b"", detail=detail))

    def _note(self, topic: str, partition: int, offset: int, note: Note) -> None:
        if offset < 0:
            return  # not from the topic (a one-off load): nobody acts on it
        self.notes.setdefault((topic, partition, offset), []).append(note)
        if len(self.notes) > MAX_NOTES:
            self.notes.popitem(last=False)  # the oldest (a dict would scan the slots drops emptied)

    def take_notes(self, topic: str, partition: int, offset: int) -> list[Note]:
        """The notes of one record (default topic name), once: the config agent acts on them."""
        return self.notes.pop((topic, partition, offset), [])

    async def run(self) -> None:
        """Follow the config topics forever (cancel to stop)."""
        # The topics may be being created as the worker starts: wait a little for them.
        async with TopicFollower(self.settings, list(self._topics), wait_s=10.0) as follower:
            while True:
                await self.apply_fetched(await follower.fetch(timeout_ms=200, max_records=10_000))
                if not self.ready.is_set() and await follower.caught_up():
                    log.info("config loaded: %d pixels, %d line items", len(self.pixels), len(self.line_items))
                    self.ready.set()

    async def apply_fetched(self, batches: Mapping[Any, Sequence[Any]]) -> None:
        """Apply one fetch of the config topics (topic partition -> records, in offset order).
        Pixels first: a line item fetched with the pixels it names (the usual order of publishing)
        then finds them, and no `unknown_pixel` note is made for it."""
        for tp, messages in sorted(batches.items(), key=lambda b: self._topics[b[0].topic] != "pixels"):
            for m in messages:
                self.apply(self._topics[tp.topic], m.key, m.value, tp.partition, m.offset, m.headers)
        if batches:
            await self.advanced({(tp.topic, tp.partition): ms[-1].offset + 1 for tp, ms in batches.items() if ms})

    async def advanced(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Record that everything before these offsets ((actual topic, partition) -> next offset)
        has been applied, and wake the writers waiting for it."""
        self.applied.update(positions)
        async with self._progress:
            self._progress.notify_all()

    async def wait_applied(self, topic: str, partition: int, offset: int, timeout: float) -> bool:
        """Wait until the record at `offset` of (actual) `topic`/`partition` has been applied;
        False if that did not happen within `timeout` seconds."""

        def done() -> bool:
            return self.applied.get((topic, partition), 0) > offset

        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(done), timeout)
            except TimeoutError:
                return False
        return True


def _restores(headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    for k, v in headers or ():
        if k == RESTORES_HEADER and v.isdigit():
            return int(v)
    return None
