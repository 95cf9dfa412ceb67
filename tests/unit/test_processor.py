"""`Processor`, the glue between one consumed Kafka message and the engine, without a broker.

The processor is fed the way the `events` and `config` agents feed it (actual, prefixed topic
names; a `names` mapping like `create_app` builds) and its `Result` is checked: the state writes,
the sends, the re-key forward. A bad record is one dead letter and nothing else; event time holds a
conversion until the touch streams of its partition have passed it (docs/design.md, Event time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, validator
from attribution.contract.state_codec import decode_state
from attribution.domain import Config, UserState
from attribution.settings import Settings
from attribution.streaming.event_time import LAG_SOURCES, TICK_RESEND_S
from attribution.streaming.processor import MAX_HELD_PER_USER, SOURCE_HEADER, Processor, Result
from attribution.streaming.topics import INTERNAL_TOPICS, REKEY_TOPIC, TICK_TOPIC
from helpers import (
    DAY,
    HOUR,
    LINE_ITEM,
    MINUTE,
    PIXEL,
    T0,
    USER,
    click_json,
    config,
    conversion_json,
    fold_config,
    impression_json,
    line_item_json,
    pixel,
    pixel_json,
)

PREFIX = "acme."
SETTINGS = Settings(topic_prefix=PREFIX, hold_ms=3000)
#: Actual topic name -> default name, as `create_app` builds it.
NAMES = {SETTINGS.topic(t): t for t in (*EVENT_TOPICS, *CONFIG_TOPICS, *INTERNAL_TOPICS)}
UKEY = USER.encode()
BYSTANDER = "bystander"

SCHEMA_OF = {
    "attributed-conversions": "attributed_conversion",
    "unattributed-conversions": "unattributed_conversion",
    "piggyback-fires": "piggyback_fire",
    "dead-letters": "dead_letter",
}


def topic(name: str) -> str:
    return SETTINGS.topic(name)


def raw(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def no_state(key: bytes) -> bytes | None:
    raise AssertionError(f"the state of {key!r} was read")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A processor, the users table as a dict, a settable config, offsets per topic, a clock."""

    def __init__(self, cfg: Config | None = None) -> None:
        self.config = config() if cfg is None else cfg
        self.clock = Clock()
        self.processor = Processor(SETTINGS, NAMES, lambda: self.config, clock=self.clock)
        self.table: dict[bytes, bytes] = {}
        self.offsets: dict[str, int] = {}

    def handle(
        self,
        name: str,
        value: bytes | None,
        key: bytes | None = UKEY,
        partition: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
        get_state: Callable[[bytes], bytes | None] | None = None,
    ) -> Result:
        actual = topic(name)
        offset = self.offsets.get(actual, 0)
        self.offsets[actual] = offset + 1
        result = self.processor.handle(
            actual, key, value, partition, offset, headers, self.table.get if get_state is None else get_state
        )
        self.table.update(result.writes)
        return result

    def event(self, name: str, record: dict[str, Any], partition: int = 0) -> Result:
        """An event keyed right (by its user_id)."""
        return self.handle(name, raw(record), key=record["user_id"].encode(), partition=partition)

    def pass_touch_streams(self, timestamp: int, partition: int = 0) -> Result:
        """Both touch streams of the partition reach `timestamp` (a bystander's impression and click)."""
        result = Result()
        for name, record in (
            ("impressions", impression_json(user_id=BYSTANDER, timestamp=timestamp)),
            ("clicks", click_json(user_id=BYSTANDER, timestamp=timestamp)),
        ):
            step = self.event(name, record, partition)
            result.sends += step.sends
            result.writes.update(step.writes)
        return result

    def state(self, user: str = USER) -> UserState:
        return decode_state(user, self.table.get(user.encode()))

    def caught_up(self, partition: int = 0) -> None:
        """The consumer reports every touch source of the partition read to its high watermark."""
        for name in LAG_SOURCES:
            end = self.offsets.get(topic(name), 0)
            self.processor.time.report_lag(partition, name, end, 0, self.clock.now)


def decoded(sends: list[tuple[str, bytes | None, bytes]]) -> list[tuple[str, bytes | None, dict[str, Any]]]:
    """Sends with JSON values decoded, each checked against its output schema."""
    out = []
    for name, key, value in sends:
        record = orjson.loads(value)
        validator(SCHEMA_OF[name])(record)
        out.append((name, key, record))
    return out


