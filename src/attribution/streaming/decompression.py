"""Bounded gzip decompression of Kafka record batches: a guard against decompression bombs.

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
Uncompressed batches and the other codecs are untouched (snappy, lz4 and zstd need `cramjam`,
which is not installed: aiokafka refuses such batches). `install()` checks the aiokafka version
and patches nothing on another one (a unit test fails then, so the patch is reviewed).
"""

from __future__ import annotations

import logging
import zlib
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


def install() -> bool:
    """Replace aiokafka's gzip decoder of v2 batches; False (nothing patched) on another version."""
    import aiokafka

    if not aiokafka.__version__.startswith(SUPPORTED_AIOKAFKA):
        log.warning("aiokafka %s: gzip batches are inflated whole (no decompression-bomb guard)", aiokafka.__version__)
        return False
    for name in _MODULES:
        try:
            module = import_module(name)
        except ImportError:  # the C extension is optional
            continue
        module.gzip_decode = bounded_gzip_records  # type: ignore[attr-defined]
    return True
