"""The HTTP edges: undecodable tokens, the token checked before the body is read, the Host check,
and a line item linking one pixel twice, refused by the contract wherever it comes from."""

from __future__ import annotations

import asyncio
from functools import partial

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from attribution.contract import decode
from attribution.errors import InvalidLineItem
from attribution.settings import Settings
from attribution.streaming.config_cache import ConfigCache
from attribution.web.api import LINE_ITEMS, PIXELS, Api, Request
from attribution.web.hosts import host_guard, host_name
from attribution.web.outcomes import OutcomeWindow
from attribution.web.reporting import Reporting
from attribution.web.views import respond
from helpers import answer

TOKEN = "t" * 32
TWICE = {
    "id": 5,
    "advertiser_id": 10,
    "pixels": [{"id": 1, "post_click_revenue": 1}, {"id": 1, "post_click_revenue": 9}],
}


class NoPublish:
    async def __call__(self, topic: str, key: bytes, value: bytes | None) -> tuple[int, int]:
        raise AssertionError("nothing may be published")


@pytest.fixture
def api() -> Api:
    settings = Settings(api_token=TOKEN)
    cache = ConfigCache(settings)
    cache.ready.set()
    return Api(settings, cache, NoPublish(), Reporting(OutcomeWindow(), lambda: 0), write_timeout=0.1)


@pytest.mark.parametrize("credentials", ["\udcff", "\udcff\udcfe", "tok\udc80en", "\ud800\udc00x", "ÿ" * 32])
async def test_a_token_that_is_not_utf8_is_a_401_not_a_500(api: Api, credentials: str) -> None:
    reply = await answer(api.delete(PIXELS, Request({"id": "1"}, headers={"Authorization": f"Bearer {credentials}"})))
    assert reply.status == 401
    assert reply.body["error"]["code"] == "unauthorized"


async def test_the_token_is_checked_before_the_body_is_read(api: Api) -> None:
    reads: list[int] = []

    async def load() -> bytes:
        reads.append(1)
        return b"{}"

    for call in (
        api.create(PIXELS, Request(headers={"Authorization": "Bearer wrong"}, load=load)),
        api.replace(LINE_ITEMS, Request({"id": "5"}, headers={}, load=load)),
    ):
        assert (await answer(call)).status == 401
    assert reads == []


async def test_through_the_web_glue_a_wrong_token_is_a_401_and_the_body_is_left_unread(api: Api) -> None:
    request = make_mocked_request("POST", "/pixels", headers={"Authorization": "Bearer wrong", "Content-Length": "2"})

    async def never() -> bytes:
        raise AssertionError("the body was read")

    object.__setattr__(request, "read", never)  # the glue hands request.read to the handler
    response = await respond(partial(api.create, PIXELS), request)
    assert response.status == 401


async def test_a_raw_request_with_byte_xff_in_its_token_is_a_401_from_the_server(api: Api) -> None:
    async def view(request: web.Request) -> web.StreamResponse:
        return await respond(partial(api.create, PIXELS), request)

    app = web.Application()
    app.router.add_post("/pixels", view)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /pixels HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        await writer.drain()
        head, _, body = (await reader.read()).partition(b"\r\n\r\n")
        writer.close()
    finally:
        await runner.cleanup()
    assert head.startswith(b"HTTP/1.1 401 ")
    assert orjson.loads(body)["error"]["code"] == "unauthorized"


async def test_a_line_item_linking_a_pixel_twice_is_a_422_naming_the_rule(api: Api) -> None:
    reply = await answer(
        api.create(LINE_ITEMS, Request(headers={"Authorization": f"Bearer {TOKEN}"}, body=orjson.dumps(TWICE)))
    )
    assert reply.status == 422
    assert reply.body["error"]["code"] == "invalid_line_item"
    assert reply.body["error"]["field"] == "pixels.1.id"
    assert "linked twice" in reply.body["error"]["message"]


def test_the_contract_refuses_a_line_item_linking_a_pixel_twice_even_as_1_and_1_0() -> None:
    with pytest.raises(InvalidLineItem, match=r"pixels\.1\.id: pixel 1 is linked twice"):
        decode("line-items", b'{"id": 5, "advertiser_id": 10, "pixels": [{"id": 1}, {"id": 1.0}]}')
    assert len(decode("line-items", orjson.dumps({**TWICE, "pixels": [{"id": 1}, {"id": 2}]})).pixels) == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:6066", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:6066", "::1"),
        ("example.com.:80", "example.com"),
        ("", ""),
    ],
)
def test_the_host_name_is_the_header_without_its_port_in_lower_case(header: str, name: str) -> None:
    assert host_name(header) == name


async def ok(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


@pytest.mark.parametrize("host", ["127.0.0.1:6066", "localhost:6066", "[::1]:6066", "worker-1.internal"])
async def test_requests_naming_a_known_host_are_answered(host: str) -> None:
    guard = host_guard(Settings(web_allowed_hosts="worker-1.internal").allowed_hosts)
    response = await guard(make_mocked_request("GET", "/stats", headers={"Host": host}), ok)
    assert response.status == 200


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:6066", "127.0.0.1.attacker.example", ""])
async def test_requests_naming_another_host_are_refused_before_any_handler(host: str) -> None:
    guard = host_guard(Settings().allowed_hosts)
    response = await guard(make_mocked_request("GET", "/table/users", headers={"Host": host}), ok)
    assert response.status == 400
    assert orjson.loads(response.body)["error"]["code"] == "invalid_host"  # type: ignore[arg-type]


async def test_a_star_answers_any_host() -> None:
    guard = host_guard(Settings(web_allowed_hosts="*").allowed_hosts)
    response = await guard(make_mocked_request("GET", "/stats", headers={"Host": "anything.example"}), ok)
    assert response.status == 200
