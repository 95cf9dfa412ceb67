"""Wiring of the web side into the Faust app: routes, the reporting feed, the metrics sensor.

The web side knows the worker only through two small protocols: its config cache (`ConfigView`)
and the figures it keeps (`WorkerView`); it never imports the streaming package."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any, Protocol

import faust
import orjson
import prometheus_client

from attribution.app.config import AppliedView
from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, OUTPUT_TOPICS
from attribution.settings import Settings
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


class ConfigView(AppliedView, Protocol):
    """The worker's config cache, as the web side reads it."""

    @property
    def counted(self) -> Mapping[tuple[str, str], int]:
        """(default topic, note kind) -> unusual config records the config agent acted on."""
        ...


class WorkerView(Protocol):
    """The figures of the worker's processor the web side shows on `/metrics`."""

    def held_conversions(self) -> int: ...

    def forgotten_counts(self) -> dict[str, int]: ...


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
    cache: ConfigView,
    processor: WorkerView,
    internal_topics: Sequence[str] = (),
    report_counts: Callable[[], Mapping[str, int]] = dict,
    output_hooks: list[Callable[[tuple[str, ...]], None]] | None = None,
    in_flight: Callable[[], int] = lambda: 0,
    frozen: Callable[[], int] = lambda: 0,
) -> WebRuntime:
    """Add the routes, the reporting feed (an app task) and the metrics sensor to `app`;
    `internal_topics` are the worker's own topics (default names), counted on `/metrics` too;
    `report_counts` reads the hourly report agents' running totals, by result; `output_hooks`
    gets the counter of the worker's acknowledged outputs; `in_flight` and `frozen` read the
    batches whose states are in flight and the collector's frozen objects."""
    window = OutcomeWindow(settings.stats_max_records)
    feed = OutcomeFeed(settings, window)
    reporting = Reporting(window, now_ms, feed.caught_up.is_set)

    async def publish(topic: str, key: bytes, value: bytes | None) -> tuple[int, int]:
        meta: Any = await app.producer.send_and_wait(
            topic, key, value, partition=None, timestamp=None, headers=HEADERS if value is not None else None
        )
        return int(meta.partition), int(meta.offset)

    api = Api(settings, cache, publish, reporting)

    names = {settings.topic(t): t for t in (*EVENT_TOPICS, *CONFIG_TOPICS, *internal_topics, *OUTPUT_TOPICS)}
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # no `*_created` noise
    metrics = Metrics()
    sensor = MetricsSensor(metrics, names)
    app.sensors.add(sensor)
    refresh = refresher(
        sensor,
        lambda: app.consumer,
        processor.held_conversions,
        lambda: cache.counted,
        in_flight,
        frozen,
    )
    metrics.forgotten = processor.forgotten_counts
    if output_hooks is not None:
        output_hooks.append(metrics.count_output)
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
