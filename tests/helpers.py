"""Builders for test records: domain objects and the JSON lines `replay` reads.

Every builder takes keyword overrides of any field; the defaults make one coherent world:
advertiser 10 runs line item 100 which carries pixel 1 in an active link, and user "u1" is the
user of every event unless told otherwise. Event ids are unique per call unless given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from attribution.contract import decode
from attribution.domain import (
    DEFAULT_LIMITS,
    EMPTY,
    AttributedConversion,
    Config,
    Conversion,
    Event,
    Limits,
    LineItem,
    Output,
    PiggybackFire,
    PiggybackPixel,
    Pixel,
    PixelLink,
    Touch,
    UnattributedConversion,
    UserState,
    step,
)

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
#: A fixed, realistic "now": 2023-11-14T22:13:20Z.
T0 = 1_700_000_000_000

ADVERTISER = 10
OTHER_ADVERTISER = 20
PIXEL = 1
LINE_ITEM = 100
USER = "u1"

_ids = itertools.count(1)


def _next_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


# --- domain objects ---------------------------------------------------------------------------


def pixel(**overrides: Any) -> Pixel:
    fields: dict[str, Any] = {"id": PIXEL, "advertiser_id": ADVERTISER, "name": "checkout pixel"}
    fields.update(overrides)
    if "piggyback_pixels" in fields:
        fields["piggyback_pixels"] = tuple(
            p if isinstance(p, PiggybackPixel) else PiggybackPixel(fields.get("pixel_type", "img"), p)
            for p in fields["piggyback_pixels"]
        )
    return Pixel(**fields)


def link(**overrides: Any) -> PixelLink:
    fields: dict[str, Any] = {"id": PIXEL}
    fields.update(overrides)
    return PixelLink(**fields)


def line_item(**overrides: Any) -> LineItem:
    fields: dict[str, Any] = {"id": LINE_ITEM, "advertiser_id": ADVERTISER, "pixels": (link(),)}
    fields.update(overrides)
    fields["pixels"] = tuple(fields["pixels"])
    return LineItem(**fields)


def impression(**overrides: Any) -> Touch:
    return _touch("impression", overrides)


def click(**overrides: Any) -> Touch:
    return _touch("click", overrides)


def _touch(kind: str, overrides: dict[str, Any]) -> Touch:
    event_id = overrides.pop("event_id", None) or _next_id("imp" if kind == "impression" else "clk")
    fields: dict[str, Any] = {
        "kind": kind,
        "event_id": event_id,
        "user_id": USER,
        "timestamp": T0,
        "advertiser_id": ADVERTISER,
        "line_item_id": LINE_ITEM,
        "creative_id": 7,
        "auction_id": f"auction-of-{event_id}",
    }
    fields.update(overrides)
    return Touch(**fields)


def conversion(**overrides: Any) -> Conversion:
    fields: dict[str, Any] = {"event_id": _next_id("conv"), "pixel_id": PIXEL, "user_id": USER, "timestamp": T0}
    fields.update(overrides)
    return Conversion(**fields)


def config(pixels: Iterable[Pixel] | None = None, line_items: Iterable[LineItem] | None = None) -> Config:
    """Pixel 1 on active line item 100 unless told otherwise."""
    return Config.of(
        [pixel()] if pixels is None else pixels,
        [line_item()] if line_items is None else line_items,
    )


def fold_config(records: Iterable[tuple[str, str, dict[str, Any] | None]]) -> Config:
    """The config that `(topic, key, value)` records of the pixels and line-items topics leave, in
    order (None deletes): what `attribution.synth.config_records` describes."""
    pixels: dict[int, Any] = {}
    line_items: dict[int, Any] = {}
    for topic, key, value in records:
        table = pixels if topic == "pixels" else line_items
        if value is None:
            table.pop(int(key), None)
        else:
            record = decode(topic, orjson.dumps(value))
            table[record.id] = record  # type: ignore[union-attr]
    return Config(pixels, line_items)


# --- running the engine -----------------------------------------------------------------------


def run(
    events: Iterable[Event],
    cfg: Config | None = None,
    limits: Limits = DEFAULT_LIMITS,
    state: UserState = EMPTY,
) -> tuple[UserState, list[Output]]:
    """Fold `step` over the events of one user; all outputs in emission order."""
    cfg = config() if cfg is None else cfg
    outputs: list[Output] = []
    for event in events:
        state, out = step(state, event, cfg, limits)
        outputs.extend(out)
    return state, outputs


def outcomes(outputs: Sequence[Output]) -> list[AttributedConversion | UnattributedConversion]:
    return [o for o in outputs if isinstance(o, (AttributedConversion, UnattributedConversion))]


def fires(outputs: Sequence[Output]) -> list[PiggybackFire]:
    return [o for o in outputs if isinstance(o, PiggybackFire)]


def judge_last(events: Sequence[Event], cfg: Config | None = None, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The single outcome of the last event (a conversion) after the others were applied."""
    _, outputs = run(events, cfg, limits)
    result = outcomes(outputs)
    assert result, "no outcome at all"
    return result[-1]


