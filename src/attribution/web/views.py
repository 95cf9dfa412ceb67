"""Faust glue: the routes of the worker's web server, each a thin view over `api.Api` & co.

aiohttp (Faust's web driver) does the HTTP; each view turns the aiohttp request into an
`api.Request`, calls a handler and turns its `api.Reply` into a response. Unexpected exceptions
become a JSON 500 (and a log line), never an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from aiohttp import web

from attribution.web.api import JSON, ApiError, Reply, Request, error_reply

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Reply]]
WITH_BODY = frozenset({"post", "put", "patch"})


async def respond(handler: Handler, request: web.Request) -> web.Response:
    """Run one handler on an aiohttp request."""
    try:
        # The body is read only when the handler asks for it (after the token check, for writes).
        load = request.read if request.method.lower() in WITH_BODY else None
        reply = await handler(Request(dict(request.match_info), request.query, request.headers, b"", load))
    except ApiError as exc:
        reply = error_reply(exc)
    except web.HTTPRequestEntityTooLarge as exc:
        reply = Reply(413, {"error": {"code": "too_large", "message": exc.text or "the body is too large"}})
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        reply = Reply(500, {"error": {"code": "internal", "message": "internal error (see the worker's log)"}})
    headers = dict(reply.headers)
    if reply.status != 204:
        headers["Content-Type"] = reply.content_type
    return web.Response(body=reply.payload() if reply.status != 204 else None, status=reply.status, headers=headers)


def view(handlers: Mapping[str, Handler]) -> type[Any]:
    """A Faust view class answering the given methods (`get`, `post`, ...) with the handlers."""

    allow = ", ".join(sorted(m.upper() for m in handlers))

    async def not_allowed(req: Request) -> Reply:
        return Reply(
            405, {"error": {"code": "method_not_allowed", "message": f"allowed: {allow}"}}, headers={"Allow": allow}
        )

    async def handle(self: Any, request: web.Request, **params: Any) -> web.Response:
        method = request.method.lower()
        # HEAD is answered like GET (aiohttp leaves the body out).
        handler = handlers.get(method) or (handlers.get("get") if method == "head" else None) or not_allowed
        return await respond(handler, request)

    return type("ApiView", (faust.web.View,), dict.fromkeys(handlers, handle))


def add_routes(app: faust.App, routes: Mapping[str, Mapping[str, Handler]]) -> None:
    for path, handlers in routes.items():
        name = "attribution:" + (path.strip("/").replace("/", ":").replace("{", "").replace("}", "") or "index")
        app.page(path, name=name)(view(handlers))


def static(content: bytes, content_type: str) -> Handler:
    async def handler(req: Request) -> Reply:
        return Reply(200, content, content_type)

    return handler


def dynamic(produce: Callable[[], bytes | dict[str, Any]], content_type: str = JSON) -> Handler:
    async def handler(req: Request) -> Reply:
        return Reply(200, produce(), content_type)

    return handler
