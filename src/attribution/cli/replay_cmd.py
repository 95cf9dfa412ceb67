"""`attribution replay INPUT... --out DIR`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import orjson
from tqdm import tqdm

from attribution.cli.common import settings_from
from attribution.domain import Config
from attribution.replay import OUTPUT_FILES, FileSink, replay_inputs
from attribution.replay_order import Input, split_lines


@click.command("replay")
@click.argument(
    "input_paths", metavar="INPUT...", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True)
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for the output files."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal)."
)
@click.option(
    "--reports",
    "reports_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    metavar="FILE",
    help="Also write the hourly report rows (as on conversion-reports) to FILE, one JSON row per line.",
)
@click.option(
    "--memory",
    "memory_mb",
    type=click.IntRange(min=1),
    default=None,
    metavar="MIB",
    help="Users' decoded states kept in memory, estimated MiB (default ATTRIBUTION_REPLAY_MEMORY_MB, 128); "
    "past it, replay goes on one shard of users at a time, the others' states in a temporary file.",
)
def replay_cmd(
    input_paths: tuple[str, ...], out_dir: str, progress: bool | None, reports_path: str | None, memory_mb: int | None
) -> None:
    """Replay JSON-lines files of records through the engine, offline.

    Each line is {"topic": NAME, "key": ..., "value": record or null}. Several INPUTs (for example
    one dump per topic) replay as one file, concatenated in the order given; "-" is standard input.
    Memory stays bounded whatever the size: inputs in time order are merged as they are read,
    others sorted through temporary files (in TMPDIR), and users' states beyond --memory wait in
    a temporary file until their user comes again. Writes one file per output topic into
    --out: attributed-conversions.jsonl, unattributed-conversions.jsonl, piggyback-fires.jsonl,
    dead-letters.jsonl. Server-side conversions' tokens are verified with the worker's keys
    (ATTRIBUTION_TOKEN_SECRET, ATTRIBUTION_TOKEN_KEY_ID, ATTRIBUTION_TOKEN_KEYS). With --reports
    FILE, the hourly report rows of those outcomes too, computed by the same fold as the worker's
    conversion-reports rows, ordered by hour, pixel, line item.
    """
    settings = settings_from()
    inputs: list[Input] = []
    for path in input_paths:
        if path == "-":
            inputs.append(split_lines(sys.stdin.buffer))
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise click.UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        inputs.append(Path(path))
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        sink = FileSink(out)
    except OSError as exc:
        raise click.UsageError(f"cannot create --out {out_dir}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    try:
        with tqdm(unit="event", unit_scale=True, disable=_no_bar(progress), file=sys.stderr) as bar:
            memory = (memory_mb or settings.replay_memory_mb) * 2**20
            result = replay_inputs(
                inputs, sink, settings.limits, progress=bar.update, keys=settings.token_key_map, memory=memory
            )
    finally:
        sink.close()
    if reports_path is not None:
        write_reports(out, Path(reports_path), result.config)
    elapsed = time.perf_counter() - started
    counts = ", ".join(f"{result.counts[t]} {t}" for t in OUTPUT_FILES)
    rate = result.events / elapsed if elapsed else 0.0
    click.echo(f"replayed {result.events} events in {elapsed:.2f}s ({rate:,.0f}/s): {counts}", err=True)


def _no_bar(progress: bool | None) -> bool | None:
    if progress is None:
        return None if os.environ.get("TERM") != "dumb" else True  # tqdm: None = only on a tty
    return not progress


def write_reports(out: Path, path: Path, config: Config) -> int:
    """Fold the outcome files of `out` into report rows and write them to `path`; returns the count."""
    from attribution.app.hourly import outcome_rows

    def advertiser_of(pixel_id: int) -> int | None:
        pixel = config.pixels.get(pixel_id)
        return None if pixel is None else pixel.advertiser_id

    def outcomes() -> Iterator[bytes]:
        for topic in ("attributed-conversions", "unattributed-conversions"):
            with open(out / OUTPUT_FILES[topic], "rb") as f:
                yield from (line for line in f if line.strip())

    records = outcome_rows(outcomes(), advertiser_of)
    try:
        with open(path, "wb") as f:
            f.writelines(orjson.dumps(r) + b"\n" for r in records)
    except OSError as exc:
        raise click.UsageError(f"cannot write --reports {path}: {exc.strerror or exc}") from None
    return len(records)
