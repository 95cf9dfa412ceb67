"""The HTTP API of a real worker on the real broker: pixels and line items (success and every
error path, read-after-write), health, tag export (API and CLI), /stats, /metrics, and a
schemathesis run against the OpenAPI document.

One worker serves the whole module (its web server on 127.0.0.1, a token set); each test uses its
own ids. The schemathesis run comes last: it creates pixels and line items of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from attribution.kafka.client import read_to_end
from attribution.settings import Settings
from attribution.web.openapi import document
from helpers import pixel_json
from integration.harness import ATTRIBUTION, Pipeline

TOKEN = "it-token-0123456789abcdef0123456789"
PIXEL_HOST = "px.it.example"


def metric_lines(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")}


def fetching_conversions(url: str) -> float:
    """Conversion partitions this worker holds, once it is fetching every one of them (a lag
    figure appears once a partition's first fetch answered)."""
    metrics = metric_lines(url)
    assigned = metrics.get('attribution_assigned_partitions{topic="conversions"}', 0)
    lags = [k for k in metrics if k.startswith("attribution_consumer_lag{") and 'topic="conversions"' in k]
    return assigned if assigned and len(lags) == assigned else 0


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Two workers sharing the partitions; the tests talk to w0 unless they say otherwise."""
    pipeline = Pipeline(tmp_path_factory.mktemp("api"), hold_ms=500)
    env = {"ATTRIBUTION_API_TOKEN": TOKEN, "ATTRIBUTION_PIXEL_HOST": PIXEL_HOST}
    for name in ("w0", "w1"):
        pipeline.start_worker(name, env=env)
    try:
        urls = [pipeline.wait_web(name) for name in ("w0", "w1")]

        def settled() -> bool:  # the group has split the partitions and both fetch all of theirs
            held = [fetching_conversions(u) for u in urls]
            return all(held) and sum(held) == pipeline.partitions

        wait_for(settled, timeout=90, what="two workers sharing the conversion partitions")
        yield pipeline
    finally:
        pipeline.close()


@pytest.fixture(scope="module")
def api(worker: Pipeline) -> Callable[..., tuple[int, dict[str, str], Any]]:
    base = worker.web_url()

    def call(
        method: str, path: str, body: Any = None, token: str | None = TOKEN, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        request = urllib.request.Request(f"{base}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, head, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, head, raw = exc.code, dict(exc.headers), exc.read()
        ctype = head.get("Content-Type", "")
        return status, head, orjson.loads(raw) if raw and ctype.startswith("application/json") else raw.decode()

    return call


API = Callable[..., tuple[int, dict[str, str], Any]]


def pixel(ident: int, advertiser: int = 10, **fields: Any) -> dict[str, Any]:
    return pixel_json(id=ident, advertiser_id=advertiser, **{"name": f"pixel {ident}", **fields})


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        time.sleep(0.2)


# --- the document -------------------------------------------------------------------------------


def test_the_worker_serves_the_openapi_document_the_api_is_built_from(api: API) -> None:
    status, head, doc = api("GET", "/openapi.json", token=None)
    assert status == 200
    assert head["Content-Type"].startswith("application/json")
    assert doc == document()


# --- pixels: the success path ------------------------------------------------------------------


def test_a_pixel_is_created_read_replaced_listed_and_deleted_with_each_write_read_back_at_once(
    api: API, worker: Pipeline
) -> None:
    status, head, created = api("POST", "/pixels", pixel(101, name="signup"))
    assert status == 201, created
    assert head["Location"] == "/pixels/101"
    assert created["name"] == "signup"
    assert created["post_click_expire_mins"] == 20160  # defaults filled in
    assert created["status"] == "paused"
    assert api("GET", "/pixels/101", token=None)[2] == created
    for version in range(1, 4):  # each GET right after its PUT shows that PUT's version
        status, _, replaced = api("PUT", "/pixels/101", {"advertiser_id": 10, "name": f"signup v{version}"})
        assert status == 200, replaced
        assert api("GET", "/pixels/101", token=None)[2]["name"] == f"signup v{version}"
    listed = api("GET", "/pixels?advertiser_id=10", token=None)[2]["pixels"]
    assert [p["name"] for p in listed if p["id"] == 101] == ["signup v3"]
    assert api("DELETE", "/pixels/101")[0] == 204
    assert api("GET", "/pixels/101", token=None)[0] == 404
    settings = Settings(broker=worker.broker, topic_prefix=worker.prefix)
    topic = settings.topic("pixels")
    published = asyncio.run(read_to_end(settings, [topic]))[topic]
    versions = [r.value for r in published if r.key == b"101"]
    assert len(versions) == 5  # create, three replacements, then a tombstone on the compacted topic
    assert versions[-1] is None
    assert orjson.loads(versions[-2] or b"{}")["name"] == "signup v3"


def test_a_line_item_is_created_replaced_and_deleted_and_its_pixels_status_follows(api: API) -> None:
    assert api("POST", "/pixels", pixel(111))[0] == 201
    status, _, item = api("POST", "/line-items", {"id": 111, "advertiser_id": 10, "pixels": [{"id": 111}]})
    assert status == 201, item
    assert item["pixels"] == [{"id": 111, "state": "active", "post_click_revenue": None, "post_view_revenue": None}]
    assert api("GET", "/pixels/111", token=None)[2]["status"] == "active"
    replaced = {"id": 111, "advertiser_id": 10, "state": "inactive", "pixels": [{"id": 111}]}
    assert api("PUT", "/line-items/111", replaced)[0] == 200
    assert api("GET", "/line-items/111", token=None)[2]["state"] == "inactive"
    assert api("GET", "/pixels/111", token=None)[2]["status"] == "paused"
    assert [li["id"] for li in api("GET", "/line-items", token=None)[2]["line_items"]].count(111) == 1
    assert api("DELETE", "/line-items/111")[0] == 204
    assert api("GET", "/line-items/111", token=None)[0] == 404


# --- the error paths ----------------------------------------------------------------------------


def test_writes_without_a_valid_bearer_token_are_401_with_www_authenticate_and_change_nothing(api: API) -> None:
    assert api("POST", "/pixels", pixel(121))[0] == 201
    attempts = [
        ("POST", "/pixels", pixel(122)),
        ("PUT", "/pixels/121", {"advertiser_id": 10, "name": "hijacked"}),
        ("DELETE", "/pixels/121", None),
        ("POST", "/line-items", {"id": 121, "advertiser_id": 10}),
        ("PUT", "/line-items/121", {"advertiser_id": 10}),
        ("DELETE", "/line-items/121", None),
    ]
    for method, path, body in attempts:
        for token in (None, "wrong-token"):
            status, head, err = api(method, path, body, token=token)
            assert status == 401, (method, path, token, err)
            assert head["WWW-Authenticate"].startswith("Bearer")
            assert err["error"]["code"] == "unauthorized"
    assert api("GET", "/pixels/121", token=None)[2]["name"] == "pixel 121"
    assert api("GET", "/pixels/122", token=None)[0] == 404


def test_records_breaking_a_contract_rule_are_422_naming_the_field_and_the_rule(api: API) -> None:
    status, _, err = api("POST", "/pixels", pixel(131, post_view_expire_mins=50_000))
    assert status == 422
    assert err["error"]["code"] == "invalid_pixel"
    assert err["error"]["field"] == "post_view_expire_mins"
    assert "43200" in err["error"]["message"]
    status, _, err = api("POST", "/pixels", pixel(131, piggyback_pixels=[{"pixel_type": "img", "url": "ftp://x"}]))
    assert (status, err["error"]["field"]) == (422, "piggyback_pixels[0].url")
    status, _, err = api("POST", "/line-items", {"id": 131, "advertiser_id": 10, "colour": "red"})
    assert (status, err["error"]["code"], err["error"]["field"]) == (422, "invalid_line_item", "colour")
    assert api("POST", "/pixels", pixel(132))[0] == 201
    status, _, err = api("PUT", "/pixels/132", pixel(133))
    assert (status, err["error"]["field"]) == (422, "id")
    assert api("POST", "/pixels", b"{not json")[0] == 400
    assert api("GET", "/pixels/131", token=None)[0] == 404


def test_unknown_ids_are_404_for_every_verb_of_both_resources(api: API) -> None:
    for path in ("/pixels/9141", "/line-items/9141", "/pixels/0", "/pixels/abc"):
        for method, body in (("GET", None), ("PUT", {"advertiser_id": 10, "name": "x"}), ("DELETE", None)):
            status, _, err = api(method, path, body)
            assert status == 404, (method, path, err)
            assert err["error"]["code"] == "not_found"
    assert api("GET", "/pixels/9141/tags", token=None)[0] == 404


def test_a_body_over_a_mebibyte_is_refused_with_413(api: API) -> None:
    status, _, err = api("POST", "/pixels", pixel(141, name="x" * 2_000_000))
    assert (status, err["error"]["code"]) == (413, "too_large")
    assert api("GET", "/pixels/141", token=None)[0] == 404


def test_creating_an_existing_id_is_a_409_already_exists(api: API) -> None:
    assert api("POST", "/pixels", pixel(151))[0] == 201
    status, _, err = api("POST", "/pixels", pixel(151, name="again"))
    assert (status, err["error"]["code"]) == (409, "already_exists")
    assert api("GET", "/pixels/151", token=None)[2]["name"] == "pixel 151"


def test_a_line_item_carries_20_pixels_and_a_21st_is_refused_with_422(api: API) -> None:
    ids = list(range(1601, 1622))
    for i in ids:
        assert api("POST", "/pixels", pixel(i))[0] == 201
    twenty = {"id": 160, "advertiser_id": 10, "pixels": [{"id": i} for i in ids[:20]]}
    assert api("POST", "/line-items", twenty)[0] == 201
    status, _, err = api("PUT", "/line-items/160", {**twenty, "pixels": [{"id": i} for i in ids]})
    assert (status, err["error"]["code"], err["error"]["field"]) == (422, "invalid_line_item", "pixels")
    assert "at most 20 pixels" in err["error"]["message"]
    assert len(api("GET", "/line-items/160", token=None)[2]["pixels"]) == 20
    status, _, err = api("POST", "/line-items", {"id": 161, "advertiser_id": 10, "pixels": [{"id": i} for i in ids]})
    assert status == 422


def test_deleting_a_pixel_a_line_item_still_carries_is_a_409_naming_it(api: API) -> None:
    assert api("POST", "/pixels", pixel(171))[0] == 201
    assert api("POST", "/line-items", {"id": 171, "advertiser_id": 10, "pixels": [{"id": 171}]})[0] == 201
    status, _, err = api("DELETE", "/pixels/171")
    assert (status, err["error"]["code"], err["error"]["line_items"]) == (409, "pixel_in_use", [171])
    assert api("GET", "/pixels/171", token=None)[0] == 200
    status, _, err = api("POST", "/line-items", {"id": 172, "advertiser_id": 10, "pixels": [{"id": 9172}]})
    assert (status, err["error"]["code"], err["error"]["pixels"]) == (409, "unknown_pixel", [9172])


# --- tag export ---------------------------------------------------------------------------------


def test_tags_are_exported_by_the_api_and_the_cli_alike(api: API, worker: Pipeline) -> None:
    assert api("POST", "/pixels", pixel(181, name="purchase", pixel_type="js"))[0] == 201
    status, _, tags = api("GET", "/pixels/181/tags", token=None)
    assert status == 200
    assert tags["format"] == "js"
    assert tags["tag"].endswith(f'<script src="https://{PIXEL_HOST}/px?id=181&amp;t=1" async></script>')
    status, _, img = api("GET", "/pixels/181/tags?format=img&value=1&order_id=1&other=1", token=None)
    assert img["tag"].startswith("<!-- Conversion pixel 181: purchase")
    assert "&amp;value=[VALUE]&amp;order_id=[ORDER_ID]&amp;other=[OTHER]" in img["tag"]
    assert (
        img["url"]
        == f"https://{PIXEL_HOST}/px?id=181&t=3&uid=[USER_ID]&value=[VALUE]&order_id=[ORDER_ID]&other=[OTHER]"
    )
    assert api("GET", "/pixels/181/tags?format=gif", token=None)[0] == 400

    env = {**worker.env, "ATTRIBUTION_PIXEL_HOST": PIXEL_HOST}
    run = subprocess.run(
        [ATTRIBUTION, "pixels", "export", "181", "--value", "--order-id", "--other"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    for title in ("# Image tag", "# JavaScript tag", "# Server-side URL", "# Server-side URL by auction token"):
        assert title in run.stdout
    assert img["tag"] in run.stdout
    assert img["url"] in run.stdout.splitlines()
    assert img["sspx_url"] in run.stdout.splitlines()
    assert img["sspx_url"].endswith("&other=[OTHER]&sspdata=[SSPDATA]")
    missing = subprocess.run(
        [ATTRIBUTION, "pixels", "export", "9181"], env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1
    assert "pixel 9181 not found" in missing.stderr


# --- health, /stats and /metrics after real conversions ------------------------------------------


def test_health_stats_and_metrics_count_the_conversions_the_workers_judged(api: API, worker: Pipeline) -> None:
    assert api("POST", "/pixels", pixel(191, post_view_value=0.5))[0] == 201
    assert api("POST", "/pixels", pixel(192))[0] == 201  # no line item: paused
    assert api("POST", "/pixels", pixel(193, state="inactive"))[0] == 201
    link = {"id": 191, "post_click_revenue": 2.5, "post_view_revenue": 0.25}
    assert api("POST", "/line-items", {"id": 190, "advertiser_id": 10, "pixels": [link]})[0] == 201
    now = int(time.time() * 1000)

    def touch(topic: str, user: str) -> dict[str, Any]:
        value = {
            "event_id": f"{topic}-{user}",
            "user_id": user,
            "timestamp": now - 60_000,
            "advertiser_id": 10,
            "line_item_id": 190,
            "creative_id": 1,
            "auction_id": f"a-{user}",
        }
        return {"topic": topic, "value": value}

    def conversion(eid: str, pixel_id: int, user: str, **extra: Any) -> dict[str, Any]:
        value = {"event_id": eid, "pixel_id": pixel_id, "user_id": user, "timestamp": now, **extra}
        return {"topic": "conversions", "value": value}

    worker.produce(
        [
            touch("clicks", "h-a"),
            touch("impressions", "h-b"),
            conversion("h-1", 191, "h-a", value=4.0),  # post_click, value 4, revenue 2.5
            conversion("h-2", 191, "h-b"),  # post_view, the pixel's value 0.5, revenue 0.25
            conversion("h-3", 191, "h-c"),  # no touch: no_eligible_touch
            conversion("h-4", 192, "h-a"),  # pixel_paused
            conversion("h-5", 193, "h-a"),  # inactive_pixel
            conversion("h-6", 9199, "h-a"),  # unknown_pixel
            {"topic": "conversions", "key": "h-z", "value": "{not json"},
        ]
    )

    def figures() -> dict[str, Any] | None:
        stats = api("GET", "/stats", token=None)[2]
        pixels = stats["windows"]["hour"]["pixels"]
        done = sum(pixels.get(str(p), {}).get("conversions", 0) for p in (191, 192, 193, 9199)) == 6
        return stats if done else None

    stats = wait_for(figures, what="six outcomes in /stats")
    p = stats["windows"]["hour"]["pixels"]["191"]
    assert p["attributed"] == {"post_click": 1, "post_view": 1, "total": 2}
    assert p["unattributed"]["no_eligible_touch"] == 1
    assert (p["value"], p["booked_revenue"]) == (4.5, 2.75)
    assert p["latency_ms"] == {"p50": 60_000, "p90": 60_000, "p99": 60_000}
    for pid, reason in ((192, "pixel_paused"), (193, "inactive_pixel"), (9199, "unknown_pixel")):
        assert stats["windows"]["hour"]["pixels"][str(pid)]["unattributed"][reason] == 1
    assert stats["windows"]["day"]["pixels"]["191"] == p
    assert stats["source"]["caught_up"] is True

    health = {pid: api("GET", f"/pixels/{pid}", token=None)[2] for pid in (191, 192, 193)}
    assert health[191]["status"] == "active"
    assert health[191]["health"] == {
        "loads_12h": 3,
        "last_load_at": now,
        "attributed_today": {"post_click": 1, "post_view": 1},
    }
    assert (health[192]["status"], health[192]["health"]["loads_12h"]) == ("paused", 1)
    assert (health[193]["status"], health[193]["health"]["loads_12h"]) == ("inactive", 1)

    status, head, text = api("GET", "/metrics", token=None)
    assert status == 200
    assert head["Content-Type"].startswith("text/plain")
    assert "# TYPE attribution_processing_seconds histogram" in text
    # Metrics are per worker (each judges its partitions): add the two workers' figures up.
    per_worker = [metric_lines(worker.web_url(name)) for name in ("w0", "w1")]

    def total(name: str) -> float:
        return sum(m.get(name, 0.0) for m in per_worker)

    # (at least: a record re-published after a crash counts again; /stats is the deduplicated view)
    assert total('attribution_outcomes_total{kind="attributed",reason="post_click"}') >= 1
    assert total('attribution_outcomes_total{kind="attributed",reason="post_view"}') >= 1
    for reason in ("no_eligible_touch", "pixel_paused", "inactive_pixel", "unknown_pixel"):
        assert total(f'attribution_outcomes_total{{kind="unattributed",reason="{reason}"}}') >= 1
    assert total('attribution_dead_letters_total{code="invalid_json"}') >= 1
    assert total('attribution_events_consumed_total{topic="conversions"}') >= 7
    assert total('attribution_events_consumed_total{topic="clicks"}') == 1
    # One observation per step of the events agent: a fetched batch of one partition's records.
    topics = ("impressions", "clicks", "conversions", "rekeyed-events", "event-time-ticks")
    records = sum(total(f'attribution_events_consumed_total{{topic="{t}"}}') for t in topics)
    assert 1 <= total("attribution_processing_seconds_count") <= records
    for m in per_worker:
        assert m["attribution_held_conversions"] == 0
        assert 0 <= m["attribution_batches_in_flight"] <= 8
        assert m["attribution_gc_frozen_objects"] > 0, "the collector froze what survived a tick"
        lags = {k: v for k, v in m.items() if k.startswith("attribution_consumer_lag{")}
        assert any('topic="conversions"' in k for k in lags)
        assert all(v >= 0 for v in lags.values())


def test_every_worker_reports_on_the_whole_pipeline_not_only_its_own_partitions(worker: Pipeline) -> None:
    urls = [worker.web_url("w0"), worker.web_url("w1")]
    consumed = [metric_lines(u).get('attribution_events_consumed_total{topic="conversions"}', 0) for u in urls]
    now = int(time.time() * 1000)
    worker.produce(
        {
            "topic": "conversions",
            "value": {"event_id": f"mw-{i}", "pixel_id": 9301, "user_id": f"mw-u{i}", "timestamp": now},
        }
        for i in range(30)
    )

    def counted(url: str) -> int:
        with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
            stats = orjson.loads(response.read())
        return int(stats["windows"]["hour"]["pixels"].get("9301", {}).get("conversions", 0))

    wait_for(lambda: all(counted(u) == 30 for u in urls), what="30 conversions on both workers' /stats")
    judged = [
        metric_lines(u).get('attribution_events_consumed_total{topic="conversions"}', 0) - before
        for u, before in zip(urls, consumed, strict=True)
    ]
    assert all(n > 0 for n in judged)  # each worker judged some of them, and reports all 30
    assert sum(judged) == 30


# --- schemathesis ---------------------------------------------------------------------------------

schema = schemathesis.openapi.from_dict(document())
schema.config.update(headers={"Authorization": f"Bearer {TOKEN}"})
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


def links_a_pixel_twice(body: Any) -> bool:
    """A line item linking one pixel twice: JSON Schema cannot state that rule (the contract checks
    it after the schema: a 422), so the positive-data check would take the refusal for a bug."""
    links = body.get("pixels") if isinstance(body, dict) else None
    if not isinstance(links, list):
        return False
    ids = [link["id"] for link in links if isinstance(link, dict) and isinstance(link.get("id"), int | float)]
    return len(ids) != len(set(ids))  # 1 == 1.0, as the contract sees them


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_conforms_to_its_openapi_document(case: schemathesis.Case, worker: Pipeline) -> None:
    excluded = [positive_data_acceptance] if links_a_pixel_twice(case.body) else []
    response = case.call_and_validate(base_url=worker.web_url(), timeout=30, excluded_checks=excluded)
    if excluded:  # refused all the same: never accepted, never a server error
        assert response.status_code in (401, 404, 409, 422), response.text
