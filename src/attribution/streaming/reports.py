"""Live hourly conversion reports: outcomes in, one compacted row per pixel, line item and hour out.

Two agents, off the events agent's path (it is unchanged; the reports cost only what the worker
spends consuming the outcome topics again):

1. `report_feed` reads `attributed-conversions` and `unattributed-conversions` (keyed by user)
   and forwards each record unchanged to the internal `report-updates` topic, keyed by its row
   key and on the partition `report_partition(row key)`, so that every outcome of a row reaches
   one partition, hence one worker.
2. `report_rows` reads `report-updates` and keeps the `reports` table (changelogged, partitioned
   like `report-updates`). A row's conversions are spread over `SHARDS` table records by a hash
   of the conversion id; each record holds its part of the row *and* the digests of the ids it
   counted (`contract.report_codec`). For each outcome: if its id is in its shard, it was counted
   already (redelivered, or re-published by the events agent after a crash) and nothing changes;
   otherwise the shard is written once with the id and the new counts. Either way the row
   (the sum of its shards) is published to `conversion-reports`, keyed by the row key.

Why that is exactly once, whatever crashes and rebalances do (delivery is at least once at every
hop): the count and the memory of what it counted change together in one table record, i.e. one
changelog write, so no state can have one without the other; a record redelivered after the
write is a duplicate, one redelivered before it is counted on the state without it. The offset of
`report-updates` is committed only after Faust has flushed the producer (changelog included), and
a changelog or `report-updates` write that fails stops the worker (`durability`). Publishing the
row on duplicates too repairs a row lost between the state write and a crash; the topic is
compacted, so the last row per key (the largest: rows only grow) is what a reader sees.

Expiry: the state of an hour older than `dedup_retention_ms` before the latest hour seen on a
partition (event time, from the conversions' timestamps) is deleted from the table (tombstones to
the changelog); the compacted topic keeps the row. An outcome for such an hour arriving later
is not counted (it would restart the row from zero and overwrite the full one); it is logged and
counted in `Reports.late`. Outcome timestamps come from conversions the events agent has already
accepted within its own retention, so in practice only a replay of old history reaches this.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from attribution.contract.report_codec import (
    DIGEST_BYTES,
    REPORT_TOPIC,
    contains,
    decode_shard,
    digest,
    encode_row,
    encode_shard,
    insert,
    parse_contribution,
)
from attribution.contract.state_codec import MAX_STATE_BYTES
from attribution.domain.hourly import Row, empty_row, merge
from attribution.domain.hourly import add as add_to_row

log = logging.getLogger(__name__)

__all__ = [
    "OUTCOME_TOPICS",
    "REPORT_TOPIC",
    "SHARDS",
    "UPDATES_TOPIC",
    "BatchUpdate",
    "ReportUpdate",
    "Reports",
    "report_partition",
]

#: Internal topic: outcome records re-keyed by row key.
UPDATES_TOPIC = "report-updates"
#: The outcome topics the report is made of.
OUTCOME_TOPICS = ("attributed-conversions", "unattributed-conversions")
#: Table records per row: a row holds up to SHARDS x ~92,000 conversions (1.4 million an hour)
#: with exact deduplication (each record under `MAX_STATE_BYTES`).
SHARDS = 16
#: Digests one shard record holds at most; beyond, a conversion is counted without being
#: remembered (logged: a redelivery of it could then count twice).
MAX_SHARD_IDS = (MAX_STATE_BYTES - 1000) // DIGEST_BYTES


def report_partition(row_key: str, partitions: int) -> int:
    """The `report-updates` partition (and table partition) of a row: stable across workers."""
    return zlib.crc32(row_key.encode()) % partitions


def table_key(row_key: str, shard: int) -> bytes:
    return f"{row_key}#{shard}".encode()


def _split(key: bytes) -> tuple[str, int]:
    """(row key, hour) of a table key."""
    row_key = key.decode().rsplit("#", 1)[0]
    return row_key, int(row_key.rsplit(":", 1)[1])


@dataclass
class ReportUpdate:
    """What one outcome does: table writes and deletes, and the row to publish (key, value)."""

    writes: dict[bytes, bytes] = field(default_factory=dict)
    deletes: list[bytes] = field(default_factory=list)
    row: tuple[bytes, bytes] | None = None
    counted: bool = False


@dataclass
class BatchUpdate:
    """What a batch of outcomes does: each table key's last value (`writes`) or its deletion
    (`deletes`), and each row's last value (`rows`, row key -> encoded row), in first-seen order."""

    writes: dict[bytes, bytes] = field(default_factory=dict)
    deletes: list[bytes] = field(default_factory=list)
    rows: dict[bytes, bytes] = field(default_factory=dict)


