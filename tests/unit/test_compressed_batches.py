"""Record batches of every codec: snappy, lz4 and zstd decode (cramjam is a dependency) within the
same bounds as gzip, and a batch the consumer cannot decode stops it with an error that says which
topic, partition, offset and codec, instead of a bare crash."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import aiokafka.codec
import cramjam
import pytest
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from attribution.streaming import decompression
from attribution.streaming.decompression import UndecodableBatch, UndecodableBatchError
from helpers import record_batch

NONE, GZIP, SNAPPY, LZ4, ZSTD = range(5)
CODECS = {"gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
TOPIC = TopicPartition("impressions", 2)
#: Compressible, like JSON events: a batch of these decodes to far more than it weighs.
RECORDS: list[tuple[bytes | None, bytes | None]] = [
    (b"u-1", b'{"event_id":"i-1","user_id":"u-1","line_item_id":"li-1","timestamp":1000}'),
    (None, None),
    (b"u-2", b"x" * 300_000),
    (b"", b""),
]


@pytest.fixture(autouse=True)
def installed() -> Iterator[None]:
    """The guard installed as the worker runs it, everything it replaced put back afterwards."""
    saved = [(m, n, getattr(m, n)) for m in map(import_module, decompression._MODULES) for n in decompression.DECODERS]
    saved.append((PartitionRecords, "__next__", PartitionRecords.__next__))
    assert decompression.install()
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def batch(codec: int, records: list[tuple[bytes | None, bytes | None]], base_offset: int = 0) -> bytes:
    return record_batch(codec, [(key, value, []) for key, value in records], base_offset)


def read(raw: bytes) -> list[tuple[bytes | None, bytes | None]]:
    records = MemoryRecords(raw).next_batch()
    assert records is not None
    return [(r.key, r.value) for r in records]


def consume(raw: bytes, check_crcs: bool = True) -> list[Any]:
    """What aiokafka's fetcher hands a consumer for one partition's fetched bytes."""
    records = PartitionRecords(TOPIC, MemoryRecords(raw), [], 0, None, None, check_crcs, 0)
    return list(records)


@pytest.mark.parametrize("codec", CODECS)
def test_a_batch_of_every_codec_reads_exactly_as_it_was_written(codec: str) -> None:
    assert read(batch(CODECS[codec], RECORDS)) == RECORDS


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_a_batch_over_the_fast_budget_but_within_the_batch_budget_still_reads_whole(
    codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decompression, "FAST_LIMIT", 1000)
    monkeypatch.setattr(decompression._buffers, "fast", None, raising=False)
    assert read(batch(CODECS[codec], RECORDS)) == RECORDS


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_a_batch_decoding_past_the_batch_budget_is_undecodable_and_never_decoded_whole(
    codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = batch(CODECS[codec], RECORDS)
    monkeypatch.setattr(decompression, "FAST_LIMIT", 1000)
    monkeypatch.setattr(decompression, "BATCH_LIMIT", 200_000)
    monkeypatch.setattr(decompression._buffers, "fast", None, raising=False)
    with pytest.raises(UndecodableBatch, match=f"{codec}: it decodes to more than 200000 bytes"):
        read(raw)


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_a_batch_of_a_codec_that_is_not_installed_stops_the_consumer_naming_topic_partition_offset_and_codec(
    codec: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Two batches: the plain one is handed over, then the compressed one stops the consumer.
    raw = batch(NONE, RECORDS[:2], base_offset=40) + batch(CODECS[codec], RECORDS, base_offset=42)
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # as if cramjam were not installed
    records = PartitionRecords(TOPIC, MemoryRecords(raw), [], 40, None, None, True, 0)
    handed = [next(records).offset, next(records).offset]
    with caplog.at_level(logging.CRITICAL), pytest.raises(UndecodableBatchError) as info:
        next(records)
    assert handed == [40, 41]
    error = info.value
    assert (error.topic, error.partition, error.offset, error.codec) == ("impressions", 2, 42, codec)
    assert f"Libraries for {codec} compression codec not found" in error.reason
    message = str(error)
    assert "topic 'impressions' partition 2 at offset 42 (codec " + codec + ")" in message
    assert "nothing at or past this offset is processed or committed" in message
    assert message in caplog.text
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)


def test_a_decoder_finding_the_codec_gone_says_so_too(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = batch(LZ4, RECORDS)
    monkeypatch.setattr(decompression, "_cramjam", lambda: None)
    with pytest.raises(UndecodableBatch, match="lz4: the lz4 codec"):
        read(raw)


def test_a_corrupt_gzip_stream_is_an_undecodable_batch_named_by_its_codec() -> None:
    raw = bytearray(batch(GZIP, RECORDS))
    raw[-20:] = bytes(20)  # the end of the gzip stream (unchecked: CRC checks are off below)
    with pytest.raises(UndecodableBatchError, match=r"at offset 0 \(codec gzip\)"):
        consume(bytes(raw), check_crcs=False)


def test_a_batch_failing_its_crc_stops_the_consumer_with_its_position_too() -> None:
    raw = bytearray(batch(ZSTD, RECORDS))
    raw[-5] ^= 0xFF
    with pytest.raises(UndecodableBatchError, match=r"topic 'impressions' partition 2 at offset 0 .*Invalid CRC"):
        consume(bytes(raw))


def test_an_unknown_codec_is_named_by_its_number() -> None:
    raw = bytearray(batch(NONE, RECORDS[:1]))
    raw[22] = (raw[22] & ~0x07) | 0x06  # attributes: codec 6 does not exist
    with pytest.raises(UndecodableBatchError, match=r"codec 0x06"):
        consume(bytes(raw), check_crcs=False)


def test_installing_twice_wraps_the_record_iterator_once() -> None:
    wrapped = PartitionRecords.__next__
    assert decompression.install()
    assert PartitionRecords.__next__ is wrapped


def test_the_codecs_are_installed_from_an_exactly_pinned_dependency() -> None:
    with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    assert [d for d in dependencies if d.startswith("cramjam")] == [f"cramjam=={cramjam.__version__}"]
    assert [aiokafka.codec.has_snappy(), aiokafka.codec.has_lz4(), aiokafka.codec.has_zstd()] == [True, True, True]