# --- bad records: one dead letter, nothing else ---------------------------------------------

BAD_CLICK = {**click_json(), "timestamp": "yesterday"}


@pytest.mark.parametrize(
    ("name", "value", "code", "payload"),
    [
        pytest.param("clicks", b'{"event_id": ', "invalid_json", '{"event_id": ', id="invalid-json"),
        pytest.param(
            "impressions", b'{"user_id": "\xff\xfe"}', "invalid_utf8", '{"user_id": "\ufffd\ufffd"}', id="invalid-utf8"
        ),
        pytest.param("conversions", None, "not_an_object", None, id="null-value"),
        pytest.param("conversions", b"null", "not_an_object", "null", id="json-null"),
        pytest.param("clicks", b"[1, 2]", "not_an_object", "[1, 2]", id="json-array"),
        pytest.param("clicks", raw(BAD_CLICK), "schema_violation", raw(BAD_CLICK).decode(), id="schema-violation"),
        pytest.param(
            "conversions",
            raw({**conversion_json(), "order_id": "x" * 37}),
            "schema_violation",
            None,
            id="too-long-field",
        ),
    ],
)
def test_a_bad_event_is_exactly_one_dead_letter_and_no_state_read_or_write(
    name: str, value: bytes | None, code: str, payload: str | None
) -> None:
    h = Harness()
    h.offsets[topic(name)] = 41
    result = h.handle(name, value, key=b"some-key", partition=3, get_state=no_state)
    assert result.writes == {}
    assert result.rekeys == []
    [(out, key, letter)] = decoded(result.sends)
    assert (out, key) == ("dead-letters", b"some-key")
    assert letter["topic"] == topic(name)
    assert (letter["partition"], letter["offset"]) == (3, 41)
    assert letter["error"]["code"] == code
    assert letter["error"]["message"]
    assert letter["payload"] == (value.decode("utf-8", "replace") if payload is None and value else payload)


def test_a_schema_violation_names_the_field_and_the_rule() -> None:
    result = Harness().handle("clicks", raw(BAD_CLICK))
    [(_, _, letter)] = decoded(result.sends)
    assert letter["error"]["message"].startswith("timestamp:")


@pytest.mark.parametrize("key", [None, b"", b"\x00binary"])
def test_a_dead_letter_is_keyed_as_the_record_was_received(key: bytes | None) -> None:
    result = Harness().handle("clicks", b"{", key=key)
    [(_, sent_key, _)] = result.sends
    assert sent_key == key


def test_a_dead_letter_carries_at_most_4_kib_of_the_payload() -> None:
    big = b'{"blob": "' + "é".encode() * 5000 + b'"'  # 10 KB, not valid JSON (unterminated)
    result = Harness().handle("conversions", big)
    [(_, _, letter)] = decoded(result.sends)
    assert len(letter["payload"].encode()) <= 4096
    assert big.decode().startswith(letter["payload"])


def test_the_next_record_after_a_dead_letter_is_processed_normally() -> None:
    h = Harness()
    h.handle("clicks", b"not json")
    result = h.event("clicks", click_json(event_id="c1"))
    assert result.sends == []
    assert [t.event_id for t in h.state().touches] == ["c1"]


# --- keys: a record keyed by something else than its user_id is re-keyed, never dropped -------


@pytest.mark.parametrize("name", EVENT_TOPICS)
@pytest.mark.parametrize("key", [b"someone-else", None, b""], ids=["other-key", "no-key", "empty-key"])
def test_a_mis_keyed_event_is_forwarded_keyed_by_its_user_id_with_its_source_topic(
    name: str, key: bytes | None
) -> None:
    record = {"impressions": impression_json, "clicks": click_json, "conversions": conversion_json}[name]()
    value = raw(record)
    result = Harness().handle(name, value, key=key, get_state=no_state)
    assert result.rekeys == [(UKEY, value, [(SOURCE_HEADER, name.encode())])]
    assert result.sends == []
    assert result.writes == {}


