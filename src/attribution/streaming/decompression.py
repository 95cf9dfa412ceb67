"""Bounded decompression of Kafka record batches, and a loud stop on a batch that cannot be decoded.

Why: Kafka checks the *compressed* size of a batch only. aiokafka 0.14 inflates a gzip batch whole
(`aiokafka.codec.gzip_decode`, then a `bytearray` copy) before it looks at a single record, and
then copies each value out: a 300 KB batch of a highly compressible payload becomes hundreds of
MB in the worker before the contract can dead-letter it as `record_too_large`. aiokafka has no
setting for this and we found no upstream issue for it; Kafka itself only recently bounded the
decompressed size on the broker (apache/kafka pull request #23447, "Bound decompressed record
size", `max.decompressed.message.bytes`, not in the 3.9 line we run). This module replaces the gzip
decoder of v2 record batches (`DefaultRecordBatch`, the only format a Kafka 3.x broker stores) with
one that bounds what it inflates:

* a batch that decodes to at most `FAST_LIMIT` bytes (every ordinary batch: the broker takes 1 MB
  compressed) is inflated in one step, at zlib's speed, and read as before;
* a larger one is inflated again in 64 KiB steps, its records parsed as they come out:
* a record of at most `RECORD_LIMIT` bytes is copied as it is, until the batch has produced
  `BATCH_LIMIT` bytes; after that only records no larger than a stub are copied;
* any other record is replaced by a *stub*: same offset delta, timestamp and key (at most 4 KiB of
  it), the first 4 KiB of its value, and one header, `TOO_LARGE_HEADER`, whose value is the
  record's decoded size. The rest of it is inflated and thrown away, never held. The contract
  (`contract.reject_oversized`) turns a stub into the usual `record_too_large` dead letter.

So a batch costs at most `FAST_LIMIT`, or `BATCH_LIMIT` plus a stub per record (about 8 KiB),
whatever its ratio (BENCHMARKS.md, "Decompression bombs", measures the peak memory of a bomb).

snappy, lz4 and zstd (decoded by `cramjam`, a pinned dependency) are bounded too, without stubs:
cramjam has no step-by-step decoder, so a batch is decoded into a buffer of `FAST_LIMIT` bytes
(one per consumer thread, reused), then, if it does not fit, of `BATCH_LIMIT` bytes; snappy's
blocks declare their decoded size and are checked before they are decoded. A batch that decodes
past `BATCH_LIMIT` is *undecodable*, like a batch of a codec that is not installed, a corrupt one,
or one of an unknown codec.

An undecodable batch stops the worker: aiokafka would raise a bare error naming the codec at best
("Libraries for lz4 compression codec not found") and Faust would crash on it. `install()` wraps
aiokafka's per-partition record iterator so that the error, `UndecodableBatchError`, names the
topic, partition, offset and codec, and is logged at CRITICAL level; the worker then exits
non-zero. Nothing at or past that offset was handed to the stream, so nothing past it is committed:
once the cause is fixed (the codec installed) a restarted worker reads the batch again. Skipping it
instead would lose its records silently; it stays an operator's decision (docs/reliability.md).

`install()` checks the aiokafka version and patches nothing on another one (a unit test fails then,
so the patch is reviewed). No upstream issue covers either problem that we know of.
"""

from __future__ import annotations

import logging
import re
import threading
import zlib
from collections.abc import Callable
from importlib import import_module
from typing import Any

from attribution.contract.codec import MAX_PAYLOAD_BYTES, MAX_RECORD_BYTES, TOO_LARGE_HEADER

log = logging.getLogger(__name__)

