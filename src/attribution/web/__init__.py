"""The worker's HTTP side, served by Faust's web server (`settings.web_host`:`settings.web_port`,
127.0.0.1 unless configured otherwise):

| route | what |
|---|---|
| `GET/POST /pixels`, `GET/PUT/DELETE /pixels/{id}` | pixel management, with status and health (`api`) |
| `GET /pixels/{id}/tags?format=img\\|js&value=1&order_id=1&other=1` | tag export (`tags`): the tag, the server-side URL and the one by auction token (`sspx_url`) |
| `GET/POST /line-items`, `GET/PUT/DELETE /line-items/{id}` | line item management (`api`) |
| `GET /stats` | live figures per pixel over the last hour and day (`app.reports`, from the output topics) |
| `GET /dashboard` | a page charting `/stats`, updated every second or two |
| `GET /metrics` | Prometheus metrics of this worker (`metrics`) |
| `GET /openapi.json` | the OpenAPI 3.1 document (`openapi`) |

`register(app, settings, cache=..., processor=...)` is the one entry point the worker's composition
(`attribution.worker`) calls; the web side never imports the streaming package.
Importing this package is cheap (the CLI uses `tags`); `register` imports the Faust side lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import faust

    from attribution.settings import Settings
    from attribution.web.server import WebRuntime


def register(app: faust.App, settings: Settings, **parts: Any) -> WebRuntime:
    """Add the HTTP API, `/stats`, `/dashboard`, `/metrics` and `/openapi.json` to the app's web
    server; `parts` are the worker's `cache`, `processor` and `internal_topics` (`server.register`)."""
    from attribution.web.server import register as _register

    return _register(app, settings, **parts)


__all__ = ["register"]