def test_a_re_keyed_touch_coming_back_on_the_re_key_topic_is_stored_as_its_source_kind() -> None:
    h = Harness()
    result = h.handle(REKEY_TOPIC, raw(click_json(event_id="c1")), headers=[(SOURCE_HEADER, b"clicks")])
    assert result.rekeys == []
    assert result.sends == []
    assert set(result.writes) == {UKEY}
    assert [(t.kind, t.event_id) for t in h.state().touches] == [("click", "c1")]


def test_a_re_keyed_conversion_is_held_like_any_other_then_judged_once_the_touch_streams_pass_it() -> None:
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    conv = conversion_json(timestamp=T0)
    held = h.handle(REKEY_TOPIC, raw(conv), headers=[(SOURCE_HEADER, b"conversions")])
    assert held.sends == []
    assert set(held.writes) == {UKEY}
    h.event("impressions", impression_json(event_id="i-later", timestamp=T0 + 1))
    result = h.event("clicks", click_json(event_id="c-later", timestamp=T0 + 1))
    [(out, key, record)] = decoded(result.sends)
    assert (out, key) == ("attributed-conversions", UKEY)
    assert (record["conversion_id"], record["touch_event_id"]) == (conv["event_id"], "c1")


def test_a_record_on_the_re_key_topic_is_never_forwarded_again_whatever_its_key() -> None:
    h = Harness()
    result = h.handle(
        REKEY_TOPIC, raw(click_json(event_id="c1")), key=b"someone-else", headers=[(SOURCE_HEADER, b"clicks")]
    )
    assert result.rekeys == []
    assert [t.event_id for t in h.state().touches] == ["c1"]


def test_a_bad_record_on_the_re_key_topic_is_a_dead_letter_of_that_topic() -> None:
    result = Harness().handle(REKEY_TOPIC, b"{", headers=[(SOURCE_HEADER, b"clicks")])
    [(_, _, letter)] = decoded(result.sends)
    assert letter["topic"] == topic(REKEY_TOPIC)
    assert letter["error"]["code"] == "invalid_json"


# --- touches ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("impressions", "impression"), ("clicks", "click")])
def test_a_touch_is_one_state_write_and_no_send(name: str, kind: str) -> None:
    h = Harness()
    record = {"impressions": impression_json, "clicks": click_json}[name](event_id="t1")
    result = h.event(name, record)
    assert result.sends == []
    assert result.rekeys == []
    assert list(result.writes) == [UKEY]
    [touch] = decode_state(USER, result.writes[UKEY]).touches
    assert (touch.kind, touch.event_id, touch.line_item_id) == (kind, "t1", LINE_ITEM)


def test_an_impression_not_won_in_a_real_auction_writes_no_state() -> None:
    result = Harness().event("impressions", impression_json(imp_type=1))
    assert result.writes == {}
    assert result.sends == []


def test_a_redelivered_touch_writes_no_state() -> None:
    h = Harness()
    record = click_json()
    h.event("clicks", record)
    assert h.event("clicks", record).writes == {}


def test_touches_of_a_partition_are_independent_of_other_partitions_users() -> None:
    h = Harness()
    h.event("clicks", click_json(user_id="u1"), partition=0)
    h.event("clicks", click_json(user_id="u2"), partition=1)
    assert set(h.table) == {b"u1", b"u2"}


# --- conversions ------------------------------------------------------------------------------


def test_a_conversion_yields_its_piggyback_fires_then_its_outcome_all_keyed_by_user_id() -> None:
    urls = ["https://a.example/p.js", "https://b.example/p.js"]
    h = Harness(config(pixels=[pixel(pixel_type="js", piggyback_pixels=urls)]))
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    h.pass_touch_streams(T0 + MINUTE)
    conv = conversion_json(timestamp=T0)
    result = h.event("conversions", conv)
    sent = decoded(result.sends)
    assert [(out, key) for out, key, _ in sent] == [
        ("piggyback-fires", UKEY),
        ("piggyback-fires", UKEY),
        ("attributed-conversions", UKEY),
    ]
    assert [r["url"] for _, _, r in sent[:2]] == urls
    assert [r["fire_id"] for _, _, r in sent[:2]] == [f"{conv['event_id']}:0", f"{conv['event_id']}:1"]
    attributed = sent[2][2]
    assert (attributed["attribution"], attributed["touch_event_id"]) == ("post_click", "c1")
    assert attributed["latency_ms"] == HOUR
    assert list(result.writes) == [UKEY]
    assert h.state().has_processed(conv["event_id"])


