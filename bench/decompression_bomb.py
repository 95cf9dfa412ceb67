"""The memory a decompression bomb costs the worker, with and without the guard.

    python -m bench.decompression_bomb            # prints JSON lines: gzip, then snappy, lz4, zstd

A batch of one conversion record padded with spaces (valid JSON, highly compressible) is gzip'd
to about 300 KB, the size a broker accepts without complaint. Each measurement runs in a fresh
process: read the batch bytes, then decode the batch as the consumer does (aiokafka's
`MemoryRecords`) and hand each record to `Processor.handle`, as the events agent would. Reported:
VmRSS before, and the peak (VmHWM) after, in MB, and the record's dead-letter code.

The snappy, lz4 and zstd bombs decode to the same size as the gzip one (their compressed sizes
differ); the guard refuses them as undecodable batches past its 32 MiB budget.

Also: the cost of the guard on an ordinary batch of each codec (500 events of about 250 bytes), per
batch, guarded and not, and of the header check `Processor.handle` makes on every record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from importlib import import_module

import orjson

RECORD = {"event_id": "v-1", "pixel_id": 1, "user_id": "u-1", "timestamp": 1_767_225_600_000}
TARGET_COMPRESSED = 300_000
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _build(records: list[tuple[bytes, bytes]], codec: str = "gzip") -> bytes:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=CODECS[codec],
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 31,
    )
    for i, (key, value) in enumerate(records):
        builder.append(i, timestamp=1000 + i, key=key, value=value, headers=[])
    return bytes(builder.build())


def make_bomb(path: str, codec: str = "gzip") -> dict[str, object]:
    """Write a batch decoding to what a gzip batch of about TARGET_COMPRESSED bytes decodes to
    (deflate tops out near 1030:1)."""
    padding = TARGET_COMPRESSED * 1030
    value = orjson.dumps(RECORD) + b" " * padding
    raw = _build([(b"u-1", value)], codec)
    with open(path, "wb") as f:
        f.write(raw)
    return {"codec": codec, "compressed_bytes": len(raw), "decoded_bytes": len(value)}


def measure(path: str, guarded: bool) -> dict[str, object]:
    """In this (fresh) process: decode the batch and judge its record; memory before and peak."""
    from aiokafka.record.memory_records import MemoryRecords

    from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS
    from attribution.domain import Config
    from attribution.settings import Settings
    from attribution.streaming import decompression
    from attribution.streaming.processor import Processor

    if guarded:
        assert decompression.install()
    processor = Processor(Settings(), {t: t for t in (*EVENT_TOPICS, *CONFIG_TOPICS)}, Config)
    with open(path, "rb") as f:
        raw = f.read()
    before = _status("VmRSS:")
    start = time.perf_counter()
    codes = []
    batch = MemoryRecords(raw).next_batch()
    assert batch is not None
    try:
        for r in batch:
            result = processor.handle("conversions", r.key, r.value, 0, r.offset, list(r.headers), lambda k: None)
            codes += [orjson.loads(v)["error"]["code"] for t, _, v in result.sends if t == "dead-letters"]
            del r, result
    except decompression.UndecodableBatch as exc:
        codes.append(f"undecodable batch ({exc})")
    elapsed = time.perf_counter() - start
    return {
        "guarded": guarded,
        "rss_before_mb": round(before / 1e6, 1),
        "peak_rss_mb": round(_status("VmHWM:") / 1e6, 1),
        "seconds": round(elapsed, 2),
        "dead_letters": codes,
    }


def ordinary_batch_cost(codec: str = "gzip") -> dict[str, object]:
    """µs to decode one ordinary batch of a codec (500 events), with and without the guard."""
    from aiokafka.record.memory_records import MemoryRecords

    from attribution.contract import reject_oversized
    from attribution.streaming import decompression

    events = [
        (f"u-{i}".encode(), orjson.dumps({**RECORD, "event_id": f"v-{i}", "user_id": f"u-{i}"})) for i in range(500)
    ]
    raw = _build(events, codec)

    def decode() -> None:
        batch = MemoryRecords(raw).next_batch()
        assert batch is not None
        for r in batch:
            r.value  # noqa: B018 - materialise it, as the consumer does

    modules = [import_module(name) for name in decompression._MODULES]
    saved = [(m, attr, getattr(m, attr)) for m in modules for attr in decompression.DECODERS]
    plain = min(timeit.repeat(decode, number=200, repeat=5)) / 200
    assert decompression.install()
    try:
        guarded = min(timeit.repeat(decode, number=200, repeat=5)) / 200
    finally:  # the next codec's unguarded figure must be unguarded
        for module, attr, original in saved:
            setattr(module, attr, original)
    check = min(timeit.repeat(lambda: reject_oversized(None), number=1_000_000, repeat=5)) / 1_000_000
    return {
        "codec": codec,
        "batch_bytes": len(raw),
        "unguarded_us_per_batch": round(plain * 1e6, 1),
        "guarded_us_per_batch": round(guarded * 1e6, 1),
        "header_check_ns_per_record": round(check * 1e9, 1),
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3] == "guarded")))
        return
    for codec in CODECS:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bomb.batch")
            sizes = make_bomb(path, codec)
            print(json.dumps(sizes))
            for mode in ("unguarded", "guarded"):
                out = subprocess.run(
                    [sys.executable, "-m", "bench.decompression_bomb", "--measure", path, mode],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                print(out.strip())
    for codec in CODECS:
        print(json.dumps(ordinary_batch_cost(codec)))


if __name__ == "__main__":
    main()
