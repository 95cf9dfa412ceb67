"""Contender 1 of `bench.stream_bench`: a raw aiokafka consume -> produce passthrough.

    python -m bench.passthrough_raw --broker 127.0.0.1:9092 --group G --out OUT TOPIC [TOPIC ...]

Reads the topics from the start in consumer group G and publishes every record, same key and value,
to OUT (acks=all, like the worker), at least once: offsets are committed only after the records
published since the last commit are acknowledged. No decoding, no state: the ceiling for a Python
consume -> produce loop on this machine. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

COMMIT_INTERVAL_S = 2.8  # Faust's default broker_commit_interval


async def run(broker: str, group: str, out: str, topics: Sequence[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=broker,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await consumer.start()
    await producer.start()
    try:
        pending: list[asyncio.Future[object]] = []
        last_commit = time.monotonic()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            send = producer.send
            for messages in batches.values():
                for m in messages:
                    pending.append(await send(out, m.value, m.key))
            if pending and time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                await asyncio.gather(*pending)
                pending.clear()
                await consumer.commit()
                last_commit = time.monotonic()
        if pending:
            await asyncio.gather(*pending)
            await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()
        with contextlib.suppress(Exception):
            await consumer.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args(argv)
    asyncio.run(run(args.broker, args.group, args.out, args.topics))


if __name__ == "__main__":
    main()