def test_a_conversion_without_an_eligible_touch_is_unattributed_with_the_reason() -> None:
    h = Harness()
    h.pass_touch_streams(T0 + MINUTE)
    conv = conversion_json(timestamp=T0)
    [(out, key, record)] = decoded(h.event("conversions", conv).sends)
    assert (out, key) == ("unattributed-conversions", UKEY)
    assert (record["conversion_id"], record["reason"]) == (conv["event_id"], "no_eligible_touch")


def test_a_redelivered_conversion_yields_nothing_new() -> None:
    h = Harness()
    h.pass_touch_streams(T0 + MINUTE)
    conv = conversion_json(timestamp=T0)
    assert h.event("conversions", conv).sends
    again = h.event("conversions", conv)
    assert again.sends == []
    assert again.writes == {}


def test_each_record_is_judged_with_the_config_current_when_it_is_handled() -> None:
    h = Harness(config(pixels=[]))
    h.pass_touch_streams(T0 + MINUTE)
    [(_, _, first)] = decoded(h.event("conversions", conversion_json(timestamp=T0)).sends)
    h.config = config()
    [(_, _, second)] = decoded(h.event("conversions", conversion_json(timestamp=T0)).sends)
    assert (first["reason"], second["reason"]) == ("unknown_pixel", "no_eligible_touch")


# --- event time: hold a conversion until the touch streams have passed it --------------------


def test_a_conversion_ahead_of_the_touch_streams_is_held_in_state_without_output() -> None:
    h = Harness()
    conv = conversion_json(timestamp=T0)
    result = h.event("conversions", conv)
    assert result.sends == []
    assert [c.event_id for c, _ in h.state().held] == [conv["event_id"]]


def test_a_held_conversion_is_judged_with_a_late_touch_once_both_touch_streams_pass_it() -> None:
    h = Harness()
    conv = conversion_json(timestamp=T0)
    h.event("conversions", conv)
    h.event("clicks", click_json(event_id="late-click", timestamp=T0 - MINUTE))
    released = h.pass_touch_streams(T0 + 1)
    [(out, key, record)] = decoded(released.sends)
    assert (out, key) == ("attributed-conversions", UKEY)
    assert (record["conversion_id"], record["touch_event_id"]) == (conv["event_id"], "late-click")
    assert h.state().held == ()


def test_a_held_conversion_is_judged_after_the_bounded_wait_when_a_touch_stream_is_idle() -> None:
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - MINUTE))
    conv = conversion_json(timestamp=T0)
    h.event("conversions", conv, partition=0)
    h.caught_up()
    assert h.processor.due_ticks() == []
    h.clock.now += SETTINGS.hold_ms / 1000
    assert h.processor.due_ticks() == [0]
    result = h.handle(TICK_TOPIC, b"", key=b"tick", partition=0)
    [(out, _, record)] = decoded(result.sends)
    assert (out, record["conversion_id"], record["touch_event_id"]) == (
        "attributed-conversions",
        conv["event_id"],
        "c1",
    )
    assert h.state().held == ()


def test_a_tick_that_never_comes_back_is_sent_again_and_one_that_does_is_not() -> None:
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - MINUTE))
    h.event("conversions", conversion_json(timestamp=T0), partition=0)
    h.caught_up()
    h.clock.now += SETTINGS.hold_ms / 1000
    assert h.processor.due_ticks() == [0]
    assert h.processor.due_ticks() == []  # in flight
    h.clock.now += TICK_RESEND_S - 0.1
    assert h.processor.due_ticks() == []
    h.clock.now += 0.1
    assert h.processor.due_ticks() == [0]  # lost (a stream skipped it): sent again
    h.handle(TICK_TOPIC, b"", key=b"tick", partition=0)
    assert h.processor.due_ticks() == []  # judged: nothing held any more
    assert h.state().held == ()


def test_a_restarted_processor_rebuilds_its_watermarks_from_the_touches_it_reads_again() -> None:
    h = Harness()
    h.pass_touch_streams(T0 + MINUTE)
    conv = conversion_json(event_id="v-held", timestamp=T0 + 2 * MINUTE)
    h.event("conversions", conv)
    assert h.processor.rebuild(lambda: list(h.table.items())) == 1
    # Nothing is restored but the held conversion: a conversion is held until touches are read again.
    assert h.processor.time.of(0).touch_watermark < T0
    assert h.event("conversions", conversion_json(event_id="v-new", timestamp=T0)).writes
    assert [c.event_id for c, _ in h.state().held] == ["v-held", "v-new"]


