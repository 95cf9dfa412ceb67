"""The HTTP API's handlers, free of Faust and aiohttp: a `Request` in, a `Reply` out.

The HTTP adapter of the config use cases (`app.config`, where every check lives, shared with the
CLI): it translates requests into calls and refusals into replies (`map_config_errors`). Pixels
and line items are read from this worker's config cache (the compacted topics read in full) and
written by publishing to those topics. A write answers only once the cache has applied its own
record (`app.config.CacheStore`), so a read that follows on the same worker sees it. Writes on one
worker are serialized, so their checks (exists, in use) see each other.

Status codes: 400 unusable body or query; 401 missing or wrong bearer token (403 when no token is
configured: writes are off); 404 unknown id; 409 conflicts with the current config
(`already_exists`, `pixel_in_use`, `unknown_pixel`, `advertiser_mismatch`); 422 a record that
breaks a contract rule, with the field and the rule; 503 the broker refused the write, or the
config is still loading; 504 written but not read back in time. Every error body is `{"error": {"code", "message", ...}}`.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from attribution.app.config import (
    LINE_ITEMS,
    PIXELS,
    AppliedView,
    CacheStore,
    ConfigService,
    Kind,
    Publish,
    record,
)
from attribution.contract import MAX_ID, config_id
from attribution.domain import Config, LineItem, Pixel
from attribution.errors import ApiError, ConfigError, Conflict, Invalid, NotApplied, NotFound, Unavailable
from attribution.settings import Settings
from attribution.web import tags
from attribution.web.reporting import Reporting

log = logging.getLogger(__name__)

JSON = "application/json"
__all__ = ["JSON", "LINE_ITEMS", "MAX_ID", "PIXELS", "Api", "ApiError", "Kind", "Publish", "Reply", "Request"]
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


def error_reply(exc: ApiError) -> Reply:
    """The reply of an HTTP error: `{"error": {"code", "message", ...details}}`."""
    return Reply(exc.status, {"error": {"code": exc.code, "message": exc.message, **exc.extra}}, headers=exc.headers)


#: The HTTP status of each refusal of a config use case.
STATUS: dict[type[ConfigError], int] = {NotFound: 404, Conflict: 409, Invalid: 422, Unavailable: 503, NotApplied: 504}


@contextlib.contextmanager
def map_config_errors() -> Iterator[None]:
    """The one place a refusal of a use case becomes an HTTP error: status by class, the code,
    message, field and details as the use case gave them."""
    try:
        yield
    except ConfigError as exc:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
        error = ApiError(status, exc.code, exc.message)
        error.extra = {"field": exc.field, **exc.extra} if exc.field else dict(exc.extra)
        raise error from None


def parse_id(raw: str) -> int | None:
    """An id from a path or query (`contract.config_id`: decimal digits only, 1 to MAX_ID); None otherwise."""
    return config_id(raw)


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
    """The HTTP adapter of the config use cases (`app.config.ConfigService`) and of tag export."""

    def __init__(
        self,
        settings: Settings,
        cache: AppliedView,
        publish: Publish,
        reporting: Reporting,
        write_timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.reporting = reporting
        self.write_timeout = write_timeout
        self.service = ConfigService(CacheStore(cache, publish, settings.topic, write_timeout))

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
        with map_config_errors():
            items, config = await self.service.list_items(kind, advertiser)
        return Reply(200, {kind.key: [self.read(kind, obj, config) for obj in items]})

    async def get(self, kind: Kind, req: Request) -> Reply:
        ident = path_id(req, kind)
        with map_config_errors():
            obj, config = await self.service.get(kind, ident)
        return Reply(200, self.read(kind, obj, config))

    async def tags(self, req: Request) -> Reply:
        ident = path_id(req, PIXELS)
        with map_config_errors():
            pixel, _ = await self.service.get(PIXELS, ident)
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
        with map_config_errors():
            (stored,), config = await self.service.put(kind, [value], "create")
        return Reply(201, self.read(kind, stored, config), headers={"Location": f"{kind.path}/{stored.id}"})

    async def replace(self, kind: Kind, req: Request) -> Reply:
        self.authorize(req)
        ident = path_id(req, kind)
        with map_config_errors():
            await self.service.get(kind, ident)  # an unknown id is a 404 whatever the body
            value = parse_json(await req.read_body())
            if isinstance(value, dict) and "id" not in value:
                value = {"id": ident, **value}
            (stored,), config = await self.service.put(kind, [value], "replace", ident)
        return Reply(200, self.read(kind, stored, config))

    async def delete(self, kind: Kind, req: Request) -> Reply:
        self.authorize(req)
        ident = path_id(req, kind)
        with map_config_errors():
            await self.service.delete(kind, ident)
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
