"""Expired users deleted: the expiry index (`attribution.expiry_index`), the stream's side
(`streaming.expiry`, through `Processor`), replay's side, and the encoded expiry and partition."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from attribution.contract import INPUT_TOPICS
from attribution.contract.state_codec import decode_state, encode_state, read_index
from attribution.domain import Config, UserState
from attribution.expiry_index import HELD, HELD_RECHECK_MS, ExpiryIndex
from attribution.replay import replay
from attribution.settings import Settings
from attribution.streaming.processor import Processor, Result
from attribution.streaming.topics import INTERNAL_TOPICS
from helpers import (
    DAY,
    HOUR,
    T0,
    click_json,
    config,
    conversion_json,
    impression_json,
    line,
    line_item_line,
    pixel_line,
)

SETTINGS = Settings()
NAMES = {SETTINGS.topic(t): t for t in (*INPUT_TOPICS, *INTERNAL_TOPICS)}

# --- the index ----------------------------------------------------------------------------------


def test_an_entry_due_is_deleted_only_if_its_current_expiry_is_still_before_the_horizon() -> None:
    index: ExpiryIndex[str] = ExpiryIndex()
    for key, expires in (("gone", 10), ("expired", 20), ("active", 30), ("later", 500)):
        index.add(0, key, expires)
    current = {"expired": 20, "active": 400, "later": 500}

    assert index.due(0, 100, current.get) == ["expired"]
    assert index.heaps[0] == [(400, "active"), (500, "later")]  # pushed back with its new expiry


def test_a_user_holding_conversions_is_looked_at_again_later() -> None:
    index: ExpiryIndex[str] = ExpiryIndex()
    index.add(0, "u", 10)

    assert index.due(0, 100, lambda key: HELD) == []
    assert index.heaps[0] == [(100 + HELD_RECHECK_MS, "u")]


def test_the_work_per_call_is_bounded() -> None:
    index: ExpiryIndex[int] = ExpiryIndex(checks_per_call=3)
    for key in range(10):
        index.add(0, key, key)

    assert index.due(0, 100, lambda key: key) == [0, 1, 2]
    assert index.due(0, 100, lambda key: key) == [3, 4, 5]
    assert len(index) == 4


def test_partitions_are_independent() -> None:
    index: ExpiryIndex[str] = ExpiryIndex()
    index.add(0, "a", 10)
    index.add(1, "b", 10)

    assert not index.any_due(2, 100)
    assert index.due(1, 100, lambda key: 10) == ["b"]
    assert index.any_due(0, 100)


# --- the encoded expiry and partition -----------------------------------------------------------


def test_the_expiry_and_partition_are_read_from_the_first_bytes_of_an_encoded_state() -> None:
    state = UserState(processed=(("c1", T0),), watermark=T0)
    raw = encode_state(state, T0 + 7 * DAY, 3)

    assert read_index(raw) == (T0 + 7 * DAY, 3)
    assert decode_state("u", raw) == state


def test_a_state_written_before_expiry_existed_is_still_read() -> None:
    v1 = orjson.dumps([1, T0, [], [[5, T0]], [["c1", T0]], []])

    assert read_index(v1) == (None, None)
    assert decode_state("u", v1) == UserState(counted=((5, T0),), processed=(("c1", T0),), watermark=T0)


# --- the stream: Processor ----------------------------------------------------------------------


class Stream:
    def __init__(self, cfg: Config | None = None) -> None:
        self.config = config() if cfg is None else cfg
        self.processor = Processor(SETTINGS, NAMES, lambda: self.config, clock=lambda: 0.0)
        self.table: dict[bytes, bytes] = {}
        self.offset = 0

    def event(self, name: str, record: dict[str, Any], partition: int = 0) -> Result:
        self.offset += 1
        result = self.processor.handle(
            name, record["user_id"].encode(), orjson.dumps(record), partition, self.offset, None, self.table.get
        )
        self.table.update(result.writes)
        for key in result.deletes:
            del self.table[key]
        return result


def test_a_user_whose_state_expired_before_the_partitions_horizon_is_deleted() -> None:
    stream = Stream()
    stream.event("clicks", click_json(user_id="old", timestamp=T0))  # kept 14 days (default pixel)
    stream.event("clicks", click_json(user_id="new", timestamp=T0 + 15 * DAY))
    stream.event("impressions", impression_json(user_id="new", timestamp=T0 + 15 * DAY))  # touch streams pass
    before = stream.event("conversions", conversion_json(user_id="new", timestamp=T0 + 14 * DAY))
    assert before.deletes == []  # the horizon is at the click's expiry, not past it

    result = stream.event("conversions", conversion_json(user_id="new", timestamp=T0 + 14 * DAY + 1))

    assert result.deletes == [b"old"]
    assert set(stream.table) == {b"new"}
    assert stream.processor.expiry.deleted == 1


class Consumed(NamedTuple):
    key: bytes
    value: bytes
    offset: int
    headers: None = None


def test_a_user_expired_and_seen_again_in_one_batch_is_written_afresh_not_deleted() -> None:
    stream = Stream()
    stream.event("clicks", click_json(user_id="old", timestamp=T0))
    stream.event("clicks", click_json(user_id="new", timestamp=T0 + 15 * DAY))
    stream.event("impressions", impression_json(user_id="new", timestamp=T0 + 15 * DAY))
    late = {"user_id": "old", "timestamp": T0 + 14 * DAY + 2}
    batch = [  # the first conversion moves the horizon past old's click; the second is old's
        Consumed(b"new", orjson.dumps(conversion_json(user_id="new", timestamp=T0 + 14 * DAY + 1)), 10),
        Consumed(b"old", orjson.dumps(conversion_json(event_id="v-old", **late)), 11),
    ]
    result = stream.processor.handle_batch("conversions", 0, batch, stream.table.get)

    assert result.deletes == []
    state = decode_state("old", result.writes[b"old"])
    assert state.touches == ()  # not the expired click: it is past its retention
    assert state.has_processed("v-old")
    [(_, _, raw)] = [s for s in result.sends if s[0] == "unattributed-conversions" and s[1] == b"old"]
    assert orjson.loads(raw)["reason"] == "no_eligible_touch"


def test_a_user_the_batch_wrote_is_looked_at_later_not_deleted_by_the_same_batch() -> None:
    stream = Stream()
    stream.event("clicks", click_json(user_id="old", timestamp=T0))  # kept 14 days
    stream.event("clicks", click_json(user_id="new", timestamp=T0 + 15 * DAY))
    stream.event("impressions", impression_json(user_id="new", timestamp=T0 + 15 * DAY))
    batch = [
        Consumed(b"old", orjson.dumps(conversion_json(user_id="old", timestamp=T0 + 13 * DAY)), 10),
        Consumed(b"new", orjson.dumps(conversion_json(user_id="new", timestamp=T0 + 14 * DAY + 1)), 11),
    ]
    result = stream.processor.handle_batch("conversions", 0, batch, stream.table.get)

    assert b"old" in result.writes  # judged by the first record: its entry comes back later
    assert result.deletes == []
    stream.table.update(result.writes)
    later = stream.event("conversions", conversion_json(user_id="new", timestamp=T0 + 120 * DAY))
    assert b"old" in later.deletes  # its conversion's dedup id and counter outlived: gone by now


def test_a_batch_looks_at_as_many_expired_users_as_its_records_would_one_by_one() -> None:
    stream = Stream()
    stream.processor.expiry.index.checks_per_call = 1  # one user looked at per event
    for user in ("old-1", "old-2", "old-3"):
        stream.event("clicks", click_json(user_id=user, timestamp=T0))
    stream.event("clicks", click_json(user_id="new", timestamp=T0 + 15 * DAY))
    stream.event("impressions", impression_json(user_id="new", timestamp=T0 + 15 * DAY))
    convs = [conversion_json(user_id="new", event_id=f"v{i}", timestamp=T0 + 14 * DAY + 1 + i) for i in range(2)]
    batch = [Consumed(b"new", orjson.dumps(c), 20 + i) for i, c in enumerate(convs)]
    result = stream.processor.handle_batch("conversions", 0, batch, stream.table.get)
    assert len(result.deletes) == 2  # two records: two users looked at, as one by one
    for key in result.deletes:
        del stream.table[key]
    last = stream.event("conversions", conversion_json(user_id="new", event_id="v9", timestamp=T0 + 14 * DAY + 9))
    assert len(last.deletes) == 1
    assert not {b"old-1", b"old-2", b"old-3"} & set(stream.table)


def test_a_user_active_again_is_not_deleted_but_looked_at_later() -> None:
    stream = Stream()
    stream.event("clicks", click_json(user_id="u", timestamp=T0))
    stream.event("impressions", impression_json(user_id="u", timestamp=T0 + 20 * DAY))
    result = stream.event("conversions", conversion_json(user_id="bystander", timestamp=T0 + 15 * DAY))

    assert result.deletes == []
    assert b"u" in stream.table
    assert (T0 + 21 * DAY, b"u") in stream.processor.expiry.index.heaps[0]  # the impression's expiry


def test_a_user_holding_a_conversion_is_never_deleted() -> None:
    stream = Stream()
    stream.event("conversions", conversion_json(user_id="u", timestamp=T0))  # held: no touch stream yet
    assert stream.processor.time.of(0).held
    result = stream.event("conversions", conversion_json(user_id="b", timestamp=T0 + 100 * DAY))

    assert b"u" in stream.table
    assert b"u" not in result.deletes


def test_the_index_is_rebuilt_from_the_table_after_recovery() -> None:
    stream = Stream()
    stream.event("clicks", click_json(user_id="a", timestamp=T0), partition=2)
    stream.event("clicks", click_json(user_id="b", timestamp=T0 + DAY), partition=1)
    fresh = Processor(SETTINGS, NAMES, lambda: stream.config, clock=lambda: 0.0)

    fresh.rebuild(lambda: list(stream.table.items()))

    assert fresh.expiry.index.heaps == {2: [(T0 + 14 * DAY, b"a")], 1: [(T0 + 15 * DAY, b"b")]}


# --- replay -------------------------------------------------------------------------------------


def test_replay_drops_users_whose_state_expired_and_answers_the_same() -> None:
    lines = [line("clicks", click_json(user_id=f"u{i}", event_id=f"k{i}", timestamp=T0 + i * DAY)) for i in range(40)]
    lines += [pixel_line(), line_item_line()]
    lines += [line("conversions", conversion_json(user_id="u39", timestamp=T0 + 39 * DAY + 1))]

    result = replay(lines)

    assert result.expired == 26  # clicks 14 days or more before the last event: u0 to u25
    assert len(result.users) == 14
    [attributed] = [orjson.loads(v) for v in result.outputs["attributed-conversions"]]
    assert attributed["touch_event_id"] == "k39"


def test_a_user_holding_conversions_leaves_the_index_until_they_are_released() -> None:
    def entries(key: bytes) -> list[tuple[int, bytes]]:
        return [e for heap in stream.processor.expiry.index.heaps.values() for e in heap if e[1] == key]

    stream = Stream()
    expiry = stream.processor.expiry
    stream.event("conversions", conversion_json(user_id="b", event_id="cb", timestamp=T0))  # held
    stream.event("conversions", conversion_json(user_id="u", event_id="cu", timestamp=T0 + DAY))  # held
    assert entries(b"u")  # indexed when first written

    stream.event("impressions", impression_json(user_id="x", event_id="i1", timestamp=T0 + HOUR))
    stream.event("clicks", click_json(user_id="x", event_id="k1", timestamp=T0 + HOUR))  # releases b only

    assert b"u" in expiry.held  # came due while holding: dropped, not looked at again and again
    assert not entries(b"u")

    stream.event("impressions", impression_json(user_id="x", event_id="i2", timestamp=T0 + 2 * DAY))
    stream.event("clicks", click_json(user_id="x", event_id="k2", timestamp=T0 + 2 * DAY))  # releases u

    assert b"u" not in expiry.held
    assert entries(b"u")  # indexed again, with the expiry of its state


def test_a_quiet_user_keeps_only_what_can_still_matter() -> None:
    stream = Stream()
    stream.event("impressions", impression_json(user_id="u", timestamp=T0))
    stream.event("impressions", impression_json(user_id="x", timestamp=T0 + 2 * HOUR))
    stream.event("clicks", click_json(user_id="x", timestamp=T0 + 2 * HOUR))  # the touch streams pass
    stream.event("conversions", conversion_json(user_id="u", event_id="c1", timestamp=T0 + HOUR))  # counted
    before = decode_state("u", stream.table[b"u"])
    assert (len(before.touches), len(before.processed), len(before.counted)) == (1, 1, 1)

    # Later traffic of another user moves the horizon 9 days on: u's impression (1 day) and its
    # dedup id (7 days) can no longer matter; its "one per user" counter (90 days) still can.
    stream.event("impressions", impression_json(user_id="x", timestamp=T0 + 9 * DAY))
    stream.event("clicks", click_json(user_id="x", timestamp=T0 + 9 * DAY))
    result = stream.event("conversions", conversion_json(user_id="x", timestamp=T0 + 9 * DAY - 1))

    assert b"u" in result.writes
    assert result.deletes == []
    after = decode_state("u", stream.table[b"u"])
    assert (after.touches, after.processed, after.counted) == ((), (), before.counted)


def test_replay_keeps_only_what_can_still_matter_of_a_quiet_user() -> None:
    lines = [
        pixel_line(),
        line_item_line(),
        line("impressions", impression_json(user_id="u", event_id="i0", timestamp=T0)),
        line("conversions", conversion_json(user_id="u", event_id="c1", timestamp=T0 + HOUR)),
        line("impressions", impression_json(user_id="x", event_id="i1", timestamp=T0 + 9 * DAY)),
    ]

    result = replay(lines)

    kept = result.users["u"]
    assert (kept.touches, kept.processed) == ((), ())
    assert [pixel for pixel, _ in kept.counted] == [1]
