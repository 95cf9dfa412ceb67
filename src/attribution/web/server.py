"""Wiring of the web side into the Faust app: routes, the reporting feed, the metrics sensor."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any

import faust
import orjson
import prometheus_client

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, OUTPUT_TOPICS
from attribution.settings import Settings
from attribution.streaming.config_cache import ConfigCache
from attribution.streaming.processor import Processor
from attribution.streaming.topics import INTERNAL_TOPICS
from attribution.web.api import LINE_ITEMS, PIXELS, Api, Kind
from attribution.web.feed import OutcomeFeed, now_ms
from attribution.web.metrics import CONTENT_TYPE, Metrics, MetricsSensor, refresher
from attribution.web.openapi import document
from attribution.web.outcomes import OutcomeWindow
from attribution.web.reporting import Reporting
from attribution.web.views import Handler, add_routes, dynamic, static

HEADERS = [("content-type", b"application/json")]


@dataclass
class WebRuntime:
    """What `register` wired (for tests and tools that build the app in-process)."""

    api: Api
    reporting: Reporting
    feed: OutcomeFeed
    metrics: Metrics
    sensor: MetricsSensor


def dashboard_html() -> bytes:
    return (resources.files("attribution.web") / "dashboard.html").read_bytes()


def held_conversions(processor: Processor) -> int:
    return sum(len(p.held) for p in processor.time.partitions.values())


def forgotten_counts(processor: Processor) -> dict[str, int]:
    """What the state's bounds forgot on this worker so far, by part (`attribution_state_forgotten`)."""
    f = processor.forgotten
    return {
        "dedup_ids": f.dedup_ids,
        "touches": f.touches,
        "counters": f.counters,
        "expired_users": processor.expiry.deleted,
    }


def crud_routes(api: Api, kind: Kind) -> dict[str, dict[str, Handler]]:
    """The collection and item routes of one kind (`/pixels`, `/pixels/{id}`, ...)."""
    return {
        kind.path: {"get": partial(api.list_all, kind), "post": partial(api.create, kind)},
        f"{kind.path}/{{id}}": {
            "get": partial(api.get, kind),
            "put": partial(api.replace, kind),
            "delete": partial(api.delete, kind),
        },
    }


def register(
    app: faust.App,
    settings: Settings,
    *,
    cache: ConfigCache,
    processor: Processor,
    report_counts: Callable[[], Mapping[str, int]] = dict,
) -> WebRuntime:
    """Add the routes, the reporting feed (an app task) and the metrics sensor to `app`."""
    window = OutcomeWindow(settings.stats_max_records)
    feed = OutcomeFeed(settings, window)
    reporting = Reporting(window, now_ms, feed.caught_up.is_set)

    async def publish(topic: str, key: bytes, value: bytes | None) -> tuple[int, int]:
        meta: Any = await app.producer.send_and_wait(
            topic, key, value, partition=None, timestamp=None, headers=HEADERS if value is not None else None
        )
        return int(meta.partition), int(meta.offset)

    api = Api(settings, cache, publish, reporting)

    names = {settings.topic(t): t for t in (*EVENT_TOPICS, *CONFIG_TOPICS, *INTERNAL_TOPICS, *OUTPUT_TOPICS)}
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # no `*_created` noise
    metrics = Metrics()
    sensor = MetricsSensor(metrics, names)
    app.sensors.add(sensor)
    refresh = refresher(sensor, lambda: app.consumer, lambda: held_conversions(processor), lambda: cache.counted)
    metrics.forgotten = lambda: forgotten_counts(processor)
    metrics.report_outcomes = report_counts

    def scrape() -> bytes:
        refresh()
        return metrics.render()

    @app.task  # type: ignore[untyped-decorator]
    async def follow_outcomes() -> None:
        await feed.run()

    openapi = orjson.dumps(document())
    add_routes(
        app,
        {
            **crud_routes(api, PIXELS),
            "/pixels/{id}/tags": {"get": api.tags},
            **crud_routes(api, LINE_ITEMS),
            "/stats": {"get": dynamic(reporting.stats)},
            "/metrics": {"get": dynamic(scrape, CONTENT_TYPE)},
            "/dashboard": {"get": static(dashboard_html(), "text/html; charset=utf-8")},
            "/openapi.json": {"get": static(openapi, "application/json")},
        },
    )
    return WebRuntime(api, reporting, feed, metrics, sensor)
