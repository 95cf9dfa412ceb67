"""`attribution pixels put|list|delete|export` and `attribution line-items put|list|delete`.

Configuration lives in the compacted `pixels` and `line-items` topics, keyed by the id as decimal
text; a null value (tombstone) deletes. `put` checks every record before publishing anything, with
the same checks and messages as the HTTP API (`attribution.app.config`: the contract first, then
the current config: unknown pixels, advertiser mismatches): one refused record refuses the whole
file (exit 1), so a file is applied entirely or not at all. `list` reads both topics to their current end, the way every worker does.
`pixels export ID` prints the pixel's tags (`attribution.web.tags`), like the worker's
`GET /pixels/{id}/tags`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Coroutine, Sequence
from typing import IO, Any, TypeVar

import click
import orjson

from attribution.app.config import LINE_ITEMS, PIXELS, ConfigService, Kind, label
from attribution.cli.common import kafka_options, run, settings_from
from attribution.contract import MAX_ID, config_id
from attribution.domain import Config, LineItem, Pixel
from attribution.errors import ConfigError, Conflict, Invalid, NotApplied, NotFound, Refused, Unavailable
from attribution.kafka.client import JSON_HEADERS, KafkaConfigStore
from attribution.settings import Settings

T = TypeVar("T")

#: Headers of every record (not tombstone) the CLI publishes.
HEADERS = JSON_HEADERS


class InputError(click.ClickException):
    """Input the command cannot read at all (not JSON, empty): exit code 2, one line."""

    exit_code = 2


def call(coro: Coroutine[Any, Any, T]) -> T:
    """`common.run`, plus a missing id or an unavailable config as one-line errors, exit 1. Refused records (`Invalid`, `Conflict`,
    `Refused`) go through: the command reports them record by record."""
    # aiokafka logs each failed connection attempt; a command reports the outcome in one line.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        return run(coro)
    except (NotFound, Unavailable, NotApplied) as exc:
        raise click.ClickException(str(exc)) from None


# --- reading and validating input files -------------------------------------------------------


def parse_file(data: bytes, what: str) -> list[Any]:
    """The JSON values of a file holding one object, a JSON array of them, or JSON lines."""
    text = data.strip()
    if not text:
        raise InputError(f"no {what}s in the input")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        values = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                values.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise InputError(f"line {n}: not valid JSON ({exc})") from None
        return values
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InputError(f"no {what}s in the input")
    return values


def refusals(exc: ConfigError, kind: Kind, values: Sequence[Any]) -> list[str]:
    """One `<what> <id or #position>: <message>` line per refused record."""
    if isinstance(exc, Refused):
        return [f"{name}: {error.message}" for name, error in exc.errors]
    return [f"{label(kind, values[0], 1)}: {exc.message}"]


# --- talking to Kafka ---------------------------------------------------------------------------


async def load_config(settings: Settings, timeout: float = 30.0) -> Config:
    """The current config, as every worker sees it: both topics read to their end, invalid
    records skipped, tombstones applied."""
    return await KafkaConfigStore(settings, timeout).current()


def put(kind: Kind, file: IO[bytes], broker: str | None, topic_prefix: str | None) -> None:
    try:
        data = file.read()
    except OSError as exc:
        raise InputError(f"cannot read {file.name}: {exc.strerror or exc}") from None
    values = parse_file(data, kind.what)
    service = ConfigService(KafkaConfigStore(settings_from(broker, topic_prefix)))
    try:
        service.check(kind, values)  # the contract first: no connection for a record it refuses
        stored, _ = call(service.put(kind, values))
    except (Invalid, Conflict, Refused) as exc:
        errors = refusals(exc, kind, values)
        for e in errors:
            click.echo(e, err=True)
        if len(values) > 1:
            click.echo(f"nothing published: {len(errors)} of {len(values)} {kind.what}s refused", err=True)
        raise click.exceptions.Exit(1) from None
    for obj in stored:
        click.echo(f"put {kind.what} {obj.id}")


def delete(kind: Kind, ident: int, broker: str | None, topic_prefix: str | None, force: bool) -> None:
    service = ConfigService(KafkaConfigStore(settings_from(broker, topic_prefix)))
    try:
        done = call(service.delete(kind, ident, force=force))
    except Conflict as exc:
        hint = ", or use --force" if exc.code == "pixel_in_use" else ""
        raise click.ClickException(f"{exc.message}{hint}") from None
    if done.carriers:
        config = done.config
        names = ", ".join(f"{li} ({config.line_items[li].state})" for li in done.carriers)
        noun = "line items" if len(done.carriers) > 1 else "line item"
        verb = "carry" if len(done.carriers) > 1 else "carries"
        click.echo(f"warning: {noun} {names} still {verb} pixel {ident}", err=True)
    click.echo(f"deleted {kind.what} {ident}")
    for pid in done.paused:
        click.echo(f"pixel {pid} is now paused: no other active line item carries it", err=True)


# --- rendering ------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


def minutes(mins: int) -> str:
    """A whole number of minutes in the largest exact unit: 1440 -> 1d, 90 -> 90m."""
    for unit, size in (("d", 1440), ("h", 60)):
        if mins % size == 0:
            return f"{mins // size}{unit}"
    return f"{mins}m"


def window(mins: int | None) -> str:
    return "off" if not mins else minutes(mins)


def repeat_rule(mins: int | None) -> str:
    if mins is None:
        return "one per user"
    if mins == 0:
        return "all"
    return f"every {mins} min"


def clip(text: str | None, width: int = 40) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 1] + "…"


def number(x: float) -> str:
    return f"{x:g}"


def pixel_rows(config: Config, pixels: Sequence[Pixel]) -> list[list[str]]:
    return [
        [
            str(p.id),
            str(p.advertiser_id),
            clip(p.name),
            p.state,
            p.trigger_type,
            window(p.post_view_expire_mins),
            window(p.post_click_expire_mins),
            repeat_rule(p.min_minutes_per_conv),
            "yes" if p.dedupe_order_id else "no",
            p.pixel_type,
            str(len(p.piggyback_pixels)),
            config.status(p.id) or "",
        ]
        for p in pixels
    ]


PIXEL_HEADERS = (
    "ID",
    "ADVERTISER",
    "NAME",
    "STATE",
    "TRIGGER",
    "POST-VIEW",
    "POST-CLICK",
    "REPEAT",
    "ORDER-DEDUP",
    "TYPE",
    "PIGGYBACKS",
    "STATUS",
)


def link_text(config: Config, item: LineItem) -> str:
    parts = []
    for link in item.pixels:
        notes: list[str] = []
        if link.state != "active":
            notes.append(link.state)
        if link.post_click_revenue is not None:
            notes.append(f"pc {number(link.post_click_revenue)}")
        if link.post_view_revenue is not None:
            notes.append(f"pv {number(link.post_view_revenue)}")
        pixel = config.pixels.get(link.id)
        if pixel is None:
            notes.append("unknown pixel")
        elif pixel.advertiser_id != item.advertiser_id:
            notes.append(f"advertiser {pixel.advertiser_id}")
        parts.append(f"{link.id} ({', '.join(notes)})" if notes else str(link.id))
    return ", ".join(parts) or "-"


def line_item_rows(config: Config, items: Sequence[LineItem]) -> list[list[str]]:
    return [[str(li.id), str(li.advertiser_id), clip(li.name), li.state, link_text(config, li)] for li in items]


LINE_ITEM_HEADERS = ("ID", "ADVERTISER", "NAME", "STATE", "PIXELS (link state, post-click/post-view revenue)")


def list_items(kind: Kind, broker: str | None, topic_prefix: str | None, as_json: bool, advertiser: int | None) -> None:
    service = ConfigService(KafkaConfigStore(settings_from(broker, topic_prefix)))
    items, config = call(service.list_items(kind, advertiser))
    if as_json:
        for item in items:
            record = dataclasses.asdict(item)
            if kind is PIXELS:
                record["status"] = config.status(item.id)
            click.echo(orjson.dumps(record))
        return
    if not items:
        click.echo(f"no {kind.what}s", err=True)
        return
    if kind is PIXELS:
        click.echo(table(PIXEL_HEADERS, pixel_rows(config, items)))
    else:
        click.echo(table(LINE_ITEM_HEADERS, line_item_rows(config, items)))


# --- the commands -------------------------------------------------------------------------------

_file_arg = click.argument("file", metavar="FILE|-", type=click.File("rb"))
_json_opt = click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
_advertiser_opt = click.option(
    "--advertiser", type=click.IntRange(min=1, max=MAX_ID), default=None, help="Only this advertiser's."
)


def _positive(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if config_id(value) is None:
        raise click.BadParameter(f"{value} is not an id (ids are integers from 1 to {MAX_ID})")
    return value


_id_arg = click.argument("ident", metavar="ID", type=int, callback=_positive)
_force_opt = click.option("--force", is_flag=True, help="Delete even though line items still carry the pixel.")


@click.group("pixels")
def pixels_group() -> None:
    """Manage conversion pixels (compacted topic `pixels`)."""


@pixels_group.command("put")
@kafka_options
@_file_arg
def pixels_put(broker: str | None, topic_prefix: str | None, file: IO[bytes]) -> None:
    """Create or replace pixels from FILE (or stdin: -).

    FILE holds one pixel JSON object, a JSON array of them, or JSON lines. Every pixel is checked
    against the contract first; if any is invalid, nothing is published and the command exits 1.
    """
    put(PIXELS, file, broker, topic_prefix)


@pixels_group.command("list")
@kafka_options
@_json_opt
@_advertiser_opt
def pixels_list(broker: str | None, topic_prefix: str | None, as_json: bool, advertiser: int | None) -> None:
    """List pixels with their settings and status (active, paused or inactive)."""
    list_items(PIXELS, broker, topic_prefix, as_json, advertiser)


@pixels_group.command("delete")
@kafka_options
@_id_arg
@_force_opt
def pixels_delete(broker: str | None, topic_prefix: str | None, ident: int, force: bool) -> None:
    """Delete pixel ID (a tombstone). Refused while a line item still carries it, unless --force."""
    delete(PIXELS, ident, broker, topic_prefix, force)


@pixels_group.command("export")
@kafka_options
@_id_arg
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["all", "img", "js", "url", "sspx"]),
    default="all",
    show_default=True,
    help="Which form: the image tag, the JavaScript tag, the server-side URL, the server-side URL by "
    "auction token, or all four.",
)
@click.option("--value", is_flag=True, help="Add the value=[VALUE] placeholder (dynamic revenue).")
@click.option("--order-id", is_flag=True, help="Add the order_id=[ORDER_ID] placeholder.")
@click.option("--other", is_flag=True, help="Add the other=[OTHER] placeholder (external data).")
@click.option("--pixel-host", default=None, help="Host of the pixel server [env ATTRIBUTION_PIXEL_HOST].")
def pixels_export(
    broker: str | None,
    topic_prefix: str | None,
    ident: int,
    fmt: str,
    value: bool,
    order_id: bool,
    other: bool,
    pixel_host: str | None,
) -> None:
    """Print pixel ID's tags: the image tag, the JavaScript tag, the server-side URL and the
    server-side URL by auction token.

    Placeholders are added only when asked for; the page or server that fires the pixel replaces
    them: [VALUE] (a number >= 0), [ORDER_ID] (<= 36 chars), [OTHER] (<= 30 chars); the server-side
    URL also carries the user id, [USER_ID]; the one by auction token carries, last, the token the
    winning creative received, [SSPDATA].
    """
    from attribution.web import tags

    settings = settings_from(broker, topic_prefix, pixel_host=pixel_host)
    config = call(load_config(settings))
    pixel = config.pixels.get(ident)
    if pixel is None:
        raise click.ClickException(f"pixel {ident} not found")
    forms = tags.export(ident, settings.pixel_host, pixel.name, tags.Placeholders(value, order_id, other))
    if fmt != "all":
        click.echo(forms[fmt])
        return
    titles = {
        "img": "Image tag",
        "js": "JavaScript tag",
        "url": "Server-side URL",
        "sspx": "Server-side URL by auction token",
    }
    click.echo("\n\n".join(f"# {titles[k]}\n{forms[k]}" for k in ("img", "js", "url", "sspx")))


@click.group("line-items")
def line_items_group() -> None:
    """Manage line items and the pixels they carry (compacted topic `line-items`)."""


@line_items_group.command("put")
@kafka_options
@_file_arg
def line_items_put(broker: str | None, topic_prefix: str | None, file: IO[bytes]) -> None:
    """Create or replace line items from FILE (or stdin: -).

    FILE holds one line item JSON object, a JSON array of them, or JSON lines. Every line item is
    checked against the contract first; if any is invalid, nothing is published and the command
    exits 1.
    """
    put(LINE_ITEMS, file, broker, topic_prefix)


@line_items_group.command("list")
@kafka_options
@_json_opt
@_advertiser_opt
def line_items_list(broker: str | None, topic_prefix: str | None, as_json: bool, advertiser: int | None) -> None:
    """List line items with the pixels they carry (link state and booked revenues)."""
    list_items(LINE_ITEMS, broker, topic_prefix, as_json, advertiser)


@line_items_group.command("delete")
@kafka_options
@_id_arg
def line_items_delete(broker: str | None, topic_prefix: str | None, ident: int) -> None:
    """Delete line item ID (a tombstone); names the pixels this leaves paused."""
    delete(LINE_ITEMS, ident, broker, topic_prefix, force=False)


__all__ = ["line_items_group", "pixels_group"]
