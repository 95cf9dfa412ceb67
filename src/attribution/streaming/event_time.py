"""Event-time bookkeeping per input partition: touch watermarks, touch lag and held conversions.

A conversion of partition p may be judged once no touch at or before its timestamp can still
arrive on p. Each partition of each topic is in timestamp order, so that is true of a touch source
(impressions, clicks) once its watermark (the latest timestamp read) has passed the conversion:
`conversion.timestamp < watermark`. Until every source has, the conversion is held in its user's
state (changelogged); this index only says which users to look at, and is rebuilt from the table
after a restart or rebalance.

A source that stays quiet must not stall conversions forever, but a source with unread records is
not quiet, it is *behind* (Kafka Streams' `max.task.idle.ms`, KIP-695). Each source is therefore
either behind (the consumer has not read everything the broker holds for it: its position is
below the high watermark the consumer learnt from its last fetch) or caught up since some
wall-clock time (`report_lag`, called by the app's timer with what the consumer knows). A held
conversion whose timestamp a source has not passed may be judged without that source only when the
source is caught up and `hold_ms` has gone by since both the source caught up and the conversion
arrived. While a source is behind, its conversions wait however long the backlog takes to drain;
the number held is bounded by back-pressure instead (`over_limit`: the app stops fetching the
partition's conversions until the touches catch up, see `flow`), per partition and per user: a
conversion that would make its user hold more than `MAX_HELD_PER_USER` is not handled, and the
partition's conversions are read again from it later (`cut`).

The touch watermarks are not persisted. A worker that takes a partition over (a restart, a
rebalance) starts from the committed offsets, and the watermarks are rebuilt from the touches it
reads from there; until then its held conversions wait, and a caught-up touch partition releases
them after the bounded wait. A persisted watermark could claim touches whose state writes a
killed worker never made durable: the watermark and the user's state are written to different
changelog partitions, and only the offsets committed after a flush say what is durable.

Wall-clock time is read by the caller (the glue), never here or in the domain: `now` is passed in.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from attribution.streaming.topics import REKEY_TOPIC

NEVER = -(2**62)
#: The touch sources whose watermarks decide when a conversion may be judged.
TOUCH_SOURCES = ("impressions", "clicks")
#: Sources whose lag also gates the bounded wait: the touch sources and the re-key topic (mis-keyed
#: touches forwarded to this partition), which has no watermark of its own.
REKEY_SOURCE = REKEY_TOPIC
LAG_SOURCES = (*TOUCH_SOURCES, REKEY_SOURCE)
#: Every source whose lag the consumer reports: the lag sources, and the conversions (pacing).
TRACKED_SOURCES = (*LAG_SOURCES, "conversions")
#: How far (event time) a touch source may run ahead of the conversions still to be judged
#: before it is paused (`EventTime.pace`); resumed at half of it.
MAX_TOUCH_LEAD_MS = 10 * 60_000
#: A tick not back after this long (seconds) is sent again (`EventTime.due_ticks`).
TICK_RESEND_S = 5.0
#: Conversions one user may hold. With the other bounds of a user's state (README, "How long a
#: user's state is kept") the largest state record stays under the topics' `max.message.bytes`.
#: A conversion read past it is not held: its partition's conversions are read again from it once
#: the user holds half as many (`EventTime.cut`).
MAX_HELD_PER_USER = 150


@dataclass
class PartitionTime:
    impressions: int = NEVER
    clicks: int = NEVER
    conversions: int = NEVER
    #: (timestamp, arrival seq, user key, arrival wall-clock s) of held conversions
    held: list[tuple[int, int, bytes, float]] = field(default_factory=list)
    #: when the tick in flight to this partition was sent (monotonic seconds), or None
    tick_sent: float | None = None
    #: per lag source: wall-clock time since which it has been caught up; absent while behind or
    #: before the first report (unknown counts as behind: never judge early on a guess)
    caught_up_since: dict[str, float] = field(default_factory=dict)
    #: per lag source: the offset after the last record handled
    next_offset: dict[str, int] = field(default_factory=dict)
    #: touch sources paused for running ahead of the conversions (`EventTime.pace`)
    paced: set[str] = field(default_factory=set)
    #: (offset, user key): the first record of the conversions partition not handled, a conversion
    #: of a user holding `MAX_HELD_PER_USER` (`EventTime.cut`); None when there is none
    cut: tuple[int, bytes] | None = None

    @property
    def touch_watermark(self) -> int:
        """Every touch of this partition at or before this time has been seen... plus one ms."""
        return min(self.impressions, self.clicks)

    @property
    def horizon(self) -> int:
        """No conversion judged from now on can be earlier than this (see domain.state)."""
        if self.conversions == NEVER:
            return NEVER
        return min(self.conversions, self.held[0][0]) if self.held else self.conversions

    @property
    def pace_reference(self) -> int | None:
        """How far the conversions of this partition have been read (event time): the latest one
        read, or after a takeover, before any is read, the latest held; None when neither. Touches
        may run up to a lead past it, so they can always pass every held conversion."""
        if self.conversions != NEVER:
            return self.conversions
        return max(h[0] for h in self.held) if self.held else None

    def may_judge(self, timestamp: int, arrived: float, now: float, hold_s: float) -> bool:
        """Whether a conversion held since `arrived` may be judged at wall-clock `now`: every touch
        source has passed it, or each that has not (and the re-key topic) has been caught up for
        `hold_s`, counted from when it caught up or the conversion arrived, whichever is later."""
        pending = [s for s in TOUCH_SOURCES if getattr(self, s) <= timestamp]
        if not pending:
            return True
        for source in (*pending, REKEY_SOURCE):
            since = self.caught_up_since.get(source)
            if since is None or now - max(since, arrived) < hold_s:
                return False
        return True


class EventTime:
    """Per-partition event time. Not thread-safe; the events agent runs with concurrency 1."""

    def __init__(self, hold_ms: int, max_held: int = 1000) -> None:
        self.hold_s = hold_ms / 1000
        self.max_held = max_held
        self.partitions: dict[int, PartitionTime] = {}
        self._seq = 0

    def of(self, partition: int) -> PartitionTime:
        pt = self.partitions.get(partition)
        if pt is None:
            pt = self.partitions[partition] = PartitionTime()
        return pt

    def saw_offset(self, partition: int, source: str, offset: int) -> None:
        """Record that the record at `offset` of a lag source's partition was handled."""
        self.of(partition).next_offset[source] = offset + 1

    def report_lag(self, partition: int, source: str, highwater: int | None, start: int, now: float) -> None:
        """What the consumer knows of a lag source's partition: the broker's high watermark (None
        before the first fetch) and the offset reading started from (the committed offset).
        Caught up means every record below the high watermark has been handled."""
        pt = self.of(partition)
        position = max(pt.next_offset.get(source, start), start)
        if highwater is not None and position >= highwater:
            pt.caught_up_since.setdefault(source, now)
        else:
            pt.caught_up_since.pop(source, None)

    def pace(self, partition: int, lead_ms: int = MAX_TOUCH_LEAD_MS) -> set[str]:
        """The touch sources of `partition` to keep paused: those more than `lead_ms` of event time
        ahead of the conversions read (while some are held, or the conversions partition has
        unread records), until they are within half of it. Touches far ahead would all have to be
        kept uncapped in the users' states (`domain.state.visible_touches`); pausing them keeps
        the topics of a partition close in event time, as reading in timestamp order would.

        Never a deadlock: a paused source has passed every held conversion, which the other source
        (not paused, being behind it) or the bounded wait releases; then the conversions are read
        on (back-pressure resumes them), moving the reference."""
        pt = self.of(partition)
        reference = pt.pace_reference
        pending = bool(pt.held) or "conversions" not in pt.caught_up_since
        if reference is None or not pending:
            pt.paced.clear()
            return set()
        for source in TOUCH_SOURCES:
            lead = getattr(pt, source) - reference
            if lead > lead_ms:
                pt.paced.add(source)
            elif lead <= lead_ms // 2:
                pt.paced.discard(source)
        return set(pt.paced)

    def saw_touch(self, partition: int, kind: str, timestamp: int) -> int | None:
        """Advance a touch watermark; returns the new `through` for releases when it moved."""
        pt = self.of(partition)
        before = pt.touch_watermark
        if kind == "click":
            pt.clicks = max(pt.clicks, timestamp)
        else:
            pt.impressions = max(pt.impressions, timestamp)
        after = pt.touch_watermark
        if after > before and pt.held and pt.held[0][0] < after:
            return after - 1
        return None

    def saw_conversion(self, partition: int, timestamp: int) -> bool:
        """Record a conversion's arrival; True when it can be judged now, False to hold it."""
        pt = self.of(partition)
        pt.conversions = max(pt.conversions, timestamp)
        return timestamp < pt.touch_watermark and not (pt.held and pt.held[0][0] <= timestamp)

    def held(self, partition: int, timestamp: int, user_key: bytes, now: float) -> None:
        self._seq += 1
        heapq.heappush(self.of(partition).held, (timestamp, self._seq, user_key, now))

    def held_count(self, partition: int) -> int:
        pt = self.partitions.get(partition)
        return len(pt.held) if pt is not None else 0

    def over_limit(self, partition: int) -> bool:
        """True when the partition holds more conversions than `max_held`, or its conversions were
        cut at a user still holding more than half of `MAX_HELD_PER_USER`: stop fetching its
        conversions (back-pressure) until this is False and `held_count` is at most half of
        `max_held`."""
        return self.held_count(partition) > self.max_held or self.cut_blocks(partition)

    def cut(self, partition: int, offset: int, user_key: bytes) -> None:
        """The conversion at `offset` of the partition's conversions would make `user_key` hold
        more than `MAX_HELD_PER_USER`: it and the records after it are not handled now. The
        caller stops fetching the partition; it is read again from `offset` once the user holds
        at most half as many (`cut_blocks`), which only the touches (or the bounded wait) bring
        about. Held conversions are bounded by pausing here too, never by judging early."""
        pt = self.of(partition)
        pt.cut = (offset, user_key)
        pt.next_offset["conversions"] = offset

    def cut_at(self, partition: int) -> int | None:
        """The offset the partition's conversions were cut at, until it is read again."""
        pt = self.partitions.get(partition)
        return None if pt is None or pt.cut is None else pt.cut[0]

    def read_again(self, partition: int, offset: int) -> bool:
        """A batch of the partition's conversions starting at `offset` arrived: True to handle it.
        While the partition is cut, a batch not starting at the cut was fetched before the cut
        took effect: False, it is dropped (read again later, from the cut). The batch starting at
        the cut ends the cut."""
        pt = self.partitions.get(partition)
        if pt is None or pt.cut is None:
            return True
        if offset != pt.cut[0]:
            return False
        pt.cut = None
        return True

    def cut_blocks(self, partition: int) -> bool:
        """Whether the partition's cut user still holds more than half of `MAX_HELD_PER_USER`."""
        pt = self.partitions.get(partition)
        if pt is None or pt.cut is None:
            return False
        user = pt.cut[1]
        return sum(1 for h in pt.held if h[2] == user) > MAX_HELD_PER_USER // 2

    def pop_through(self, partition: int, through: int) -> list[bytes]:
        """Users (in first-release order, without repeats) holding conversions at or before `through`."""
        heap = self.of(partition).held
        users: dict[bytes, None] = {}
        while heap and heap[0][0] <= through:
            users[heapq.heappop(heap)[2]] = None
        return list(users)

    def releasable_through(self, partition: int, now: float) -> int | None:
        """What a tick may release: the latest timestamp among held conversions that every touch
        source has passed or that may be judged without the sources that have
        not (`PartitionTime.may_judge`); None when there is none.

        The same answer as asking `may_judge` of each held conversion, computed with the sources'
        gates worked out once: a timestamp below both watermarks is passed; one between them waits
        for the lower source (and the re-key topic); one at or above both waits for both."""
        pt = self.of(partition)
        if not pt.held:
            return None
        imp, clk = pt.impressions, pt.clicks
        low, high = min(imp, clk), max(imp, clk)
        since_mid = self._gate(pt, ("impressions" if imp <= clk else "clicks",))
        since_high = self._gate(pt, TOUCH_SOURCES)
        if since_mid is None and since_high is None and pt.held[0][0] >= low:
            # Only what every touch source has passed could go, and nothing held has been passed:
            # no need to look at each held conversion (thousands while a backlog drains).
            return None
        hold_s = self.hold_s
        through = None
        for ts, _, _, arrived in pt.held:
            if through is not None and ts <= through:
                continue
            if ts >= low:
                since = since_mid if ts < high else since_high
                if since is None or now - max(since, arrived) < hold_s:
                    continue
            through = ts
        return through

    @staticmethod
    def _gate(pt: PartitionTime, sources: tuple[str, ...]) -> float | None:
        """The latest time since which all of `sources` and the re-key topic have been caught up;
        None when one of them is not."""
        latest = pt.caught_up_since.get(REKEY_SOURCE)
        if latest is None:
            return None
        for source in sources:
            since = pt.caught_up_since.get(source)
            if since is None:
                return None
            latest = max(latest, since)
        return latest

    def due_ticks(self, now: float) -> list[int]:
        """Partitions that need a tick: a held conversion may be judged, and no tick is in flight,
        or the one in flight was sent `TICK_RESEND_S` ago and has not come back (a tick read by a
        stream that skipped it, around a rebalance, would otherwise leave the partition's held
        conversions waiting for touches that may never come). A tick more is harmless."""
        due = []
        for p, pt in self.partitions.items():
            if not pt.held or (pt.tick_sent is not None and now - pt.tick_sent < TICK_RESEND_S):
                continue
            if self.releasable_through(p, now) is not None:
                pt.tick_sent = now
                due.append(p)
        return due

    def ticked(self, partition: int) -> None:
        """A tick of `partition` came back (the events agent handles it now)."""
        self.of(partition).tick_sent = None

    def waiting(self, now: float) -> list[str]:
        """Per partition holding conversions, one line saying what they wait for (the log)."""
        lines = []
        for p, pt in sorted(self.partitions.items()):
            if not pt.held:
                continue
            caught_up = ",".join(sorted(pt.caught_up_since)) or "none"
            lines.append(
                f"partition {p}: {len(pt.held)} held from {pt.held[0][0]}; impressions at {pt.impressions}, "
                f"clicks at {pt.clicks}, conversions at {pt.conversions}; caught up: {caught_up}; "
                f"paced: {','.join(sorted(pt.paced)) or 'none'}; tick in flight since: {pt.tick_sent}; "
                f"releasable through: {self.releasable_through(p, now)}; "
                f"conversions cut at: {'none' if pt.cut is None else pt.cut[0]}"
            )
        return lines

    def reset(self) -> None:
        """Forget everything (after a rebalance); the caller re-registers held conversions."""
        self.partitions.clear()
