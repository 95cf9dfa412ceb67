"""The HTTP API's handlers, free of Faust and aiohttp: a `Request` in, a `Reply` out.

Pixels and line items are read from this worker's `ConfigCache` (the compacted topics read in
full) and written by publishing to those topics. A write answers only once the cache has applied
its own record (`ConfigCache.wait_applied`), so a read that follows on the same worker sees it.
Writes on one worker are serialized, so their checks (exists, in use) see each other.

Status codes: 400 unusable body or query; 401 missing or wrong bearer token (403 when no token is
configured: writes are off); 404 unknown id; 409 conflicts with the current config
(`already_exists`, `pixel_in_use`, `unknown_pixel`, `advertiser_mismatch`); 422 a record that
breaks a contract rule, with the field and the rule; 503 the broker refused the write; 504 written
but not read back in time. Every error body is `{"error": {"code", "message", ...}}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from attribution.contract import decode_value
from attribution.domain import Config, LineItem, Pixel
from attribution.errors import RecordError
from attribution.settings import Settings
from attribution.streaming.config_cache import ConfigCache
from attribution.web import tags
from attribution.web.reporting import Reporting

log = logging.getLogger(__name__)

MAX_ID = 9223372036854775807
JSON = "application/json"
#: publish(actual topic, key, value or None) -> (partition, offset) once the broker acknowledged it
Publish = Callable[[str, bytes, bytes | None], Awaitable[tuple[int, int]]]

_ID = re.compile(r"^[0-9]{1,19}$")
_TRUE = {"1", "true", "yes", "on", ""}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Request:
    params: Mapping[str, str] = field(default_factory=dict)  # path parameters
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive in the glue
    body: bytes = b""


@dataclass(slots=True)
class Reply:
    status: int
    body: Any = None  # JSON-serializable; bytes/str are sent as they are
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return orjson.dumps(self.body)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.reply = Reply(status, {"error": {"code": code, "message": message, **extra}}, headers=headers or {})


@dataclass(frozen=True)
class Kind:
    topic: str  # default topic name
    what: str  # "pixel" / "line item"
    key: str  # list key and URL segment base
    path: str
    invalid: str  # the contract's error code for this record type
    items: Callable[[Config], Mapping[int, Any]]


PIXELS = Kind("pixels", "pixel", "pixels", "/pixels", "invalid_pixel", lambda c: c.pixels)
LINE_ITEMS = Kind("line-items", "line item", "line_items", "/line-items", "invalid_line_item", lambda c: c.line_items)


def record(obj: Pixel | LineItem) -> dict[str, Any]:
    """A stored pixel or line item as JSON: every field, defaults filled in."""
    return dataclasses.asdict(obj)


def path_id(req: Request, kind: Kind) -> int:
    raw = req.params.get("id", "")
    ident = int(raw) if _ID.match(raw) else 0
    if not 1 <= ident <= MAX_ID:
        raise ApiError(404, "not_found", f"{kind.what} {raw!r} not found: ids are integers from 1 to {MAX_ID}")
    return ident


def flag(req: Request, name: str) -> bool:
    raw = req.query.get(name)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ApiError(400, "invalid_parameter", f"{name}: expected true or false, got {raw!r}", field=name)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty: expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})") from None
