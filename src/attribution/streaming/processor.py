"""The per-record glue between Kafka messages and the engine, free of Faust so it is unit-testable.

`Processor.handle` takes one consumed message and returns what the agent must do: the state writes
(usually one), the output records to send, or a re-key forward. `Processor.handle_batch` does the
same for a fetched batch of one partition's records, in offset order, into one `Result`: a user
written by several records of the batch is written once, with its last state (the way Kafka
Streams' record cache collapses changelog writes). Neither raises for a bad record.

Event time: conversions are held until the touch streams of their partition have passed them, or
until those that have not are caught up and the bounded wait is over (see `event_time`).
Releases happen while handling a touch that moves a watermark, or a tick the app's timer sends to
the partition, so that every table write happens inside stream iteration, on the partition the
users' state belongs to.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from attribution.contract import EVENT_TOPICS, dead_letter, decode, decode_config, encode, reject_oversized, topic_of
from attribution.contract.state_codec import decode_state, has_held
from attribution.domain import (
    EMPTY,
    AttributedConversion,
    Config,
    Conversion,
    Forgotten,
    LineItem,
    Output,
    Pixel,
    Touch,
    UnattributedConversion,
    UserState,
    hold,
    release,
    step,
)
from attribution.errors import InvalidHeader, InvalidJson, RecordError
from attribution.settings import Settings
from attribution.streaming.event_time import MAX_HELD_PER_USER, TRACKED_SOURCES, EventTime
from attribution.streaming.expiry import StateExpiry
from attribution.streaming.topics import REKEY_TOPIC, TICK_TOPIC

Headers = Sequence[tuple[str, bytes]]
Send = tuple[str, bytes | None, bytes]
#: What an output counts as: ("outcome", "attributed", attribution), ("outcome", "unattributed",
#: reason) or ("dead_letter", code).
Label = tuple[str, ...]
StateGetter = Callable[[bytes], bytes | None]

#: Header of a re-keyed record naming its original topic (default name).
SOURCE_HEADER = "attribution-source"


@dataclass(slots=True)
class Result:
    writes: dict[bytes, bytes] = field(default_factory=dict)  # user key -> new encoded state
    sends: list[Send] = field(default_factory=list)  # (output topic default name, key, value)
    #: per send, what `/metrics` counts once the broker acknowledges it (`output_label`), or None
    labels: list[Label | None] = field(default_factory=list)
    #: records to forward to the re-key topic, keyed by their user: (user key, value, headers)
    rekeys: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    partition: int = 0  # the input partition of the message (every write is to its users)
    #: users whose state expired (`expiry`): a tombstone each; never also in `writes`
    deletes: list[bytes] = field(default_factory=list)
    #: the offset of the first record not handled (the batch was cut there, or dropped: fetched
    #: after its partition's conversions were cut, see `EventTime.cut`); None when all were
    unhandled_from: int | None = None
    #: the offset the batch was cut at now: stop fetching the partition's conversions, read them
    #: again from here once `EventTime.cut_blocks` is False; None when the batch was not cut
    cut_at: int | None = None
    #: while records are handled: user key -> (state before the first change, latest state);
    #: encoded into `writes` once at the end, so a user changed by several records of a batch
    #: is encoded once
    changed: dict[bytes, tuple[UserState, UserState]] = field(default_factory=dict, repr=False)


class _Message(NamedTuple):
    """One message given to `Processor.handle` (a `ConsumedRecord`)."""

    key: bytes | None
    value: bytes | None
    offset: int
    headers: Headers | None


class ConsumedRecord(Protocol):
    """What `handle_batch` reads of a consumed record (aiokafka's and Faust's records have it)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def offset(self) -> int: ...
    @property
    def headers(self) -> Headers | None: ...


