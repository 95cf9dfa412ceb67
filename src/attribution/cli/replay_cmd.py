"""`attribution replay INPUT --out DIR`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from attribution.cli.common import settings_from
from attribution.replay import OUTPUT_FILES, replay


@click.command("replay")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for the output files."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal)."
)
def replay_cmd(input_path: str, out_dir: str, progress: bool | None) -> None:
    """Replay a JSON-lines file of records through the engine, offline.

    Each line is {"topic": NAME, "key": ..., "value": record or null}. Writes one file per output
    topic into --out: attributed-conversions.jsonl, unattributed-conversions.jsonl,
    piggyback-fires.jsonl, dead-letters.jsonl.
    """
    settings = settings_from()
    try:
        data = sys.stdin.buffer.read() if input_path == "-" else Path(input_path).read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read {input_path}: {exc.strerror or exc}") from None
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"cannot create --out {out_dir}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    lines = data.splitlines()
    with tqdm(total=2 * len(lines), unit="rec", unit_scale=True, disable=_no_bar(progress), file=sys.stderr) as bar:
        result = replay(lines, settings.limits, progress=bar.update)
    elapsed = time.perf_counter() - started
    for topic, name in OUTPUT_FILES.items():
        records = result.outputs[topic]
        with open(out / name, "wb") as f:
            f.write(b"".join(r + b"\n" for r in records))
    counts = ", ".join(f"{len(result.outputs[t])} {t}" for t in OUTPUT_FILES)
    rate = result.events / elapsed if elapsed else 0.0
    click.echo(f"replayed {result.events} events in {elapsed:.2f}s ({rate:,.0f}/s): {counts}", err=True)


def _no_bar(progress: bool | None) -> bool | None:
    if progress is None:
        return None if os.environ.get("TERM") != "dumb" else True  # tqdm: None = only on a tty
    return not progress
