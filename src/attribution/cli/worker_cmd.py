"""`attribution worker` and `attribution topics create`."""

from __future__ import annotations

import click

from attribution.cli.common import kafka_options, run, settings_from


@click.command("worker")
@kafka_options
@click.option("-l", "--loglevel", default="info", show_default=True, help="Log level.")
@click.option("--store", default=None, help="Table store: memory:// or rocksdb:// [env ATTRIBUTION_STORE].")
@click.option("--data-dir", default=None, help="Data directory [env ATTRIBUTION_DATA_DIR].")
@click.option("--web-port", type=int, default=None, help="Web server port [env ATTRIBUTION_WEB_PORT].")
@click.option("--web-host", default=None, help="Web server bind address [env ATTRIBUTION_WEB_HOST].")
def worker_cmd(
    broker: str | None,
    topic_prefix: str | None,
    loglevel: str,
    store: str | None,
    data_dir: str | None,
    web_port: int | None,
    web_host: str | None,
) -> None:
    """Run a stream worker (Ctrl-C or SIGTERM stops it cleanly)."""
    from faust import Worker  # heavy import: only for this command

    from attribution.streaming.topics import create_topics, partition_counts, partition_mismatch
    from attribution.streaming.tuning import install_event_loop
    from attribution.worker import create_worker

    settings = settings_from(broker, topic_prefix, store=store, data_dir=data_dir, web_port=web_port, web_host=web_host)
    # Refuse before Faust starts: with a wrong count it would create changelogs that do not match,
    # crash on every record and still commit past them (nothing consumed, nothing committed here).
    mismatch = partition_mismatch(settings, run(partition_counts(settings)))
    if mismatch is not None:
        raise click.ClickException(mismatch)
    # Every topic the worker reads or writes, its tables' changelogs included, exists before Faust
    # starts (as `attribution topics create` leaves it): see `create_topics`.
    run(create_topics(settings))
    # uvloop's cheaper callbacks and timers cut the per-record cost of Faust's consumer, stream and
    # recovery paths (BENCHMARKS.md).
    try:
        install_event_loop(settings.event_loop)
    except ImportError:
        raise click.UsageError("uvloop is not installed: install it or set ATTRIBUTION_EVENT_LOOP=asyncio") from None
    app = create_worker(settings)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


@click.group("topics")
def topics_group() -> None:
    """Manage the product's Kafka topics."""


@topics_group.command("create")
@kafka_options
@click.option(
    "--partitions", type=int, default=None, help="Partitions of the co-partitioned topics [env ATTRIBUTION_PARTITIONS]."
)
def topics_create(broker: str | None, topic_prefix: str | None, partitions: int | None) -> None:
    """Create every topic idempotently: config topics compacted, input topics co-partitioned."""
    from attribution.streaming.topics import create_topics

    settings = settings_from(broker, topic_prefix, partitions=partitions)
    for name, what in sorted(run(create_topics(settings)).items()):
        click.echo(f"{what:8} {name}")