# --- config records: only dead-lettered here, the cache applies them ------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("pixels", raw(pixel_json()), id="pixel"),
        pytest.param("line-items", raw(line_item_json()), id="line-item"),
    ],
)
def test_check_config_passes_a_valid_record_keyed_by_its_id(name: str, value: bytes) -> None:
    key = str(orjson.loads(value)["id"]).encode()
    assert Harness().processor.check_config(topic(name), key, value, 0, 0) is None


@pytest.mark.parametrize("key", [b"2", b"01", b" 1", b"1 ", b"zz1", None])
def test_check_config_dead_letters_a_valid_record_not_keyed_by_its_id_as_invalid_key(key: bytes | None) -> None:
    checked = Harness().processor.check_config(topic("pixels"), key, raw(pixel_json(id=1)), 0, 0)
    assert checked is not None
    dead, label = checked
    assert orjson.loads(dead)["error"]["code"] == "invalid_key"
    assert label == ("dead_letter", "invalid_key")


@pytest.mark.parametrize("name", CONFIG_TOPICS)
def test_check_config_passes_a_tombstone_keyed_by_an_id(name: str) -> None:
    assert Harness().processor.check_config(topic(name), str(PIXEL).encode(), None, 0, 0) is None


@pytest.mark.parametrize(
    ("name", "value", "code", "field"),
    [
        pytest.param(
            "pixels",
            raw(pixel_json(post_view_expire_mins=43201)),
            "invalid_pixel",
            "post_view_expire_mins",
            id="window",
        ),
        pytest.param("pixels", raw(pixel_json(name="")), "invalid_pixel", "name", id="empty-name"),
        pytest.param("pixels", raw(pixel_json(state="paused")), "invalid_pixel", "state", id="state"),
        pytest.param(
            "line-items", raw(line_item_json(pixels=[{"id": 0}])), "invalid_line_item", "pixels[0].id", id="line-item"
        ),
        pytest.param("pixels", b"{", "invalid_json", "record", id="invalid-json"),
    ],
)
def test_check_config_dead_letters_an_invalid_record_naming_the_field(
    name: str, value: bytes, code: str, field: str
) -> None:
    checked = Harness().processor.check_config(topic(name), b"1", value, 0, 7)
    assert checked is not None
    [(_, _, letter)] = decoded([("dead-letters", b"1", checked[0])])
    assert (letter["topic"], letter["partition"], letter["offset"]) == (topic(name), 0, 7)
    assert letter["error"]["code"] == code
    assert letter["error"]["message"].startswith(f"{field}:")
    assert letter["payload"] == value.decode()


@pytest.mark.parametrize("key", [b"abc", None, b"", b"-1"], ids=["text", "none", "empty", "negative"])
def test_check_config_dead_letters_a_tombstone_whose_key_is_not_an_id(key: bytes | None) -> None:
    checked = Harness().processor.check_config(topic("pixels"), key, None, 0, 3)
    assert checked is not None
    [(_, _, letter)] = decoded([("dead-letters", key, checked[0])])
    assert letter["error"]["code"] == "invalid_key"
    assert letter["payload"] is None


# --- the decoded-state cache: a speed-up only, never a different state ----------------------


def test_the_state_the_processor_wrote_is_reused_without_decoding_the_same_bytes_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    import attribution.streaming.processor as processor_module

    def no_decode(user_id: str, raw: bytes | None) -> UserState:
        raise AssertionError("decoded again")

    monkeypatch.setattr(processor_module, "decode_state", no_decode)
    h.event("clicks", click_json(event_id="c2", timestamp=T0 - MINUTE))
    assert [t.event_id for t in h.state().touches] == ["c1", "c2"]


def test_a_recent_users_state_is_taken_from_the_cache_without_reading_the_table() -> None:
    """While the worker keeps its partitions only its events agent writes their users: the state
    it last wrote is the table's."""
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    state = h.processor._state(UKEY, lambda key: pytest.fail("read the table"), Result())
    assert [t.event_id for t in state.touches] == ["c1"]


