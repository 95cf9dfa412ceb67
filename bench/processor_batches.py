"""The processor's own CPU per event, without Kafka: batches the size a caught-up worker gets
against batches the size a backlog gives, on the same traffic, in the same run.

The traffic is the stream harness's latency phase at `--rate` (`bench.stream.phases`: as many
events per user as its inputs, over as much event time as wall time). Records are cut into fetches
of `--fetch-ms` of that traffic (a caught-up worker's: 20 ms at most, `streaming.tuning`) and each
fetch into one batch per topic and partition (4 partitions), which `Processor.handle_batch` handles
as the events agent does, states kept in a dict. The baseline is the same records in fetches of
8,000 (about 1,800 impressions per partition: a backlog's fetches are about 2,000 records). Only `handle_batch` and the dict writes are timed
(process CPU time); decoding the fetched records into Faust's and aiokafka's objects, the table's
changelog and the outputs' sends are not.

    .venv/bin/python -m bench.processor_batches --events 300000
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence

import orjson

from attribution.contract import decode
from attribution.domain import Config, LineItem, Pixel
from attribution.settings import Settings
from attribution.streaming.processor import Processor, _Message
from attribution.synth import TrafficSpec, config_records, events

PARTITIONS = 4
BACKLOG_FETCH = 8_000
TOPICS = ("impressions", "clicks", "conversions", "rekeyed-events", "event-time-ticks")

Records = list[tuple[str, bytes, bytes]]


def traffic(events_n: int, rate: int, seed: int) -> tuple[Config, Records]:
    """The configuration and the events of a latency phase at `rate` events/s."""
    users = max(1, events_n * 15_000 // 150_000)  # the stream harness's events per user
    spec = TrafficSpec(users=users, events=events_n, seed=seed, duration_ms=int(events_n / rate * 1000))
    pixels: dict[int, Pixel] = {}
    line_items: dict[int, LineItem] = {}
    for topic, _, value in config_records(spec):
        if value is None:
            continue
        record = decode(topic, orjson.dumps(value))
        if isinstance(record, Pixel):
            pixels[record.id] = record
        elif isinstance(record, LineItem):
            line_items[record.id] = record
    return Config(pixels, line_items), [(t, k.encode(), orjson.dumps(v)) for t, k, v in events(spec)]


def fetches(records: Records, size: int) -> Iterator[dict[tuple[str, int], list[_Message]]]:
    """`records` cut into fetches of `size` records, each one batch per topic and partition."""
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    for i in range(0, len(records), size):
        batches: dict[tuple[str, int], list[_Message]] = defaultdict(list)
        for topic, key, value in records[i : i + size]:
            tp = (topic, zlib.crc32(key) % PARTITIONS)
            batches[tp].append(_Message(key, value, offsets[tp], None))
            offsets[tp] += 1
        yield batches


def run(config: Config, records: Records, fetch_size: int, state_cache: int) -> tuple[float, int]:
    """(CPU seconds in `handle_batch`, batches handled) over `records` in fetches of `fetch_size`,
    with a cache of `state_cache` decoded states (`Settings.state_cache`)."""
    settings = Settings(state_cache=state_cache)
    processor = Processor(settings, {t: t for t in TOPICS}, lambda: config, clock=lambda: 0.0)
    table: dict[bytes, bytes] = {}
    cpu, count = 0.0, 0
    for batches in fetches(records, fetch_size):
        t0 = time.process_time()
        for (topic, partition), batch in batches.items():
            result = processor.handle_batch(topic, partition, batch, table.get)
            table.update(result.writes)
            for key in result.deletes:
                table.pop(key, None)
        cpu += time.process_time() - t0
        count += len(batches)
    return cpu, count


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rate", type=int, default=16_500, help="events/s of the live traffic (default 16,500)")
    parser.add_argument("--fetch-ms", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument(
        "--state-cache",
        type=int,
        default=Settings().state_cache,
        help="decoded states the processor keeps (default: the worker's); under the traffic's users "
        "(a tenth of --events), each new user's read drops one, as in production",
    )
    args = parser.parse_args(argv)
    config, records = traffic(args.events, args.rate, args.seed)
    live = max(1, args.rate * args.fetch_ms // 1000)
    print(
        f"{len(records):,} events at {args.rate:,} events/s, {PARTITIONS} partitions, "
        f"{args.state_cache:,} decoded states cached"
    )
    print("| batches | mean records | CPU s | us / event |\n|---|---:|---:|---:|")
    for name, size in ((f"live ({args.fetch_ms} ms fetches)", live), ("backlog", BACKLOG_FETCH)):
        cpu, count = run(config, records, size, args.state_cache)
        print(f"| {name} | {len(records) / count:,.1f} | {cpu:.2f} | {cpu / len(records) * 1e6:.2f} |")


if __name__ == "__main__":
    main()
