"""Contender 2 of `bench.stream_bench`: a bare Faust agent passthrough, the framework's own cost.

    python -m bench.passthrough_faust --broker 127.0.0.1:9092 --app-id ID --data-dir DIR --out OUT TOPIC [...]

One agent (concurrency 1, like the worker's) over the topics, raw bytes in and out, publishing every
record with the same key and value to OUT. The app has the worker's Faust settings (acks=all,
earliest, raw serializers, the 5 ms producer linger, the same commit policy) and the same client
tuning (the shortened fetch wait, the fast record hand-off of `attribution.streaming.delivery`, uvloop
unless ATTRIBUTION_EVENT_LOOP=asyncio); no decoding, no table, no web server. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import faust

from attribution.settings import Settings
from attribution.streaming.delivery import install as install_fast_delivery
from attribution.streaming.tuning import install_event_loop, tune_fetch


def create_app(broker: str, app_id: str, data_dir: str, out: str, topics: Sequence[str]) -> faust.App:
    app = faust.App(
        app_id,
        broker=f"kafka://{broker}",
        datadir=data_dir,
        autodiscover=False,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=0.005,
        key_serializer="raw",
        value_serializer="raw",
    )
    source = app.topic(*topics, key_type=bytes, value_type=bytes)
    sink = app.topic(out, key_type=bytes, value_type=bytes)

    @app.on_partitions_assigned.connect
    async def fetch_sooner(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        tune_fetch(app)
        install_fast_delivery(app)

    @app.agent(source, concurrency=1)
    async def passthrough(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            m = event.message
            await sink.send(key=m.key, value=m.value)

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args(argv)
    install_event_loop(Settings.from_env().event_loop)
    app = create_app(args.broker, args.app_id, args.data_dir, args.out, args.topics)
    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
