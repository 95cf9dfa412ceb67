"""The decompression-bomb guard: gzip batches inflated in bounded steps, oversized records cut
short into stubs that the contract dead-letters as `record_too_large`."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import aiokafka
import orjson
import pytest
from aiokafka.record.memory_records import MemoryRecords

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS
from attribution.domain import Config
from attribution.settings import Settings
from attribution.streaming import decompression
from attribution.streaming.config_cache import ConfigCache
from attribution.streaming.processor import Processor
from attribution.streaming.topics import INTERNAL_TOPICS
from helpers import record_batch
from hostile import CONVERSION, PIXEL

GZIP = 1
NAMES = {t: t for t in (*EVENT_TOPICS, *CONFIG_TOPICS, *INTERNAL_TOPICS)}
#: A valid conversion followed by 2 MiB of spaces: valid JSON, so a prefix of it would decode too.
PADDED = orjson.dumps(CONVERSION) + b" " * (2 * 1_048_576)


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The guard installed, every batch taken on its record-by-record path."""
    monkeypatch.setattr(decompression, "FAST_LIMIT", 0)
    yield from _installed()


@pytest.fixture
def fast() -> Iterator[None]:
    """The guard installed as the worker runs it."""
    yield from _installed()


def _installed() -> Iterator[None]:
    """Install the guard for one test, then put back every decoder and iterator it replaced."""
    records = import_module("aiokafka.consumer.fetcher").PartitionRecords
    saved = [
        (m, name, getattr(m, name))
        for m in map(import_module, decompression._MODULES)
        for name in decompression.DECODERS
    ]
    saved.append((records, "__next__", records.__next__))
    assert decompression.install()
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def batch(records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> bytes:
    return record_batch(GZIP, records)


def read(raw: bytes) -> list[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    records = MemoryRecords(raw).next_batch()
    assert records is not None
    return [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in records]


def test_the_guard_is_installed_on_this_aiokafka_version() -> None:
    assert aiokafka.__version__.startswith(decompression.SUPPORTED_AIOKAFKA)


def test_on_another_aiokafka_version_nothing_is_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka, "__version__", "0.15.0")
    records = import_module("aiokafka.consumer.fetcher").PartitionRecords
    before = [getattr(m, n) for m in map(import_module, decompression._MODULES) for n in decompression.DECODERS]
    iterate = records.__next__
    assert not decompression.install()
    assert [getattr(m, n) for m in map(import_module, decompression._MODULES) for n in decompression.DECODERS] == before
    assert records.__next__ is iterate


def test_ordinary_records_read_exactly_as_without_the_guard(guarded: None) -> None:
    records: list[Any] = [
        (b"u-1", orjson.dumps(CONVERSION), []),
        (None, None, [("h", b"v"), ("attribution-source", b"clicks")]),
        (b"k" * 300, b"x" * 200_000, []),
        (b"", b"", []),
        (b"u-2", b"y" * (decompression.RECORD_LIMIT - 64), [("a", b"")]),
    ]
    got = read(batch(records))
    assert [(k, v, h) for _, _, k, v, h in got] == records
    assert [(o, t) for o, t, *_ in got] == [(i, 1000 + i) for i in range(len(records))]


def test_a_batch_within_the_fast_budget_is_read_whole_and_the_contract_judges_its_records(fast: None) -> None:
    got = read(batch([(b"u-1", PADDED, [("x", b"y")]), (None, b"c", [])]))
    assert [(k, v, h) for _, _, k, v, h in got] == [(b"u-1", PADDED, [("x", b"y")]), (None, b"c", [])]


def test_a_batch_over_the_fast_budget_is_read_record_by_record(fast: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decompression, "FAST_LIMIT", len(PADDED) - 1)
    got = read(batch([(b"u-1", PADDED, []), (None, b"c", [])]))
    assert got[0][4][0][0] == "attribution-too-large"
    assert got[1][3] == b"c"


def test_a_record_over_the_limit_becomes_a_stub_with_its_position_key_prefix_and_decoded_size(guarded: None) -> None:
    got = read(batch([(b"u-1", b"a", []), (b"u-1", PADDED, [("x", b"y")]), (None, b"c", [])]))
    assert [v for *_, v, _ in got][::2] == [b"a", b"c"]
    offset, timestamp, key, value, headers = got[1]
    assert (offset, timestamp, key) == (1, 1001, b"u-1")
    assert value == PADDED[:4096]
    [(name, size)] = headers  # the record's own headers are not kept
    assert name == "attribution-too-large"
    assert len(PADDED) < int(size) < len(PADDED) + 32  # the whole record: value, key and framing


def test_a_huge_key_and_a_null_value_are_cut_short_too(guarded: None) -> None:
    [(_, _, key, value, headers)] = read(batch([(b"k" * 3_000_000, None, [])]))
    assert key == b"k" * 4096
    assert value is None
    assert headers[0][0] == "attribution-too-large"


def test_past_the_batch_budget_only_records_as_small_as_a_stub_are_copied(
    guarded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decompression, "BATCH_LIMIT", 250_000)
    records: list[Any] = [(b"u", b"x" * 100_000, []) for _ in range(4)] + [(b"u", b"small", [])]
    got = read(batch(records))
    cut = [h != [] for *_, h in got]
    assert cut == [False, False, True, True, False]
    assert got[-1][3] == b"small"


def test_several_gzip_members_are_read_in_turn_and_a_truncated_stream_is_an_error() -> None:
    records = batch([(b"k", b"v", [])])
    plain = gzip.decompress(records[61:])
    two = gzip.compress(plain[:3]) + gzip.compress(plain[3:])
    assert decompression.bounded_gzip_records(two) == plain
    with pytest.raises(EOFError):
        decompression.bounded_gzip_records(gzip.compress(plain)[:-12])


def test_a_stub_is_one_record_too_large_dead_letter_on_an_event_topic_and_touches_no_state() -> None:
    processor = Processor(Settings(), NAMES, Config)
    headers = [("attribution-too-large", b"314572800")]
    result = processor.handle("conversions", b"u-1", PADDED[:4096], 0, 7, headers, lambda k: pytest.fail("read"))
    assert (result.writes, result.rekeys) == ({}, [])
    [(topic, key, raw)] = result.sends
    letter = orjson.loads(raw)
    assert (topic, key, letter["error"]["code"]) == ("dead-letters", b"u-1", "record_too_large")
    assert letter["error"]["message"] == "record: 314572800 bytes once decompressed, over the 1048576 byte limit"
    assert letter["payload"] == PADDED[:4096].decode()


def test_a_stub_from_the_batch_budget_says_so() -> None:
    processor = Processor(Settings(), NAMES, Config)
    result = processor.handle("clicks", b"u", b"{}", 0, 7, [("attribution-too-large", b"2000")], lambda k: None)
    message = orjson.loads(result.sends[0][2])["error"]["message"]
    assert message.startswith("record: 2000 bytes, in a compressed batch that decodes to more than")


def test_a_stub_on_a_config_topic_is_dead_lettered_and_never_applied() -> None:
    prefix = orjson.dumps(PIXEL) + b" " * 10
    headers = [("attribution-too-large", b"5000000")]
    checked = Processor(Settings(), NAMES, Config).check_config("pixels", b"1", prefix, 0, 3, headers)
    assert checked is not None
    assert orjson.loads(checked[0])["error"]["code"] == "record_too_large"
    cache = ConfigCache(Settings())
    cache.apply("pixels", b"1", prefix, 0, 3, headers)
    assert cache.pixels == {}