class Processor:
    def __init__(
        self,
        settings: Settings,
        names: Mapping[str, str],
        config: Callable[[], Config],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`names` maps actual (prefixed) topic names to default names; `config` gives the snapshot."""
        self.limits = settings.limits
        self.token_keys = settings.token_key_map  # verify server-side conversions' tokens
        self.names = names
        self.config = config
        self.clock = clock
        self.time = EventTime(settings.hold_ms, settings.max_held)
        #: user key -> decoded state, most recently used last: what the table holds for the
        #: user, as this worker last read or wrote it. While the worker
        #: keeps its partitions only its events agent writes their users, so an entry is the
        #: table's value and the next event of a recent user skips the table read and the
        #: decoding (the largest cost of our own per-event code). Forgotten at every rebalance
        #: (`forget_states`, `rebuild`): another worker may have written the users meanwhile.
        #: An OrderedDict, not a dict: dropping a dict's first key (`next(iter(d))`) scans past the
        #: slots its earlier drops left empty, some 25 µs per new user once 100,000 are cached
        #: (27% of the samples of a worker at 16,500 events/s, BENCHMARKS.md); the linked order drops it at once.
        self._decoded: OrderedDict[bytes, UserState] = OrderedDict()
        #: decoded states kept (least recently used dropped; `ATTRIBUTION_STATE_CACHE`)
        self.state_cache_size = settings.state_cache
        self.forgotten = Forgotten()  # what the state's caps dropped (metrics)
        self.expiry = StateExpiry(self.limits, config)

    def handle(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        offset: int,
        headers: Headers | None,
        get_state: StateGetter,
    ) -> Result:
        """Decode, step, encode one input message."""
        return self.handle_batch(topic, partition, (_Message(key, value, offset, headers),), get_state)

    def handle_batch(
        self,
        topic: str,
        partition: int,
        records: Sequence[ConsumedRecord],
        get_state: StateGetter,
        cuts: bool = False,
    ) -> Result:
        """Decode, step, encode the records of one partition, in order, as `handle` would one by
        one, into one `Result`: each user's last state, every output in record order.

        With `cuts` (a caller that can stop fetching the conversions partition and read it again
        from an offset), a conversion that would make its user hold more than
        `MAX_HELD_PER_USER` ends the batch there (`Result.cut_at`, `EventTime.cut`); without, the
        user's earliest held conversion is judged at once instead."""
        result = Result(partition=partition)
        name = self.names.get(topic, topic)
        if name == "conversions" and records and not self.time.read_again(partition, records[0].offset):
            result.unhandled_from = records[0].offset  # fetched before the cut: read again later
            return result
        handle = self._handle
        n = 0
        for r in records:
            if not handle(name, topic, r, partition, get_state, result, cuts):
                result.unhandled_from = result.cut_at = r.offset
                break
            n += 1
        # Expiry once per batch, with the batch's budget of checks (`expiry`): as of its last record.
        self._expire(partition, get_state, result, n)
        self._encode(result)
        return result

    def _encode(self, result: Result) -> None:
        """Each changed user's latest state, encoded into `result.writes`."""
        encode_state = self.expiry.encode
        remember = self._remember
        for user_key, (before, state) in result.changed.items():
            result.writes[user_key] = encode_state(user_key, before, state, result.partition)
            remember(user_key, state)
        result.changed.clear()

    def _handle(
        self,
        name: str,
        topic: str,
        r: ConsumedRecord,
        partition: int,
        get_state: StateGetter,
        result: Result,
        cuts: bool = False,
    ) -> bool:
        """Handle one record into `result`; False when it was not (a cut: `handle_batch`)."""
        key, value, offset, headers = r.key, r.value, r.offset, r.headers
        if name == TICK_TOPIC:
            self.time.ticked(partition)
            through = self.time.releasable_through(partition, self.clock())
            if through is not None:
                self._release(partition, through, get_state, result)
            return True
        if name in TRACKED_SOURCES:
            self.time.saw_offset(partition, name, offset)  # how far this source is read (`event_time`)
        rekeyed = name == REKEY_TOPIC
        try:
            reject_oversized(headers)  # cut short while its batch was decompressed: not a record
            if rekeyed:
                name = _source(headers)
            if value is None:
                raise InvalidJson("record: expected a JSON object, got null", code="not_an_object")
            record = decode(name, value, self.token_keys)
        except RecordError as exc:
            result.sends.append(("dead-letters", key, encode(dead_letter(exc, topic, partition, offset, value))))
            result.labels.append(("dead_letter", exc.code))
            return True
        assert not isinstance(record, (Pixel, LineItem))
        user_key = record.user_id.encode()
        if key != user_key and not rekeyed:
            # Mis-keyed, or a server-side conversion (keyed by anything; its user is the token's):
            # the user's state may live in another partition. Forward it keyed right.
            result.rekeys.append((user_key, value, [(SOURCE_HEADER, name.encode())]))
            return True
        if isinstance(record, Touch):
            through = None if rekeyed else self.time.saw_touch(partition, record.kind, record.timestamp)
            if through is not None:
                # Judge what this touch proves complete before it is applied: it is later than them.
                self._release(partition, through, get_state, result)
            self._step(record, user_key, partition, get_state, result)
        elif self.time.saw_conversion(partition, record.timestamp):
            self._step(record, user_key, partition, get_state, result)
        else:
            state = self._state(user_key, get_state, result)
            new_state = hold(state, record, partition)
            if new_state is not state:
                over = len(new_state.held) > MAX_HELD_PER_USER
                if over and cuts and not rekeyed:
                    # One user's state must stay a record the broker accepts: the conversions
                    # partition is read again from here once the touches have released some.
                    self.time.cut(partition, offset, user_key)
                    return False
                self.time.held(partition, record.timestamp, user_key, self.clock())
                outputs: tuple[Output, ...] = ()
                if over:
                    # Without a cut (a re-keyed conversion, or a caller that cannot read again):
                    # the user's earliest held conversion is judged now, with the touches seen so far.
                    earliest = min(conv.timestamp for conv, _ in new_state.held)
                    new_state, outputs = release(
                        new_state, earliest, self.config(), self.limits, self._horizon(partition), self.forgotten
                    )
                self._emit(user_key, state, new_state, outputs, result)
        return True

    def held_conversions(self) -> int:
        """Conversions held for event time on this worker now (a gauge of `/metrics`)."""
        return sum(len(p.held) for p in self.time.partitions.values())

    def forgotten_counts(self) -> dict[str, int]:
        """What the state's bounds forgot on this worker so far, by part (`attribution_state_forgotten`)."""
        f = self.forgotten
        return {
            "dedup_ids": f.dedup_ids,
            "touches": f.touches,
            "counters": f.counters,
            "expired_users": self.expiry.deleted,
        }

    def due_ticks(self) -> list[int]:
        """Partitions to send a tick to (the timer does): held conversions that outlived the
        bounded wait (`event_time.EventTime.due_ticks`)."""
        return self.time.due_ticks(self.clock())

    def forget_states(self) -> None:
        """Forget the users' states kept from the table (a rebalance: partitions may have moved)."""
        self._decoded.clear()

    def rebuild(self, items: Callable[[], object]) -> int:
        """Re-index held conversions from the table after recovery; returns how many are held.
        Event time starts afresh: the watermarks come from the touches read from now on."""
        self.forget_states()
        self.time.reset()
        now = self.clock()
        n = 0
        for key, raw in items():  # type: ignore[attr-defined]
            if has_held(raw):
                for conv, partition in decode_state(key.decode(), raw).held:
                    self.time.held(partition, conv.timestamp, key, now)
                    n += 1
        self.expiry.rebuild(items())  # type: ignore[arg-type]
        return n

    def check_config(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        offset: int,
        headers: Headers | None = None,
    ) -> tuple[bytes, Label] | None:
        """The encoded dead letter of an invalid config record with its label for `/metrics`,
        or None when the record is valid."""
        try:
            reject_oversized(headers)
            decode_config(self.names.get(topic, topic), key, value)  # the same rule as the config cache's
        except RecordError as exc:
            return encode(dead_letter(exc, topic, partition, offset, value)), ("dead_letter", exc.code)
        return None

    def _step(
        self, record: Touch | Conversion, user_key: bytes, partition: int, get_state: StateGetter, result: Result
    ) -> None:
        state = self._state(user_key, get_state, result)
        new_state, outputs = step(state, record, self.config(), self.limits, self._horizon(partition), self.forgotten)
        self._emit(user_key, state, new_state, outputs, result)

    def _release(self, partition: int, through: int, get_state: StateGetter, result: Result) -> None:
        config = self.config()
        horizon = self._horizon(partition)
        for user_key in self.time.pop_through(partition, through):
            state = self._state(user_key, get_state, result)
            new_state, outputs = release(state, through, config, self.limits, horizon, self.forgotten)
            self._emit(user_key, state, new_state, outputs, result)

    def _state(self, user_key: bytes, get_state: StateGetter, result: Result) -> UserState:
        """The user's state: as changed earlier in the batch, or as this worker last read or wrote
        it, or else one table read, decoded."""
        changed = result.changed.get(user_key)
        if changed is not None:
            return changed[1]
        decoded = self._decoded
        cached = decoded.get(user_key)
        if cached is not None:
            decoded.move_to_end(user_key)  # most recently used
            return cached
        raw = get_state(user_key)
        if not raw:
            return EMPTY
        state = decode_state(user_key.decode(), raw)
        self._remember(user_key, state)
        return state

    def _remember(self, user_key: bytes, state: UserState) -> None:
        decoded = self._decoded
        decoded[user_key] = state
        if len(decoded) > self.state_cache_size:
            decoded.popitem(last=False)  # least recently used

    def _emit(
        self, user_key: bytes, state: UserState, new_state: UserState, outputs: tuple[Output, ...], result: Result
    ) -> None:
        if new_state is not state:
            earlier = result.changed.get(user_key)
            result.changed[user_key] = (state if earlier is None else earlier[0], new_state)
        for o in outputs:
            result.sends.append((topic_of(o), user_key, encode(o)))
            result.labels.append(output_label(o))

    def _expire(self, partition: int, get_state: StateGetter, result: Result, events: int = 1) -> None:
        """Users of the partition whose state expired, to delete, and quiet users whose state
        partly expired, written back without it (a few per message of `events`)."""
        deletes, compacted = self.expiry.due(partition, self._horizon(partition), get_state, result.changed, events)
        # Once per result, after its records: `due` never names a user they changed (those are
        # looked at later), so no user is both written and deleted.
        result.deletes.extend(deletes)
        for user_key in deletes:
            self._decoded.pop(user_key, None)
        for user_key, (state, kept) in compacted.items():
            result.changed[user_key] = (state, kept)

    def _horizon(self, partition: int) -> int:
        # NEVER (no conversion seen yet on this partition) keeps every touch: nothing is judged yet.
        return self.time.of(partition).horizon


def output_label(output: Output) -> Label | None:
    """What an output counts as on `/metrics` (None: not counted, a piggyback fire)."""
    if isinstance(output, AttributedConversion):
        return ("outcome", "attributed", output.attribution)
    if isinstance(output, UnattributedConversion):
        return ("outcome", "unattributed", output.reason)
    return None


def _source(headers: Headers | None) -> str:
    """The original topic of a re-keyed record, from its header; only event topics are valid."""
    for k, v in headers or ():
        if k == SOURCE_HEADER and v.decode("utf-8", "replace") in EVENT_TOPICS:
            return v.decode()
    raise InvalidHeader(f"header: {SOURCE_HEADER} must name one of {', '.join(EVENT_TOPICS)}", SOURCE_HEADER)
