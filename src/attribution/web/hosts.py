"""The Host-header check of the worker's web server (every route, Faust's own pages included).

Why: reads (`/pixels`, `/stats`, Faust's `/table/...`) need no token, and the server normally
listens on 127.0.0.1. A web page the operator opens in a browser can point its own domain name at
127.0.0.1 (DNS rebinding) and then read those pages as same-origin. The browser still sends the
page's domain as `Host`, so answering only the names the server is known by
(`Settings.allowed_hosts`) closes that door. Writes are not exposed that way in any case: they
need the bearer token, which a browser never adds by itself.

A refused request gets 400 `invalid_host` before any handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(header: str) -> str:
    """The name part of a Host header, lower case: `[::1]:6066` -> `::1`, `Example.com.:80` -> `example.com`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") > 1:  # a bare IPv6 address (not valid in Host, but unambiguous)
        return header
    return header.partition(":")[0].rstrip(".")


def host_guard(allowed: frozenset[str] | None) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware answering only requests whose Host names one of `allowed` (None: any)."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        if allowed is not None and host_name(request.headers.get("Host", "")) not in allowed:
            body = {
                "error": {
                    "code": "invalid_host",
                    "message": "this server does not answer for that Host: add it to ATTRIBUTION_WEB_ALLOWED_HOSTS",
                }
            }
            return web.Response(status=400, body=orjson.dumps(body), content_type="application/json")
        return await handler(request)

    return check_host
