"""The worker: the stream processing app (`streaming`) with its HTTP side (`web`) added.

The one place both are put together, so that neither imports the other: `streaming` builds the
Faust app, its agents and its config cache; `web` adds the routes, the reporting feed and the
metrics sensor, reading the worker through small protocols (`web.server.ConfigView`, `WorkerView`).
"""

from __future__ import annotations

from typing import Any

import faust

from attribution.settings import Settings
from attribution.streaming import create_app
from attribution.streaming.topics import INTERNAL_TOPICS
from attribution.web import register
from attribution.web.hosts import host_guard


def create_worker(settings: Settings) -> faust.App:
    """The app of `attribution worker`: streaming plus the HTTP API, `/stats`, `/dashboard`,
    `/metrics` and `/openapi.json`. Nothing runs until a worker starts."""
    # Every route, Faust's pages included, answers only the names it is known by (DNS rebinding).
    app = create_app(settings, middlewares=[host_guard(settings.allowed_hosts)])
    parts: dict[str, Any] = app.attribution  # type: ignore[attr-defined]
    parts["web"] = register(
        app,
        settings,
        cache=parts["cache"],
        processor=parts["processor"],
        internal_topics=INTERNAL_TOPICS,
        report_counts=parts["reports"].counts,
        output_hooks=parts["output_hooks"],
        in_flight=parts["pending"].__len__,
        frozen=parts["collector"].frozen,
    )
    return app
