"""The HTTP API's handlers, free of Faust and aiohttp: a `Request` in, a `Reply` out.

Pixels and line items are read from this worker's `ConfigCache` (the compacted topics read in
full) and written by publishing to those topics. A write answers only once the cache has applied
its own record (`ConfigCache.wait_applied`), so a read that follows on the same worker sees it.
Writes on one worker are serialized, so their checks (exists, in use) see each other.

Status codes: 400 unusable body or query; 401 missing or wrong bearer token (403 when no token is
configured: writes are off); 404 unknown id; 409 conflicts with the current config
(`already_exists`, `pixel_in_use`, `unknown_pixel`, `advertiser_mismatch`); 422 a record that
breaks a contract rule, with the field and the rule; 503 the broker refused the write, or the
config is still loading; 504 written but not read back in time. Every error body is `{"error": {"code", "message", ...}}`.
"""

from __future__ import annotations

import asyncio
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

_ID = re.compile(r"[0-9]{1,19}")  # used with fullmatch: no sign, no spaces, no trailing newline
_TRUE = {"1", "true"}
_FALSE = {"0", "false"}


@dataclass(frozen=True, slots=True)
class Request:
    params: Mapping[str, str] = field(default_factory=dict)  # path parameters
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive in the glue
    body: bytes = b""
    #: Reads the body from the connection when given (the glue); a write calls it only once the
    #: token was accepted, so an unauthenticated client cannot make the worker take in a body.
    load: Callable[[], Awaitable[bytes]] | None = None

    async def read_body(self) -> bytes:
        return self.body if self.load is None else await self.load()


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
    rec: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return rec


def parse_id(raw: str) -> int | None:
    """An id from text: decimal digits only, 1 to MAX_ID; None otherwise."""
    ident = int(raw) if _ID.fullmatch(raw) else 0
    return ident if 1 <= ident <= MAX_ID else None


def path_id(req: Request, kind: Kind) -> int:
    raw = req.params.get("id", "")
    ident = parse_id(raw)
    if ident is None:
        raise ApiError(404, "not_found", f"{kind.what} {raw!r} not found: ids are integers from 1 to {MAX_ID}")
    return ident


def flag(req: Request, name: str) -> bool:
    raw = req.query.get(name)
    if raw is None:
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ApiError(400, "invalid_parameter", f"{name}: expected 1, true, 0 or false, got {raw!r}", field=name)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty: expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})") from None