#: The aiokafka versions whose decoder this replaces (checked by `install` and a unit test).
SUPPORTED_AIOKAFKA = ("0.14.",)
#: The largest record (key, value, headers and framing) copied as it is: a value up to the
#: contract's limit, plus room for a key and headers. Larger ones become stubs.
RECORD_LIMIT = MAX_RECORD_BYTES + 65_536
#: A batch decoding to at most this many bytes is inflated in one step (the common, fast case).
FAST_LIMIT = 8 * 1_048_576
#: Decoded bytes one batch may produce in full records; later large records become stubs.
BATCH_LIMIT = 32 * 1_048_576
#: Bytes inflated per step.
CHUNK = 65_536
_KEY_KEEP = 4096
#: Records up to this size cost no more than a stub: copied even past BATCH_LIMIT.
_STUB_SIZE = 2 * 4096 + 64

_MODULES = ("aiokafka.record._crecords.default_records", "aiokafka.record.default_records")


class UndecodableBatch(Exception):
    """A batch one of our decoders could not decode (its codec and why); the record iterator
    turns it into an `UndecodableBatchError` that says where the batch is."""

    def __init__(self, codec: str, reason: str) -> None:
        super().__init__(f"{codec}: {reason}")
        self.codec = codec
        self.reason = reason


class UndecodableBatchError(RuntimeError):
    """A record batch of `topic`/`partition` at `offset` that the consumer cannot decode: the
    worker stops on it (module doc). Not a Kafka error, so no client retries it."""

    def __init__(self, topic: str, partition: int, offset: int, codec: str, reason: str) -> None:
        super().__init__(
            f"cannot decode the record batch of topic {topic!r} partition {partition} at offset {offset} "
            f"(codec {codec}): {reason}; nothing at or past this offset is processed or committed"
        )
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.codec = codec
        self.reason = reason


class _Inflater:
    """A gzip stream read in bounded steps (several gzip members in a row are read in turn)."""

    def __init__(self, data: Any) -> None:
        self._z = zlib.decompressobj(wbits=31)
        self._pending = bytes(data)
        self._buf = bytearray()
        self._pos = 0

    def _more(self) -> bool:
        while True:
            if self._z.eof:
                rest = self._z.unused_data
                if not rest.lstrip(b"\0"):
                    return False
                self._z, self._pending = zlib.decompressobj(wbits=31), rest
            if not self._pending and not self._z.unconsumed_tail:
                raise EOFError("the gzip stream of a record batch ended early")
            out = self._z.decompress(self._pending, CHUNK)
            self._pending = self._z.unconsumed_tail
            if out:
                if self._pos > CHUNK:
                    del self._buf[: self._pos]
                    self._pos = 0
                self._buf += out
                return True

    def has_more(self) -> bool:
        return self._pos < len(self._buf) or self._more()

    def _need(self, n: int) -> None:
        while len(self._buf) - self._pos < n:
            if not self._more():
                raise EOFError("a record ends past the end of its batch")

    def take(self, n: int) -> bytes:
        self._need(n)
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return out

    def skip(self, n: int) -> None:
        while n > 0:
            if self._pos >= len(self._buf) and not self._more():
                raise EOFError("a record ends past the end of its batch")
            step = min(n, len(self._buf) - self._pos)
            self._pos += step
            n -= step

    def varint(self) -> tuple[int, int]:
        """A zigzag varint: (value, bytes it took)."""
        shift = result = 0
        for i in range(10):
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1), i + 1
            shift += 7
        raise ValueError("a varint of a record is longer than 10 bytes")


