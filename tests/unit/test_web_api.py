"""The HTTP API's handlers without a broker or a server: a real `ConfigCache`, and a fake publish
that applies each record to it the way the cache's consumer would, with offsets.

The same paths run against a real worker on a real broker in `tests/integration/test_api.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from attribution.app.reports import Outcome
from attribution.settings import Settings
from attribution.streaming.config_cache import ConfigCache
from attribution.web.api import LINE_ITEMS, PIXELS, Api, Reply, Request
from attribution.web.outcomes import OutcomeWindow
from attribution.web.reporting import Reporting
from helpers import answer, pixel_json

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = 1_795_000_000_000


class FakeTopics:
    """Publishes by applying to the cache (one partition per topic), like the cache's consumer."""

    def __init__(self, cache: ConfigCache, settings: Settings) -> None:
        self.cache = cache
        self.names = {settings.topic(t): t for t in ("pixels", "line-items")}
        self.log: list[tuple[str, bytes, bytes | None]] = []
        self.fail = False
        self.apply = True
        self.pending: set[asyncio.Future[None]] = set()

    async def publish(self, topic: str, key: bytes, value: bytes | None) -> tuple[int, int]:
        if self.fail:
            raise ConnectionError("broker down")
        offset = len([e for e in self.log if e[0] == topic])
        self.log.append((topic, key, value))
        if self.apply:
            # Applied a moment later, as the cache's consumer would: the write must wait for it.
            asyncio.get_running_loop().call_later(0.01, self._applied, topic, key, value, offset)
        return 0, offset

    def _applied(self, topic: str, key: bytes, value: bytes | None, offset: int) -> None:
        self.cache.apply(self.names[topic], key, value)
        self.pending.add(asyncio.ensure_future(self.cache.advanced({(topic, 0): offset + 1})))


@pytest.fixture
def world() -> tuple[Api, FakeTopics, OutcomeWindow]:
    settings = Settings(topic_prefix="t-", api_token=TOKEN, pixel_host="px.test")
    cache = ConfigCache(settings)
    cache.ready.set()
    topics = FakeTopics(cache, settings)
    window = OutcomeWindow()
    api = Api(settings, cache, topics.publish, Reporting(window, lambda: NOW), write_timeout=0.2)
    return api, topics, window


def req(
    body: Any = None, ident: int | str | None = None, headers: dict[str, str] | None = None, **query: str
) -> Request:
    raw = body if isinstance(body, bytes) else b"" if body is None else orjson.dumps(body)
    params = {} if ident is None else {"id": str(ident)}
    return Request(params, query, AUTH if headers is None else headers, raw)


def pixel(ident: int = 1, **fields: Any) -> dict[str, Any]:
    return pixel_json(id=ident, **{"name": f"pixel {ident}", **fields})


def error(reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = reply.body["error"]
    return body


# --- pixels ------------------------------------------------------------------------------------


async def test_a_created_pixel_is_read_back_with_defaults_status_and_health(world: Any) -> None:
    api, topics, _ = world
    created = await answer(api.create(PIXELS, req(pixel(1))))
    assert created.status == 201
    assert created.headers == {"Location": "/pixels/1"}
    assert created.body["post_view_expire_mins"] == 1440
    assert created.body["status"] == "paused"
    assert created.body["health"]["loads_12h"] == 0
    assert topics.log == [("t-pixels", b"1", orjson.dumps(pixel(1)))]
    got = await answer(api.get(PIXELS, req(ident=1)))
    assert got.body == created.body


async def test_a_replaced_pixel_is_the_new_version_at_once(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1)))
    replaced = await answer(api.replace(PIXELS, req({"advertiser_id": 10, "name": "renamed"}, 1)))
    assert replaced.status == 200
    assert (await api.get(PIXELS, req(ident=1))).body["name"] == "renamed"


async def test_an_invalid_pixel_is_refused_with_422_naming_the_field_and_nothing_is_published(world: Any) -> None:
    api, topics, _ = world
    reply = await answer(api.create(PIXELS, req(pixel(1, post_view_expire_mins=50_000))))
    assert reply.status == 422
    assert error(reply)["code"] == "invalid_pixel"
    assert error(reply)["field"] == "post_view_expire_mins"
    assert "43200" in error(reply)["message"]
    assert topics.log == []


async def test_a_body_that_is_not_an_object_is_a_422_and_one_that_is_not_json_a_400(world: Any) -> None:
    api, _, _ = world
    assert (await answer(api.create(PIXELS, req([1, 2])))).status == 422
    not_json = await answer(api.create(PIXELS, req(b"{nope")))
    assert (not_json.status, error(not_json)["code"]) == (400, "invalid_json")
    assert (await answer(api.create(PIXELS, req(b"")))).status == 400


