"""Every hostile record becomes one dead letter with its stable code, and touches no state."""

from __future__ import annotations

import orjson
import pytest

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, load_schema
from attribution.domain import Config
from attribution.settings import Settings
from attribution.streaming.processor import Processor
from attribution.streaming.topics import INTERNAL_TOPICS
from hostile import CONVERSION, IMPRESSION, Hostile, corpus

NAMES = {t: t for t in (*EVENT_TOPICS, *CONFIG_TOPICS, *INTERNAL_TOPICS)}
CASES = corpus()
DEAD_LETTER_CODES = set(load_schema("dead_letter")["properties"]["error"]["properties"]["code"]["enum"])


def test_the_corpus_covers_every_input_and_config_topic() -> None:
    assert {c.topic for c in CASES} == set(EVENT_TOPICS) | set(CONFIG_TOPICS)
    assert {c.code for c in CASES} <= DEAD_LETTER_CODES


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_hostile_record_becomes_one_dead_letter_with_its_code_and_no_state_change(case: Hostile) -> None:
    processor = Processor(Settings(), NAMES, Config)
    reads: list[bytes] = []

    def get_state(key: bytes) -> bytes | None:
        reads.append(key)
        return None

    if case.topic in CONFIG_TOPICS:
        checked = processor.check_config(case.topic, case.key, case.value, 3, 42)
        assert checked is not None
        letters = [checked[0]]
    else:
        result = processor.handle(case.topic, case.key, case.value, 3, 42, None, get_state)
        assert result.writes == {}
        assert result.rekeys == []
        assert [t for t, _, _ in result.sends] == ["dead-letters"]
        assert result.sends[0][1] == case.key  # keyed as received
        letters = [result.sends[0][2]]
        assert reads == []
    [letter] = [orjson.loads(x) for x in letters]
    assert letter["error"]["code"] == case.code
    assert (letter["topic"], letter["partition"], letter["offset"]) == (case.topic, 3, 42)
    assert letter["error"]["message"]
    expected = None if case.value is None else case.value[:4096].decode("utf-8", "replace")
    assert letter["payload"] is None or len(letter["payload"].encode()) <= 4096
    if expected is not None and len(case.value or b"") <= 1000:
        assert letter["payload"] == expected


def test_a_schema_violation_message_names_the_field() -> None:
    bad = orjson.dumps({**IMPRESSION, "timestamp": "soon"})
    result = Processor(Settings(), NAMES, Config).handle("impressions", b"u-1", bad, 0, 0, None, lambda k: None)
    message = orjson.loads(result.sends[0][2])["error"]["message"]
    assert message.startswith("timestamp:")


def test_unknown_fields_on_events_are_ignored_so_upstream_can_add_fields() -> None:
    extra = orjson.dumps({**CONVERSION, "browser": "firefox"})
    result = Processor(Settings(), NAMES, Config).handle("conversions", b"u-1", extra, 0, 0, None, lambda k: None)
    assert [t for t, _, _ in result.sends] != ["dead-letters"]
