"""Decode input records into domain objects and encode outputs, with orjson.

Topics are named by their default names (docs/design.md, Topics); a deployment's prefix is applied by the
streaming settings, never here. `decode` raises a `RecordError` subclass for a record that cannot
be used (`InvalidToken` for a server-side conversion whose token does not verify under the keys
passed in: the keys are the only thing decoding needs besides the record); `dead_letter` turns that error and the original bytes into the dead-letter record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from sys import intern
from typing import Any

import orjson

from attribution.contract.fastpath import field_reader
from attribution.contract.schemas import load_schema, validator
from attribution.domain import (
    AttributedConversion,
    Conversion,
    LineItem,
    Output,
    PiggybackFire,
    PiggybackPixel,
    Pixel,
    PixelLink,
    Touch,
    UnattributedConversion,
)
from attribution.errors import (
    InvalidConfig,
    InvalidEncoding,
    InvalidJson,
    InvalidKey,
    InvalidLineItem,
    InvalidToken,
    RecordError,
)
from attribution.tokens import verify

#: Auction token keys accepted, key id -> secret (`Settings.token_key_map`).
TokenKeys = Mapping[str, str]
_NO_KEYS: TokenKeys = {}

EVENT_TOPICS = ("impressions", "clicks", "conversions")
CONFIG_TOPICS = ("pixels", "line-items")
INPUT_TOPICS = EVENT_TOPICS + CONFIG_TOPICS
OUTPUT_TOPICS = ("attributed-conversions", "unattributed-conversions", "piggyback-fires", "dead-letters")

#: Larger values are refused before parsing (Kafka's own default message limit is 1 MB).
MAX_RECORD_BYTES = 1_048_576
#: Dead letters carry at most this much of the original payload.
MAX_PAYLOAD_BYTES = 4096
#: Header of a record the consumer cut short while decompressing its batch (`streaming.decompression`):
#: its value is the record's decoded size in bytes; the value holds only its first 4 KiB.
TOO_LARGE_HEADER = "attribution-too-large"

Decoded = Touch | Conversion | Pixel | LineItem

_TOPIC_OF: dict[type, str] = {
    AttributedConversion: "attributed-conversions",
    UnattributedConversion: "unattributed-conversions",
    PiggybackFire: "piggyback-fires",
}


def topic_of(output: Output) -> str:
    """The default output topic name of an engine output."""
    return _TOPIC_OF[type(output)]


def parse_json(raw: bytes) -> Any:
    """Bytes to a JSON object (dict), or raise InvalidEncoding / InvalidJson."""
    if len(raw) > MAX_RECORD_BYTES:
        raise InvalidEncoding(
            f"record: {len(raw)} bytes, over the {MAX_RECORD_BYTES} byte limit", code="record_too_large"
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise InvalidEncoding(f"record: not valid UTF-8 at byte {uexc.start}") from None
        raise InvalidJson(f"record: not valid JSON ({exc})") from None
    return value


def reject_oversized(headers: Sequence[tuple[str, bytes]] | None) -> None:
    """Raise `record_too_large` for a record cut short while its batch was decompressed (it carries
    `TOO_LARGE_HEADER`); its value is then only a prefix and must never be decoded as a record."""
    for name, raw in headers or ():
        if name == TOO_LARGE_HEADER:
            size = int(raw) if raw.isdigit() and len(raw) < 20 else None
            if size is not None and size <= MAX_RECORD_BYTES:
                why = f"record: {size} bytes, in a compressed batch that decodes to more than the worker takes at once"
            else:
                why = f"record: {'over' if size is None else size} bytes once decompressed, over the {MAX_RECORD_BYTES} byte limit"
            raise InvalidEncoding(why, code="record_too_large")


_TOUCH_FIELDS = (
    "event_id",
    "user_id",
    "timestamp",
    "advertiser_id",
    "line_item_id",
    "creative_id",
    "auction_id",
    "campaign_id",
    "imp_type",
)
_CONVERSION_FIELDS = ("event_id", "pixel_id", "user_id", "timestamp", "value", "order_id", "other", "token")


#: One int object per id seen (advertisers, line items, creatives, campaigns), so that the touches a
#: replay keeps share them instead of holding 28 bytes each of their own; emptied when it grows large.
_SHARED_IDS: dict[Any, Any] = {}  # int | None -> the same
_MAX_SHARED_IDS = 1 << 16


def shared_ids() -> dict[Any, Any]:
    """The table every decoder shares a touch's id ints through (`ids.setdefault(x, x)`: one int
    object per advertiser, line item, creative and campaign id for all the touches held, about 110
    bytes a touch), emptied when it has grown past its bound."""
    if len(_SHARED_IDS) > _MAX_SHARED_IDS:
        _SHARED_IDS.clear()
    return _SHARED_IDS


def _touch_decoder(kind: str, schema: str) -> Any:
    validate = validator(schema)
    # A schema without `imp_type` (clicks): the fast path reads the other fields and takes only
    # records without one, which decode to the default imp_type either way.
    with_imp_type = "imp_type" in load_schema(schema)["properties"]
    fields = _TOUCH_FIELDS if with_imp_type else _TOUCH_FIELDS[:-1]
    fast = field_reader(load_schema(schema), fields) or _never
    ids = _SHARED_IDS
    share: Callable[[Any, Any], Any] = ids.setdefault

    def decode_touch(obj: Any) -> Touch:
        # Plainly valid records (nearly all) are checked and read in one pass; the others go
        # through the full validator, which accepts them or says exactly what is wrong.
        values = fast(obj)
        if values is not None and (with_imp_type or "imp_type" not in obj):
            if len(ids) > _MAX_SHARED_IDS:
                ids.clear()
            return Touch(
                kind,  # type: ignore[arg-type]
                values[0],
                intern(values[1]),  # one string per user id for all its touches
                values[2],
                share(values[3], values[3]),
                share(values[4], values[4]),
                share(values[5], values[5]),
                values[6],
                share(values[7], values[7]),
                *values[8:],
            )
        d = validate(obj)
        return Touch(
            kind,  # type: ignore[arg-type]
            d["event_id"],
            d["user_id"],
            int(d["timestamp"]),  # JSON Schema's "integer" admits 2000.0: times are ints
            int(d["advertiser_id"]),
            int(d["line_item_id"]),
            int(d["creative_id"]),
            d["auction_id"],
            _int_or_none(d.get("campaign_id")),
            int(d.get("imp_type", 7)),
        )

    return decode_touch


def _decode_conversion(obj: Any, keys: TokenKeys = _NO_KEYS) -> Conversion:
    values = _fast_conversion(obj)
    if values is not None:
        if values[7] is None:
            return Conversion(*values[:7])
        return _server_side(Conversion(*values[:7]), values[7], keys)
    d = _validate_conversion(obj)
    conv = Conversion(
        d["event_id"],
        int(d["pixel_id"]),
        d.get("user_id"),  # None only with a token, resolved below
        int(d["timestamp"]),
        d.get("value"),
        d.get("order_id"),
        d.get("other"),
    )
    token = d.get("token")
    return conv if token is None else _server_side(conv, token, keys)


def _server_side(conv: Conversion, token: str, keys: TokenKeys) -> Conversion:
    """A conversion sent with an auction token: the user and the auction come from the verified
    token; a `user_id` sent along must name the same user."""
    if not keys:
        raise InvalidToken("token: no token key is configured (ATTRIBUTION_TOKEN_SECRET), tokens are refused", "token")
    claims = verify(token, keys)
    if conv.user_id is not None and conv.user_id != claims.user_id:
        raise InvalidToken("token: names another user than user_id", "token")
    return Conversion(
        conv.event_id,
        conv.pixel_id,
        claims.user_id,
        conv.timestamp,
        conv.value,
        conv.order_id,
        conv.other,
        claims.auction_id,
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _decode_pixel(obj: Any) -> Pixel:
    d = _validate_pixel(obj)
    pbs = tuple(PiggybackPixel(p["pixel_type"], p["url"]) for p in d["piggyback_pixels"])
    ints = {k: _int_or_none(d[k]) for k in _PIXEL_INTS}
    return Pixel(**{**d, **ints, "piggyback_pixels": pbs})


_PIXEL_INTS = ("id", "advertiser_id", "post_view_expire_mins", "post_click_expire_mins", "min_minutes_per_conv")


def _decode_line_item(obj: Any) -> LineItem:
    d = _validate_line_item(obj)
    # A rule JSON Schema cannot state (uniqueItems compares whole links): one link per pixel, or
    # which revenue applies would depend on the order of the links.
    seen: set[int] = set()
    for i, p in enumerate(d["pixels"]):
        if int(p["id"]) in seen:
            raise InvalidLineItem(
                f"pixels.{i}.id: pixel {int(p['id'])} is linked twice (a line item links each pixel at most once)",
                f"pixels.{i}.id",
            )
        seen.add(int(p["id"]))
    links = tuple(
        PixelLink(int(p["id"]), p.get("state", "active"), p.get("post_click_revenue"), p.get("post_view_revenue"))
        for p in d["pixels"]
    )
    return LineItem(int(d["id"]), int(d["advertiser_id"]), d["state"], links, d.get("name"))


def _never(obj: Any) -> None:
    return None


_validate_conversion = validator("conversion")
_fast_conversion = field_reader(load_schema("conversion"), _CONVERSION_FIELDS) or _never
_validate_pixel = validator("pixel", InvalidConfig, defaults=True)
_validate_line_item = validator("line_item", InvalidLineItem, defaults=True)

_DECODERS: dict[str, Any] = {
    "impressions": _touch_decoder("impression", "impression"),
    "clicks": _touch_decoder("click", "click"),
    "conversions": _decode_conversion,
    "pixels": _decode_pixel,
    "line-items": _decode_line_item,
}


def decode_value(topic: str, value: Any, keys: TokenKeys = _NO_KEYS) -> Decoded:
    """A parsed JSON value from `topic` (default name) to a domain object, or RecordError.
    `keys` verify the tokens of server-side conversions (none: every token is refused)."""
    if not isinstance(value, dict):
        raise InvalidJson(f"record: expected a JSON object, got {_json_type(value)}", code="not_an_object")
    if topic == "conversions":
        return _decode_conversion(value, keys)
    result: Decoded = _DECODERS[topic](value)
    return result


def decode(topic: str, raw: bytes, keys: TokenKeys = _NO_KEYS) -> Decoded:
    """Raw record bytes from `topic` (default name) to a domain object, or RecordError."""
    return decode_value(topic, parse_json(raw), keys)


#: The largest id (a signed 64-bit integer, as in the schemas).
MAX_ID = 9223372036854775807


def config_id(raw: object) -> int | None:
    """The one rule for what names a pixel or line item: an integer from 1 to MAX_ID, given as an
    int or as its decimal text exactly as it prints (`"7"`, not `"07"`, `" 7"` or `"+7"`, which
    compaction would keep apart from `"7"`); None for anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 1 <= raw <= MAX_ID else None
    if isinstance(raw, str):
        if not raw.isascii():
            return None
        raw = raw.encode()
    if not isinstance(raw, bytes) or not 0 < len(raw) <= 19 or not raw.isdigit() or raw.startswith(b"0"):
        return None
    ident = int(raw)
    return ident if ident <= MAX_ID else None