def test_after_a_rebalance_the_tables_bytes_are_read_and_decoded_again() -> None:
    """After a rebalance another worker may have written the user (the table was restored from
    the changelog): the cached state must not be used."""
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    other = Harness()
    other.event("clicks", click_json(event_id="c9", timestamp=T0 - 2 * HOUR))
    h.table[UKEY] = other.table[UKEY]  # restored from the changelog
    h.processor.forget_states()  # what the app does when partitions are revoked
    h.event("clicks", click_json(event_id="c2", timestamp=T0 - MINUTE))
    assert [t.event_id for t in h.state().touches] == ["c9", "c2"]


def test_recovery_forgets_the_cached_states_too() -> None:
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - HOUR))
    h.processor.rebuild(lambda: list(h.table.items()))
    assert h.processor._decoded == {}


def test_an_expired_user_is_forgotten_by_the_cache_with_its_tombstone() -> None:
    h = Harness()
    h.event("clicks", click_json(user_id="old", event_id="c-old", timestamp=T0))
    assert b"old" in h.processor._decoded
    h.event("clicks", click_json(user_id="new", event_id="c-new", timestamp=T0 + 15 * DAY))
    h.event("impressions", impression_json(user_id="new", timestamp=T0 + 15 * DAY))
    result = h.event("conversions", conversion_json(user_id="new", timestamp=T0 + 14 * DAY + 1))
    assert result.deletes == [b"old"]
    assert b"old" not in h.processor._decoded


def test_the_cache_keeps_at_most_its_size_dropping_the_least_recently_used() -> None:
    h = Harness()
    h.processor.state_cache_size = 2
    for user in ("u1", "u2", "u3"):
        h.event("clicks", click_json(user_id=user, event_id=f"c-{user}", timestamp=T0))
    assert list(h.processor._decoded) == [b"u2", b"u3"]
    h.event("clicks", click_json(user_id="u2", event_id="c-u2-again", timestamp=T0 + 1))
    h.event("clicks", click_json(user_id="u1", event_id="c-u1-again", timestamp=T0 + 2))
    assert list(h.processor._decoded) == [b"u2", b"u1"]
    assert [t.event_id for t in h.state("u1").touches] == ["c-u1", "c-u1-again"]


class _Record:
    def __init__(self, key: bytes, value: bytes, offset: int) -> None:
        self.key, self.value, self.offset, self.headers = key, value, offset, None


def conversions_batch(first: int, n: int, user: str = USER, start: int = 0) -> list[_Record]:
    """`n` conversions of `user` at offsets from `first`, a millisecond apart from T0 + `start`."""
    return [
        _Record(
            user.encode(),
            raw(conversion_json(user_id=user, event_id=f"v{start + i}", timestamp=T0 + start + i)),
            first + i,
        )
        for i in range(n)
    ]


def test_a_batch_is_cut_at_the_conversion_its_user_may_not_hold_and_nothing_is_judged_early() -> None:
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - MINUTE))
    batch = conversions_batch(10, MAX_HELD_PER_USER + 20) + conversions_batch(180, 1, user=BYSTANDER, start=500)
    result = h.processor.handle_batch(topic("conversions"), 0, batch, h.table.get, cuts=True)
    h.table.update(result.writes)
    cut = 10 + MAX_HELD_PER_USER
    assert (result.cut_at, result.unhandled_from) == (cut, cut)
    assert result.sends == []  # none judged early
    assert len(h.state().held) == MAX_HELD_PER_USER
    assert BYSTANDER.encode() not in result.writes  # after the cut: not handled either
    assert h.processor.time.cut_at(0) == cut
    assert h.processor.time.of(0).next_offset["conversions"] == cut  # the consumer reads on from it
    assert h.processor.time.over_limit(0)  # the partition's conversions stay paused