def _zigzag(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _stub(inflater: _Inflater, length: int) -> bytes:
    """Read one record of `length` bytes, keeping only what its dead letter needs."""
    attributes = inflater.take(1)
    timestamp_delta, a = inflater.varint()
    offset_delta, b = inflater.varint()
    used = 1 + a + b
    parts: list[bytes] = []
    for keep in (_KEY_KEEP, MAX_PAYLOAD_BYTES):  # the key, then the value
        size, n = inflater.varint()
        used += n
        if size < 0:
            parts.append(_zigzag(-1))
            continue
        kept = inflater.take(min(size, keep))
        inflater.skip(size - len(kept))
        used += size
        parts.append(_zigzag(len(kept)) + kept)
    inflater.skip(length - used)  # the headers: not kept
    name, value = TOO_LARGE_HEADER.encode(), str(length).encode()
    header = _zigzag(1) + _zigzag(len(name)) + name + _zigzag(len(value)) + value
    body = attributes + _zigzag(timestamp_delta) + _zigzag(offset_delta) + b"".join(parts) + header
    return _zigzag(len(body)) + body


def bounded_gzip_records(payload: Any) -> bytes:
    """The records of a gzip-compressed v2 batch, oversized ones replaced by stubs (module doc)."""
    z = zlib.decompressobj(wbits=31)
    whole = z.decompress(payload, FAST_LIMIT + 1)
    if z.eof and not z.unused_data.strip(b"\0") and len(whole) <= FAST_LIMIT:
        return whole  # one gzip member, within the budget: nothing to cut short
    del whole, z
    inflater = _Inflater(payload)
    out = bytearray()
    produced = 0
    while inflater.has_more():
        length, n = inflater.varint()
        if length < 0:
            raise ValueError("a record of a batch has a negative length")
        if length <= _STUB_SIZE or (length <= RECORD_LIMIT and produced + length <= BATCH_LIMIT):
            out += _zigzag(length)
            out += inflater.take(length)
            produced += n + length
        else:
            out += _stub(inflater, length)
    return bytes(out)


def guarded_gzip_records(payload: Any) -> bytes:
    """`bounded_gzip_records`, with a stream it cannot read reported as an `UndecodableBatch`."""
    try:
        return bounded_gzip_records(payload)
    except (zlib.error, EOFError, ValueError) as exc:
        raise UndecodableBatch("gzip", str(exc) or type(exc).__name__) from exc


_buffers = threading.local()


def _fast_buffer() -> bytearray:
    """This thread's `FAST_LIMIT` decode buffer (allocated on first use, then reused)."""
    buf: bytearray | None = getattr(_buffers, "fast", None)
    if buf is None or len(buf) != FAST_LIMIT:
        buf = _buffers.fast = bytearray(FAST_LIMIT)
    return buf


def _bounded_into(codec: str, decode_into: Callable[[Any, Any], int], payload: Any) -> bytes:
    """Decode a whole-buffer codec (lz4, zstd) into at most `BATCH_LIMIT` bytes."""
    error: Exception | None = None
    for buffer in (_fast_buffer(), None):
        buf = buffer if buffer is not None else bytearray(BATCH_LIMIT)
        try:
            n = decode_into(payload, buf)
        except Exception as exc:  # cramjam raises its own DecompressionError, also for a full buffer
            error = exc
            continue
        return bytes(memoryview(buf)[:n])
    assert error is not None
    if "whole buffer" in str(error):  # the buffer filled up before the stream ended
        raise UndecodableBatch(codec, f"it decodes to more than {BATCH_LIMIT} bytes") from error
    raise UndecodableBatch(codec, str(error) or type(error).__name__) from error


def _cramjam() -> Any:
    try:
        import cramjam
    except ImportError:  # aiokafka checks for it before it calls a decoder; this is a second guard
        return None
    return cramjam


def bounded_lz4_records(payload: Any) -> bytes:
    """The records of an lz4 (frame) batch, decoded into at most `BATCH_LIMIT` bytes."""
    cramjam = _cramjam()
    if cramjam is None:
        raise UndecodableBatch("lz4", "the lz4 codec (cramjam) is not installed")
    return _bounded_into("lz4", cramjam.lz4.decompress_into, bytes(payload))


def bounded_zstd_records(payload: Any) -> bytes:
    """The records of a zstd batch, decoded into at most `BATCH_LIMIT` bytes."""
    cramjam = _cramjam()
    if cramjam is None:
        raise UndecodableBatch("zstd", "the zstd codec (cramjam) is not installed")
    return _bounded_into("zstd", cramjam.zstd.decompress_into, bytes(payload))


_XERIAL_HEADER = b"\x82SNAPPY\x00"


def bounded_snappy_records(payload: Any) -> bytes:
    """The records of a snappy batch (xerial blocks, as Java producers write, or one raw block),
    each block's declared size checked against `BATCH_LIMIT` before it is decoded."""
    cramjam = _cramjam()
    if cramjam is None:
        raise UndecodableBatch("snappy", "the snappy codec (cramjam) is not installed")
    data = memoryview(bytes(payload))
    blocks: list[memoryview] = []
    if len(data) > 16 and bytes(data[:8]) == _XERIAL_HEADER:
        pos = 16
        while pos < len(data):
            if pos + 4 > len(data):
                raise UndecodableBatch("snappy", "a block length is cut short")
            size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
            if size < 0 or pos + 4 + size > len(data):
                raise UndecodableBatch("snappy", "a block ends past the end of the batch")
            blocks.append(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
    else:
        blocks.append(data)
    out = bytearray()
    for block in blocks:
        try:
            size = cramjam.snappy.decompress_raw_len(block)
            if len(out) + size > BATCH_LIMIT:
                raise UndecodableBatch("snappy", f"it decodes to more than {BATCH_LIMIT} bytes")
            out += cramjam.snappy.decompress_raw(block)
        except UndecodableBatch:
            raise
        except Exception as exc:
            raise UndecodableBatch("snappy", str(exc) or type(exc).__name__) from exc
    return bytes(out)


#: aiokafka's decoder names -> ours (module globals of its v2 batch readers).
DECODERS: dict[str, Callable[[Any], bytes]] = {
    "gzip_decode": guarded_gzip_records,
    "snappy_decode": bounded_snappy_records,
    "lz4_decode": bounded_lz4_records,
    "zstd_decode": bounded_zstd_records,
}

_CODEC_IN_MESSAGE = re.compile(r"for (\w+) compression codec|compression codec (0x[0-9a-fA-F]+)")


def _codec_of(exc: BaseException) -> str:
    """The codec an error of a batch is about: ours say it, aiokafka's name it in their message."""
    if isinstance(exc, UndecodableBatch):
        return exc.codec
    found = _CODEC_IN_MESSAGE.search(str(exc))
    return next((g for g in found.groups() if g), "unknown") if found else "unknown"


def _guard_partition_records(cls: Any) -> None:
    """Wrap `PartitionRecords.__next__` (aiokafka's records of one partition from one fetch)."""
    if getattr(cls.__next__, "_undecodable_guard", False):
        return
    original = cls.__next__

    def guarded_next(self: Any) -> Any:
        try:
            return original(self)
        except StopIteration:
            raise
        except Exception as exc:
            tp = self._tp
            reason = exc.reason if isinstance(exc, UndecodableBatch) else f"{type(exc).__name__}: {exc}"
            error = UndecodableBatchError(tp.topic, tp.partition, self.next_fetch_offset, _codec_of(exc), reason)
            log.critical("%s; the worker stops (docs/reliability.md)", error)
            raise error from exc

    guarded_next._undecodable_guard = True  # type: ignore[attr-defined]
    cls.__next__ = guarded_next


def install() -> bool:
    """Replace aiokafka's decoders of v2 batches with the bounded ones and make an undecodable
    batch name itself; False (nothing patched) on another aiokafka version."""
    import aiokafka

    if not aiokafka.__version__.startswith(SUPPORTED_AIOKAFKA):
        log.warning(
            "aiokafka %s: batches are decoded whole (no decompression-bomb guard), undecodable ones unnamed",
            aiokafka.__version__,
        )
        return False
    for name in _MODULES:
        try:
            module = import_module(name)
        except ImportError:  # the C extension is optional
            continue
        for attr, decoder in DECODERS.items():
            setattr(module, attr, decoder)
    _guard_partition_records(import_module("aiokafka.consumer.fetcher").PartitionRecords)
    return True