class Api:
    def __init__(
        self,
        settings: Settings,
        cache: ConfigCache,
        publish: Publish,
        reporting: Reporting,
        write_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.publish = publish
        self.reporting = reporting
        self.write_timeout = write_timeout
        self._writes = asyncio.Lock()

    async def config(self) -> Config:
        """The current config, once the cache has caught up with the topics (a worker that has
        just started answers from the full config, never a half-loaded one)."""
        if not self.cache.ready.is_set():
            try:
                await asyncio.wait_for(self.cache.ready.wait(), self.write_timeout)
            except TimeoutError:
                raise ApiError(
                    503, "unavailable", "the config is still loading from the topics: retry shortly"
                ) from None
        return self.cache.config

    # --- reads ---------------------------------------------------------------------------------

    def read(self, kind: Kind, obj: Pixel | LineItem, config: Config) -> dict[str, Any]:
        """The read representation: the stored record (+ status and health for a pixel)."""
        rec = record(obj)
        if kind is PIXELS:
            rec["status"] = config.status(obj.id)
            rec["health"] = self.reporting.health(obj.id)
        return rec

    async def list_all(self, kind: Kind, req: Request) -> Reply:
        advertiser: int | None = None
        raw = req.query.get("advertiser_id")
        if raw is not None:
            advertiser = parse_id(raw)
            if advertiser is None:
                raise ApiError(
                    400, "invalid_parameter", f"advertiser_id: expected an id, got {raw!r}", field="advertiser_id"
                )
        config = await self.config()
        items = [
            self.read(kind, obj, config)
            for _, obj in sorted(kind.items(config).items())
            if advertiser is None or obj.advertiser_id == advertiser
        ]
        return Reply(200, {kind.key: items})

    async def get(self, kind: Kind, req: Request) -> Reply:
        ident = path_id(req, kind)
        config = await self.config()
        return Reply(200, self.read(kind, self._existing(kind, config, ident), config))

    async def tags(self, req: Request) -> Reply:
        ident = path_id(req, PIXELS)
        pixel: Pixel = self._existing(PIXELS, await self.config(), ident)
        fmt = req.query.get("format", pixel.pixel_type)
        if fmt not in tags.FORMATS:
            raise ApiError(400, "invalid_parameter", f"format: expected img or js, got {fmt!r}", field="format")
        marks = tags.Placeholders(flag(req, "value"), flag(req, "order_id"), flag(req, "other"))
        host = self.settings.pixel_host
        return Reply(
            200,
            {
                "pixel_id": ident,
                "format": fmt,
                "tag": tags.tag(ident, host, fmt, pixel.name, marks),
                "url": tags.pixel_url(ident, host, "server", marks),
                "sspx_url": tags.sspx_url(ident, host, marks),
            },
        )

    # --- writes --------------------------------------------------------------------------------

    async def create(self, kind: Kind, req: Request) -> Reply:
        self.authorize(req)
        value = parse_json(await req.read_body())
        obj = self.validate(kind, value)
        async with self._writes:
            config = await self.config()
            if obj.id in kind.items(config):
                raise ApiError(
                    409, "already_exists", f"{kind.what} {obj.id} already exists: PUT {kind.path}/{obj.id} replaces it"
                )
            self.check_references(kind, obj, config)
            await self.write(kind, obj.id, orjson.dumps(value))
            config = self.cache.config
        stored = kind.items(config).get(obj.id, obj)
        return Reply(201, self.read(kind, stored, config), headers={"Location": f"{kind.path}/{obj.id}"})

    async def replace(self, kind: Kind, req: Request) -> Reply:
        self.authorize(req)
        ident = path_id(req, kind)
        async with self._writes:
            config = await self.config()
            self._existing(kind, config, ident)
            value = parse_json(await req.read_body())
            if isinstance(value, dict) and "id" not in value:
                value = {"id": ident, **value}
            obj = self.validate(kind, value)
            if obj.id != ident:
                raise ApiError(
                    422, kind.invalid, f"id: {obj.id} does not match the id in the path ({ident})", field="id"
                )
            self.check_references(kind, obj, config)
            await self.write(kind, ident, orjson.dumps(value))
            config = self.cache.config
        stored = kind.items(config).get(ident, obj)
        return Reply(200, self.read(kind, stored, config))

    async def delete(self, kind: Kind, req: Request) -> Reply:
        self.authorize(req)
        ident = path_id(req, kind)
        async with self._writes:
            config = await self.config()
            self._existing(kind, config, ident)
            if kind is PIXELS:
                carriers = config.carriers(ident)
                if carriers:
                    raise ApiError(
                        409,
                        "pixel_in_use",
                        f"pixel {ident} is still carried by line item{'s' if len(carriers) > 1 else ''} "
                        f"{', '.join(map(str, carriers))}: remove it from them first",
                        line_items=carriers,
                    )
            await self.write(kind, ident, None)
        return Reply(204)

    # --- the parts -----------------------------------------------------------------------------

    def authorize(self, req: Request) -> None:
        token = self.settings.api_token
        if not token:
            raise ApiError(
                403, "writes_disabled", "writes are disabled: no ATTRIBUTION_API_TOKEN is set on this worker"
            )
        scheme, _, credentials = (req.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise ApiError(
                401,
                "unauthorized",
                "a bearer token is required: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="attribution"'},
            )
        try:
            # aiohttp keeps undecodable header bytes as lone surrogates, which do not encode.
            presented = credentials.strip().encode("utf-8")
        except UnicodeError:
            presented = b""
        if not presented or not hmac.compare_digest(presented, token.encode("utf-8")):
            raise ApiError(
                401,
                "unauthorized",
                "the bearer token is not valid",
                headers={"WWW-Authenticate": 'Bearer realm="attribution", error="invalid_token"'},
            )

    def validate(self, kind: Kind, value: Any) -> Any:
        """The contract's decoder, the single source of the rules: a refusal is a 422."""
        try:
            return decode_value(kind.topic, value)
        except RecordError as exc:
            code = exc.code if exc.code != "not_an_object" else kind.invalid
            raise ApiError(422, code, exc.message, field=exc.field) from None

    def check_references(self, kind: Kind, obj: Any, config: Config) -> None:
        """What the contract cannot see, since it needs the other records: a line item's pixels
        exist and belong to its advertiser; a pixel's carriers belong to its advertiser."""
        if kind is LINE_ITEMS:
            item: LineItem = obj
            unknown = [(i, link.id) for i, link in enumerate(item.pixels) if link.id not in config.pixels]
            if unknown:
                ids = sorted({pid for _, pid in unknown})
                raise ApiError(
                    409,
                    "unknown_pixel",
                    f"pixels.{unknown[0][0]}.id: pixel {unknown[0][1]} does not exist: create it first",
                    field=f"pixels.{unknown[0][0]}.id",
                    pixels=ids,
                )
            foreign = sorted(
                {link.id for link in item.pixels if config.pixels[link.id].advertiser_id != item.advertiser_id}
            )
            if foreign:
                raise ApiError(
                    409,
                    "advertiser_mismatch",
                    f"pixels: pixel {foreign[0]} belongs to advertiser {config.pixels[foreign[0]].advertiser_id}, "
                    f"not to the line item's advertiser {item.advertiser_id}",
                    field="pixels",
                    pixels=foreign,
                )
        else:
            pixel: Pixel = obj
            foreign = [
                li for li in config.carriers(pixel.id) if config.line_items[li].advertiser_id != pixel.advertiser_id
            ]
            if foreign:
                raise ApiError(
                    409,
                    "advertiser_mismatch",
                    f"advertiser_id: line item{'s' if len(foreign) > 1 else ''} {', '.join(map(str, foreign))} of "
                    f"another advertiser carry pixel {pixel.id}: remove it from them first",
                    field="advertiser_id",
                    line_items=foreign,
                )

    async def write(self, kind: Kind, ident: int, value: bytes | None) -> None:
        """Publish one record and wait until this worker's cache has applied it."""
        topic = self.settings.topic(kind.topic)
        try:
            partition, offset = await self.publish(topic, str(ident).encode(), value)
        except Exception as exc:
            log.warning("publishing %s %d failed: %s", kind.what, ident, exc)
            raise ApiError(503, "unavailable", f"the broker did not take the write: {exc}") from None
        if not await self.cache.wait_applied(topic, partition, offset, self.write_timeout):
            raise ApiError(
                504,
                "not_applied",
                f"{kind.what} {ident} was published ({topic}, partition {partition}, offset {offset}) but not read "
                f"back within {self.write_timeout:g} s; it applies as soon as this worker catches up",
            )

    def _existing(self, kind: Kind, config: Config, ident: int) -> Any:
        obj = kind.items(config).get(ident)
        if obj is None:
            raise ApiError(404, "not_found", f"{kind.what} {ident} not found")
        return obj