def reason_of(events: Sequence[Event], cfg: Config | None = None, limits: Limits = DEFAULT_LIMITS) -> str:
    """`attributed:<post_click|post_view>` or the unattributed reason of the last conversion."""
    last = judge_last(events, cfg, limits)
    if isinstance(last, AttributedConversion):
        return f"attributed:{last.attribution}"
    return str(last.reason)


# --- JSON records and replay lines ------------------------------------------------------------


def pixel_json(**overrides: Any) -> dict[str, Any]:
    return {"id": PIXEL, "advertiser_id": ADVERTISER, "name": "checkout pixel", **overrides}


def line_item_json(**overrides: Any) -> dict[str, Any]:
    return {"id": LINE_ITEM, "advertiser_id": ADVERTISER, "pixels": [{"id": PIXEL}], **overrides}


def impression_json(**overrides: Any) -> dict[str, Any]:
    return _touch_json("imp", overrides)


def click_json(**overrides: Any) -> dict[str, Any]:
    return _touch_json("clk", overrides)


def _touch_json(prefix: str, overrides: dict[str, Any]) -> dict[str, Any]:
    event_id = overrides.pop("event_id", None) or _next_id(prefix)
    return {
        "event_id": event_id,
        "user_id": USER,
        "timestamp": T0,
        "advertiser_id": ADVERTISER,
        "line_item_id": LINE_ITEM,
        "creative_id": 7,
        "auction_id": f"auction-of-{event_id}",
        **overrides,
    }


def conversion_json(**overrides: Any) -> dict[str, Any]:
    return {"event_id": _next_id("conv"), "pixel_id": PIXEL, "user_id": USER, "timestamp": T0, **overrides}


def line(topic: str, value: Any, key: Any = None) -> bytes:
    """One replay line. `value` may be a dict (a record), None (a tombstone) or str (raw bytes)."""
    if key is None and isinstance(value, dict):
        key = value.get("id") if topic in ("pixels", "line-items") else value.get("user_id")
    entry: dict[str, Any] = {"topic": topic, "value": value}
    if key is not None:
        entry["key"] = key
    return orjson.dumps(entry)


def pixel_line(**overrides: Any) -> bytes:
    return line("pixels", pixel_json(**overrides))


def line_item_line(**overrides: Any) -> bytes:
    return line("line-items", line_item_json(**overrides))


def impression_line(**overrides: Any) -> bytes:
    return line("impressions", impression_json(**overrides))


def click_line(**overrides: Any) -> bytes:
    return line("clicks", click_json(**overrides))


def conversion_line(**overrides: Any) -> bytes:
    return line("conversions", conversion_json(**overrides))


def decoded(records: Iterable[bytes]) -> list[dict[str, Any]]:
    """Encoded output records back to dicts, for readable assertions."""
    return [orjson.loads(r) for r in records]


async def answer(call: Any) -> Any:
    """The HTTP API's reply to `call`, an error reply included (an `ApiError` carries one)."""
    from attribution.web.api import ApiError, error_reply

    try:
        return await call
    except ApiError as exc:
        return error_reply(exc)


def record_batch(
    codec: int, records: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]], base_offset: int = 0
) -> bytes:
    """One Kafka record batch (format v2) of `records` (key, value, headers) compressed with
    `codec` (aiokafka's codec constant), its first offset `base_offset`: what a fetch returns."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    for i, (key, value, headers) in enumerate(records):
        builder.append(i, timestamp=1000 + i, key=key, value=value, headers=headers)
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big")  # the base offset is not covered by the CRC
    return bytes(raw)