def config_key(key: bytes | None) -> int | None:
    """The id a config record's key names (`config_id`), else None."""
    return config_id(key)


def decode_config(topic: str, key: bytes | None, value: bytes | None) -> tuple[int, Pixel | LineItem | None]:
    """A record of a compacted config topic (default name) as a write: (id, the record) or (id,
    None) for a delete, or RecordError. The key must be the record's id (`invalid_key` otherwise):
    compaction keeps the last record *per key*, so only then does the topic keep what it says."""
    ident = config_key(key)
    if value is None:
        if ident is None:
            raise InvalidKey(f"key: {_shown(key)} is not a config id for a delete", "key")
        return ident, None
    obj = decode(topic, value)
    assert isinstance(obj, (Pixel, LineItem))
    if ident != obj.id:
        raise InvalidKey(
            f"key: {_shown(key)} is not the record's id {obj.id} (a config record is keyed by its id)", "key"
        )
    return ident, obj


def _shown(key: bytes | None) -> str:
    return "none" if key is None else repr(key[:40].decode("utf-8", "replace"))


def encode(record: Any) -> bytes:
    """An output dataclass (or a plain dict) to compact JSON bytes; field order is stable."""
    return orjson.dumps(record)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    error: dict[str, str]
    payload: str | None


def dead_letter(error: RecordError, topic: str, partition: int, offset: int, raw: bytes | None) -> DeadLetter:
    """The dead letter of a record: where it was, why (stable code + message), what it held."""
    payload = None if raw is None else raw[:MAX_PAYLOAD_BYTES].decode("utf-8", "replace")
    if payload is not None and len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        # Replacement characters are 3 bytes each: keep the text within the 4 KiB contract.
        payload = payload.encode("utf-8")[:MAX_PAYLOAD_BYTES].decode("utf-8", "ignore")
    return DeadLetter(topic, partition, offset, {"code": error.code, "message": error.message}, payload)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