def test_after_a_cut_batches_fetched_before_it_are_dropped_until_the_one_read_again_from_the_cut() -> None:
    h = Harness()
    first = h.processor.handle_batch(
        topic("conversions"), 0, conversions_batch(0, MAX_HELD_PER_USER + 1), h.table.get, cuts=True
    )
    h.table.update(first.writes)
    cut = MAX_HELD_PER_USER
    stale = h.processor.handle_batch(
        topic("conversions"), 0, conversions_batch(cut + 1, 5, user=BYSTANDER), h.table.get, cuts=True
    )
    assert (stale.unhandled_from, stale.cut_at, stale.writes, stale.sends) == (cut + 1, None, {}, [])
    assert h.processor.time.cut_at(0) == cut

    # The touches pass what the user holds: every held conversion is judged, the cut no longer blocks.
    released = h.pass_touch_streams(T0 + DAY)
    assert len(decoded(released.sends)) == MAX_HELD_PER_USER
    assert not h.processor.time.cut_blocks(0)
    assert not h.processor.time.over_limit(0)

    again = conversions_batch(cut, 1, start=cut)
    result = h.processor.handle_batch(topic("conversions"), 0, again, h.table.get, cuts=True)
    assert (result.cut_at, result.unhandled_from) == (None, None)
    assert [r["conversion_id"] for _, _, r in decoded(result.sends)] == [f"v{cut}"]
    assert h.processor.time.cut_at(0) is None


def test_the_cut_blocks_until_its_user_holds_at_most_half_of_what_it_may() -> None:
    h = Harness()
    h.processor.handle_batch(
        topic("conversions"), 0, conversions_batch(0, MAX_HELD_PER_USER + 1), h.table.get, cuts=True
    )
    time = h.processor.time
    pt = time.of(0)
    assert time.cut_blocks(0)
    while sum(1 for held in pt.held if held[2] == UKEY) > MAX_HELD_PER_USER // 2 + 1:
        pt.held.pop()
    assert time.cut_blocks(0)
    pt.held.pop()
    assert not time.cut_blocks(0)


def test_a_user_holding_too_many_conversions_has_the_earliest_judged_at_once_when_reading_cannot_be_cut() -> None:
    """One record at a time (`handle`: no consumer to pause and seek), or a re-keyed conversion."""
    h = Harness()
    h.event("clicks", click_json(event_id="c1", timestamp=T0 - MINUTE))
    for i in range(MAX_HELD_PER_USER):
        h.event("conversions", conversion_json(event_id=f"v{i}", timestamp=T0 + i))
    assert len(h.state().held) == MAX_HELD_PER_USER
    result = h.event("conversions", conversion_json(event_id="last", timestamp=T0 + 10_000))
    [(out, _, record)] = decoded(result.sends)
    assert (out, record["conversion_id"], record["touch_event_id"]) == ("attributed-conversions", "v0", "c1")
    held = [c.event_id for c, _ in h.state().held]
    assert len(held) == MAX_HELD_PER_USER
    assert (held[0], held[-1]) == ("v1", "last")


def _synthetic_results(state_cache: int) -> list[tuple[Any, ...]]:
    """Every result of a processor with `state_cache` decoded states over the same synthetic
    traffic (100 users, 2,000 events, one partition), in batches of 7 records."""
    from attribution.synth import TrafficSpec, config_records, events

    spec = TrafficSpec(users=100, events=2_000, seed=5)
    cfg = fold_config(config_records(spec))
    processor = Processor(
        Settings(state_cache=state_cache), {n: n for n in EVENT_TOPICS}, lambda: cfg, clock=lambda: 0.0
    )
    table: dict[bytes, bytes] = {}
    offsets: dict[str, int] = {}
    pending: list[tuple[str, bytes, bytes]] = [(n, k.encode(), orjson.dumps(v)) for n, k, v in events(spec)]
    results: list[tuple[Any, ...]] = []
    for i in range(0, len(pending), 7):
        by_topic: dict[str, list[_Record]] = {}
        for name, key, value in pending[i : i + 7]:
            offsets[name] = offsets.get(name, -1) + 1
            by_topic.setdefault(name, []).append(_Record(key, value, offsets[name]))
        for name, records in by_topic.items():
            result = processor.handle_batch(name, 0, records, table.get)
            table.update(result.writes)
            for key in result.deletes:
                table.pop(key, None)
            results.append((name, dict(result.writes), list(result.deletes), list(result.sends)))
    return results


def test_the_state_cache_size_never_changes_a_result() -> None:
    """The cache only spares table reads: with none, a few states or every state kept, the same
    traffic gives the same writes, deletes and sends (the cache dropping users all along)."""
    everything = _synthetic_results(100_000)

    assert any(sends for *_, sends in everything)
    assert _synthetic_results(0) == everything
    assert _synthetic_results(3) == everything
