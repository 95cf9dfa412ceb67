"""Fuzz the decoder and the processor: whatever the bytes, the only way out is a domain object or
the dead-letter path (a RecordError); nothing else is ever raised."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, decode
from attribution.domain import Config
from attribution.errors import RecordError
from attribution.settings import Settings
from attribution.streaming.processor import Processor
from attribution.streaming.topics import INTERNAL_TOPICS
from hostile import CONVERSION, IMPRESSION, LINE_ITEM, PIXEL

TOPICS = (*EVENT_TOPICS, *CONFIG_TOPICS)
GOOD = {
    "impressions": IMPRESSION,
    "clicks": IMPRESSION,
    "conversions": CONVERSION,
    "pixels": PIXEL,
    "line-items": LINE_ITEM,
}
NAMES = {t: t for t in (*TOPICS, *INTERNAL_TOPICS)}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


@st.composite
def mutated_records(draw: Any) -> tuple[str, bytes]:
    """A valid record of a random topic with fields dropped, replaced or added at random."""
    topic = draw(st.sampled_from(TOPICS))
    record = dict(GOOD[topic])
    for field in draw(st.lists(st.sampled_from(sorted(record)), max_size=3)):
        if draw(st.booleans()):
            record.pop(field, None)
        else:
            record[field] = draw(json_values)
    record.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    try:
        return topic, orjson.dumps(record)
    except TypeError:  # an integer orjson will not write: send its text instead
        return topic, repr(record).encode()


def _decodes_or_dead_letters(topic: str, raw: bytes) -> None:
    error: RecordError | None = None
    try:
        decode(topic, raw)
    except RecordError as exc:
        error = exc
    if error is not None:
        assert error.code
        assert error.message


@given(st.sampled_from(TOPICS), st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_become_a_dead_letter(topic: str, raw: bytes) -> None:
    _decodes_or_dead_letters(topic, raw)


@given(mutated_records())
def test_mutated_records_decode_or_become_a_dead_letter(case: tuple[str, bytes]) -> None:
    _decodes_or_dead_letters(*case)


@given(mutated_records(), st.one_of(st.none(), st.binary(max_size=20)))
def test_the_processor_never_raises_whatever_the_record_and_key(case: tuple[str, bytes], key: bytes | None) -> None:
    topic, raw = case
    processor = Processor(Settings(), NAMES, Config)
    if topic in CONFIG_TOPICS:
        processor.check_config(topic, key, raw, 0, 0)
    else:
        result = processor.handle(topic, key, raw, 0, 0, None, lambda k: None)
        assert len(result.sends) <= 1 or all(t != "dead-letters" for t, _, _ in result.sends)