class Reports:
    """The logic of both report agents, without Faust: `route` for the feed, `apply` for the rows.

    `advertiser_of(pixel_id)` names a pixel's advertiser (for unattributed rows), from the
    worker's config cache."""

    def __init__(self, partitions: int, retention_ms: int, advertiser_of: Callable[[int], int | None]) -> None:
        self.partitions = partitions
        self.retention_ms = retention_ms
        self.advertiser_of = advertiser_of
        #: Per table partition, the latest hour an outcome was seen for (event time).
        self.latest_hour: dict[int, int] = {}
        #: Per table partition and hour, the table keys written: what expiry deletes, without a
        #: scan of the table. Rebuilt from the table's keys after every recovery.
        self.keys_by_hour: dict[int, dict[int, set[bytes]]] = {}
        self.counted = 0
        self.unreadable = 0
        self.late = 0
        self.duplicates = 0
        self.unremembered = 0

    def counts(self) -> dict[str, int]:
        """Outcomes this worker's report agents handled, by result (`/metrics`)."""
        return {
            "counted": self.counted,
            "duplicate": self.duplicates,
            "late": self.late,
            "unreadable": self.unreadable,
            "unremembered": self.unremembered,
        }

    def route(self, raw: bytes | None) -> tuple[bytes, int] | None:
        """(row key, partition) an outcome record goes to on `report-updates`; None (logged) for
        a record that is not an outcome."""
        if raw is None:
            return None
        try:
            c = parse_contribution(raw, _no_advertiser)
        except ValueError as exc:
            self.unreadable += 1
            log.warning("reports: not an outcome record, not counted: %s", exc)
            return None
        return c.key.encode(), report_partition(c.key, self.partitions)

    def apply(self, raw: bytes | None, partition: int, get: Callable[[bytes], bytes | None]) -> ReportUpdate:
        """Count one outcome from `report-updates` partition `partition` into its row.

        `get` reads the table. Idempotent: applying the same outcome again (after its writes)
        writes nothing and publishes the same row."""
        update = ReportUpdate()
        if raw is None:
            return update
        try:
            c = parse_contribution(raw, self.advertiser_of)
        except ValueError as exc:
            self.unreadable += 1
            log.warning("reports: not an outcome record, not counted: %s", exc)
            return update
        latest = self.latest_hour.get(partition)
        if latest is not None and c.hour < latest - self.retention_ms:
            self.late += 1
            log.warning("reports: %s is older than the report retention, not counted (row %s)", c.conversion_id, c.key)
            return update
        if latest is None or c.hour > latest:
            self.latest_hour[partition] = c.hour
            update.deletes = self._expire(partition, c.hour - self.retention_ms)
        d = digest(c.conversion_id)
        shard = d[0] % SHARDS
        own = table_key(c.key, shard)
        stored = get(own)
        part, ids = decode_shard(stored) if stored is not None else (empty_row(c), b"")
        if contains(ids, d):
            self.duplicates += 1
        else:
            part = add_to_row(part, c)
            if len(ids) // DIGEST_BYTES < MAX_SHARD_IDS:
                ids = insert(ids, d)
            else:
                self.unremembered += 1
                log.error("reports: row %s shard %d is full: %s counted, not remembered", c.key, shard, c.conversion_id)
            update.writes[own] = encode_shard(part, ids)
            update.counted = True
            self.counted += 1
            self.keys_by_hour.setdefault(partition, {}).setdefault(c.hour, set()).add(own)
        update.row = (c.key.encode(), encode_row(self._total(c.key, shard, part, get)))
        return update

    def apply_batch(
        self, raws: Iterable[bytes | None], partition: int, get: Callable[[bytes], bytes | None]
    ) -> BatchUpdate:
        """`apply` each outcome of a batch of `report-updates` partition `partition`, in order,
        each reading what the earlier ones wrote; the table keys and rows changed, once each.

        Writing a key once per batch is what one write per outcome would leave, and so is
        publishing a row once: rows only grow and the topic is compacted. The count and the
        memory of what it counted still change together, in one table record."""
        changed: dict[bytes, bytes | None] = {}

        def read(key: bytes) -> bytes | None:
            return changed[key] if key in changed else get(key)

        rows: dict[bytes, bytes] = {}
        for raw in raws:
            update = self.apply(raw, partition, read)
            changed.update(dict.fromkeys(update.deletes))
            changed.update(update.writes)
            if update.row is not None:
                rows[update.row[0]] = update.row[1]
        return BatchUpdate(
            writes={k: v for k, v in changed.items() if v is not None},
            deletes=[k for k, v in changed.items() if v is None],
            rows=rows,
        )

    def _total(self, row_key: str, shard: int, part: Row, get: Callable[[bytes], bytes | None]) -> Row:
        total = part
        for s in range(SHARDS):
            if s != shard:
                stored = get(table_key(row_key, s))
                if stored is not None:
                    total = merge(total, decode_shard(stored)[0])
        return total

    def _expire(self, partition: int, horizon: int) -> list[bytes]:
        """The table keys of `partition` whose hour is before `horizon`, forgotten here."""
        hours = self.keys_by_hour.get(partition, {})
        out: list[bytes] = []
        for hour in [h for h in hours if h < horizon]:
            out += sorted(hours.pop(hour))
        return out

    def rebuild(self, keys: Iterable[bytes]) -> None:
        """The latest hour and the keys per partition and hour, from the table's keys (all local
        partitions) after a recovery."""
        self.latest_hour.clear()
        self.keys_by_hour.clear()
        for key in keys:
            row_key, hour = _split(key)
            p = report_partition(row_key, self.partitions)
            self.keys_by_hour.setdefault(p, {}).setdefault(hour, set()).add(key)
            if hour > self.latest_hour.get(p, -1):
                self.latest_hour[p] = hour


def _no_advertiser(pixel_id: int) -> None:
    return None