async def test_posting_an_existing_id_is_a_409_already_exists(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1)))
    reply = await answer(api.create(PIXELS, req(pixel(1, name="again"))))
    assert (reply.status, error(reply)["code"]) == (409, "already_exists")


async def test_a_put_whose_body_names_another_id_is_a_422_on_the_id(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1)))
    reply = await answer(api.replace(PIXELS, req(pixel(2), 1)))
    assert (reply.status, error(reply)["field"]) == (422, "id")
    assert (await answer(api.replace(PIXELS, req(pixel(1), 1)))).status == 200


async def test_unknown_or_impossible_ids_are_404_for_every_verb(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1)))  # "1\n", " 1" and "+1" must not reach it
    for ident in (5, 0, -1, "abc", "99999999999999999999", "1\n", " 1", "+1"):
        assert (await answer(api.get(PIXELS, req(ident=ident)))).status == 404
        assert (await answer(api.replace(PIXELS, req(pixel(1), ident)))).status == 404
        assert (await answer(api.delete(PIXELS, req(ident=ident)))).status == 404
        assert (await answer(api.get(LINE_ITEMS, req(ident=ident)))).status == 404
        assert (await answer(api.tags(req(ident=ident)))).status == 404
    assert error(await answer(api.get(PIXELS, req(ident=5))))["code"] == "not_found"


async def test_deleting_a_pixel_a_line_item_carries_is_a_409_naming_the_line_items(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1)))
    await api.create(LINE_ITEMS, req({"id": 5, "advertiser_id": 10, "state": "inactive", "pixels": [{"id": 1}]}))
    reply = await answer(api.delete(PIXELS, req(ident=1)))
    assert (reply.status, error(reply)["code"], error(reply)["line_items"]) == (409, "pixel_in_use", [5])
    assert (await answer(api.delete(LINE_ITEMS, req(ident=5)))).status == 204
    assert (await answer(api.delete(PIXELS, req(ident=1)))).status == 204
    assert (await answer(api.get(PIXELS, req(ident=1)))).status == 404


async def test_changing_a_pixels_advertiser_under_its_line_items_is_a_409(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1)))
    await api.create(LINE_ITEMS, req({"id": 5, "advertiser_id": 10, "pixels": [{"id": 1}]}))
    reply = await answer(api.replace(PIXELS, req({"advertiser_id": 11, "name": "moved"}, 1)))
    assert (reply.status, error(reply)["code"], error(reply)["line_items"]) == (409, "advertiser_mismatch", [5])


# --- line items ----------------------------------------------------------------------------------


async def test_a_line_item_carries_up_to_20_pixels_and_the_21st_is_a_422(world: Any) -> None:
    api, topics, _ = world
    for i in range(1, 22):
        await api.create(PIXELS, req(pixel(i)))
    twenty = {"id": 5, "advertiser_id": 10, "pixels": [{"id": i} for i in range(1, 21)]}
    assert (await answer(api.create(LINE_ITEMS, req(twenty)))).status == 201
    published = len(topics.log)
    reply = await answer(api.replace(LINE_ITEMS, req({**twenty, "pixels": [{"id": i} for i in range(1, 22)]}, 5)))
    assert (reply.status, error(reply)["code"], error(reply)["field"]) == (422, "invalid_line_item", "pixels")
    assert "20" in error(reply)["message"]
    assert len(topics.log) == published
    assert len((await api.get(LINE_ITEMS, req(ident=5))).body["pixels"]) == 20


async def test_a_line_item_naming_a_missing_pixel_or_another_advertisers_is_a_409(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1, advertiser_id=99)))
    missing = await answer(api.create(LINE_ITEMS, req({"id": 5, "advertiser_id": 10, "pixels": [{"id": 7}]})))
    assert (missing.status, error(missing)["code"], error(missing)["pixels"]) == (409, "unknown_pixel", [7])
    assert error(missing)["field"] == "pixels.0.id"
    foreign = await answer(api.create(LINE_ITEMS, req({"id": 5, "advertiser_id": 10, "pixels": [{"id": 1}]})))
    assert (foreign.status, error(foreign)["code"]) == (409, "advertiser_mismatch")


