"""Deleting users whose state has expired, so the store holds active users, not every user seen.

A user's state expires when nothing in it can change an answer any more (`domain.state.expires_at`:
its touches past their retention, its dedup ids and repeat counters past theirs, nothing held).
Once that time is before the horizon of the user's partition (the earliest timestamp a conversion
judged from now on can have), the state is deleted: in the stream `del users[key]` within stream
iteration, which writes a tombstone to the changelog, so a compacted changelog forgets the user too.

A quiet user whose state has only partly expired (a "one per user" repeat counter outlives the
touches and dedup ids) is written back without what expired (`domain.state.compact`, which never
changes an answer), at most once per `expiry_index.COMPACT_STEP_MS` of event time: the store
keeps a few dozen bytes for such a user instead of its stale touches.

`ExpiryIndex` says which users to look at without scanning the table: per partition, a heap of
`(time to look, key)` with one entry per user, pushed when a user's state is first written, at the
time its first part expires. An entry comes due no later than anything in the user's state
expires (a state only ever gains later timestamps), so it is checked against the current state
then (`expiry_index.due_state`): deleted if all of it expired, compacted if part of it did, and
pushed back to the next time to look. A user holding conversions is never expired: its entry is dropped when it comes
due and added again when the user's last held conversion is released (a backlog can hold thousands
of users for a long stretch of event time; re-checking each on a timer cost more than the rest of
the expiry work together, BENCHMARKS.md "Cost of the guards"). A user written by the current
record is looked at again `HELD_RECHECK_MS` later. Each
check is bounded per call (`CHECKS_PER_EVENT`), so deletion work per event stays small whatever
the backlog of expired users; entries that come due faster than that are simply deleted a little
later. The index is rebuilt from the table after recovery, reading each state's expiry (a floor of it,
`domain.state.latest_use_floor`: a user looked at early is looked at again later) and partition
from the first bytes of its encoded form (`contract.state_codec.read_index`).

`StateExpiry` is the stream's side (encoded states, the processor's `Result`); offline `replay`
uses `ExpiryIndex` directly on its map of decoded states. Nothing here imports Faust.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from attribution.contract.state_codec import decode_state, encode_state, has_held
from attribution.domain import EMPTY, Config, Limits, UserState
from attribution.domain.state import latest_use_floor
from attribution.expiry_index import CHECKS_PER_EVENT, HELD, ExpiryIndex, due_state, first_look


class StateExpiry:
    """The stream's expiry: encodes states with their expiry, indexes new users, picks the users
    of a partition to delete. `config` gives the current configuration snapshot."""

    def __init__(self, limits: Limits, config: Callable[[], Config], checks_per_event: int = CHECKS_PER_EVENT) -> None:
        self.limits = limits
        self.config = config
        self.index: ExpiryIndex[bytes] = ExpiryIndex(checks_per_event)
        #: Users deleted because their state expired (a metric).
        self.deleted = 0
        #: Users whose index entry was dropped because they held conversions: indexed again when
        #: their state no longer holds any (`encode`).
        self.held: set[bytes] = set()

    def encode(self, key: bytes, before: UserState, state: UserState, partition: int) -> bytes:
        """The encoded new state of a user, indexed when it is the user's first (`before` is
        `EMPTY`: nothing for this user in the table)."""
        retention = self.config().retention
        # For the index rebuilt after recovery, which may look at a user early (it is looked at
        # again), never late: a floor, since the exact time walks every touch on every write.
        expires = latest_use_floor(state, retention, self.limits)
        if before is EMPTY or (before.held and not state.held and key in self.held):
            self.held.discard(key)
            self.index.add(partition, key, first_look(state, retention, self.limits))
        return encode_state(state, expires, partition)

    def due(
        self,
        partition: int,
        horizon: int,
        get_state: Callable[[bytes], bytes | None],
        writes: Mapping[bytes, object],
        events: int = 1,
    ) -> tuple[list[bytes], dict[bytes, tuple[UserState, UserState]]]:
        """The users of `partition` to look at now (at most a few): those whose state expired
        before `horizon`, to delete, and quiet users whose state partly expired, as
        key -> (state, the state to write back without what expired: `expiry_index.due_state`).
        Users written by the current records (the keys of `writes`) are looked at again later.
        At most `checks_per_event` users per event of `events` (a batch's records) are looked at."""
        compacted: dict[bytes, tuple[UserState, UserState]] = {}
        if not self.index.any_due(partition, horizon):
            return [], compacted
        config, limits = self.config(), self.limits

        def check(key: bytes) -> int | None:
            if key in writes:
                return HELD  # just written: its entry goes back, to be looked at later
            raw = get_state(key)
            if not raw:
                return None
            if has_held(raw):
                self.held.add(key)  # dropped from the index until its conversions are released
                return None
            # With the current configuration (a pixel's window may have grown since it was written).
            state = decode_state(key.decode(), raw)
            look, kept = due_state(state, horizon, config.retention, limits)
            if kept is not state:
                compacted[key] = (state, kept)
            return look

        expired = self.index.due(partition, horizon, check, self.index.checks_per_call * events)
        self.deleted += len(expired)
        return expired, compacted

    def rebuild(self, items: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Re-index every user in the table (after recovery); returns how many. A state written
        by a version that did not record its partition (version 1) is not indexed: it is kept."""
        self.held.clear()
        entries: dict[int, list[tuple[int, bytes]]] = {}
        for key, raw in items:
            if raw and raw.startswith((b"[2,", b"[3,", b"[4,")):
                i = raw.index(b",", 3)
                j = raw.index(b",", i + 1)  # `read_index`, inlined: this runs once per user
                partition = int(raw[i + 1 : j])
                heap = entries.get(partition)
                if heap is None:
                    heap = entries[partition] = []
                heap.append((int(raw[3:i]), key))
        self.index.replace(entries)
        return sum(len(h) for h in entries.values())