async def test_a_line_item_makes_its_pixels_active_and_lists_filter_by_advertiser(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1)))
    await api.create(PIXELS, req(pixel(2, advertiser_id=11)))
    await api.create(LINE_ITEMS, req({"id": 5, "advertiser_id": 10, "pixels": [{"id": 1, "post_click_revenue": 2}]}))
    listed = (await api.list_all(PIXELS, req())).body["pixels"]
    assert [(p["id"], p["status"]) for p in listed] == [(1, "active"), (2, "paused")]
    only = (await api.list_all(PIXELS, req(advertiser_id="11"))).body["pixels"]
    assert [p["id"] for p in only] == [2]
    items = (await api.list_all(LINE_ITEMS, req())).body["line_items"]
    assert items == [
        {
            "id": 5,
            "advertiser_id": 10,
            "state": "active",
            "pixels": [{"id": 1, "state": "active", "post_click_revenue": 2, "post_view_revenue": None}],
            "name": None,
        }
    ]
    assert (await answer(api.list_all(PIXELS, req(advertiser_id="x")))).status == 400


# --- auth, failures ------------------------------------------------------------------------------


async def test_writes_without_the_right_bearer_token_are_401_with_www_authenticate(world: Any) -> None:
    api, topics, _ = world
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic czNjcmV0"},
        {"Authorization": "Bearer "},
    ):
        for call in (
            api.create(PIXELS, req(pixel(1), headers=headers)),
            api.replace(PIXELS, req(pixel(1), 1, headers=headers)),
            api.delete(PIXELS, req(ident=1, headers=headers)),
            api.create(LINE_ITEMS, req({"id": 1, "advertiser_id": 1}, headers=headers)),
        ):
            reply = await answer(call)
            assert reply.status == 401
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert topics.log == []


async def test_without_a_configured_token_writes_are_off_but_reads_work(world: Any) -> None:
    api, _, _ = world
    api.settings = Settings(api_token="")
    reply = await answer(api.create(PIXELS, req(pixel(1))))
    assert (reply.status, error(reply)["code"]) == (403, "writes_disabled")
    assert (await answer(api.list_all(PIXELS, req(headers={})))).status == 200


async def test_a_write_the_broker_refuses_is_a_503_and_one_not_read_back_in_time_a_504(world: Any) -> None:
    api, topics, _ = world
    topics.fail = True
    assert (await answer(api.create(PIXELS, req(pixel(1))))).status == 503
    topics.fail, topics.apply = False, False
    late = await answer(api.create(PIXELS, req(pixel(2))))
    assert (late.status, error(late)["code"]) == (504, "not_applied")


async def test_reads_wait_for_the_config_to_load_and_say_so_if_it_does_not(world: Any) -> None:
    api, _, _ = world
    api.cache.ready.clear()
    assert (await answer(api.list_all(PIXELS, req()))).status == 503
    api.cache.ready.clear()
    waiting = asyncio.ensure_future(api.list_all(PIXELS, req()))
    await asyncio.sleep(0.01)
    api.cache.ready.set()
    assert (await waiting).status == 200


# --- tags, health ---------------------------------------------------------------------------------


async def test_tags_default_to_the_pixels_own_type_and_take_placeholder_flags(world: Any) -> None:
    api, _, _ = world
    await api.create(PIXELS, req(pixel(1, pixel_type="js")))
    js = (await api.tags(req(ident=1))).body
    assert js["format"] == "js"
    assert "<script src=" in js["tag"]
    assert js["url"] == "https://px.test/px?id=1&t=3&uid=[USER_ID]"
    assert js["sspx_url"] == "https://px.test/sspx?id=1&sspdata=[SSPDATA]"
    img = (await api.tags(req(ident=1, format="img", value="1", other="true", order_id="0"))).body
    assert "&amp;value=[VALUE]&amp;other=[OTHER]" in img["tag"]
    assert "order_id" not in img["tag"]
    assert (await answer(api.tags(req(ident=1, format="gif")))).status == 400
    assert (await answer(api.tags(req(ident=1, value="yes")))).status == 400


async def test_a_pixels_health_shows_its_loads(world: Any) -> None:
    api, _, window = world
    await api.create(PIXELS, req(pixel(1)))
    window.add(Outcome("v1", 1, "post_click", True, NOW - 100, NOW - 50, 1.0, None, 10))
    health = (await api.get(PIXELS, req(ident=1))).body["health"]
    assert health == {"loads_12h": 1, "last_load_at": NOW - 100, "attributed_today": {"post_click": 1, "post_view": 0}}


async def test_a_pixels_order_id_deduplication_is_off_by_default_and_set_through_the_api(world: Any) -> None:
    api, _, _ = world
    plain = await answer(api.create(PIXELS, req(pixel(1))))
    dedupe = await answer(api.create(PIXELS, req(pixel(2, dedupe_order_id=True))))
    bad = await answer(api.create(PIXELS, req(pixel(3, dedupe_order_id="yes"))))

    assert plain.body["dedupe_order_id"] is False
    assert dedupe.body["dedupe_order_id"] is True
    assert bad.status == 422
    assert bad.body["error"]["field"] == "dedupe_order_id"
