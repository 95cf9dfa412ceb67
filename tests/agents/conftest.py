"""The agent tier: the app of `create_app` driven through Faust's in-memory test support, no broker.

`agent.test_context()` (faust-streaming 0.15.3) runs a clone of the agent on an in-memory channel;
`put()` builds the message, runs the agent body on it and returns when the body has taken it. Two
things are arranged around it:

* Sends. Nothing is produced: `Topic.send` is replaced, for the test, by a recorder of what would
  have been published (topic, key, value, headers, partition).
* Topic names. `put()` names the message after the agent's channel, and the events agent reads
  several topics, whose combined name Faust cannot give (`get_topic_name` raises), so the message
  would come from topic "<internal>". `Driver.put` points the wrapper's `original_channel` at
  the one topic the record is meant to come from, so the app sees real (prefixed) topic names.

The config cache is filled directly (`ConfigCache.apply`, `ready.set()`): its Kafka consumer is a
plain `app.task` that a test context does not start. A config record put to the config agent is
applied to the cache first, at the offset the agent will see, as that consumer would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import faust
import faust.topics
import orjson
import pytest

from attribution.contract import CONFIG_TOPICS
from attribution.contract.state_codec import decode_state
from attribution.domain import UserState
from attribution.settings import Settings
from attribution.streaming import create_app
from helpers import line_item_json, pixel_json

PREFIX = "acme."
SETTINGS = Settings(topic_prefix=PREFIX, store="memory://", hold_ms=3000)


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: Any
    partition: int | None

    @property
    def record(self) -> Any:
        return orjson.loads(self.value)


class Recorder:
    """What the app would have published, in order: outputs and forwards (`sent`), and apart from
    them the tables' changelog writes (`changelog`)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.changelog: list[Sent] = []
        #: While a list: sends are not acknowledged at once; their futures go here, for the test
        #: to resolve (None: every send is acknowledged at once).
        self.unacked: list[asyncio.Future[None]] | None = None

    async def changelog_send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None, *_: Any
    ) -> asyncio.Future[Any]:
        """A table writer's `send` (`streaming.changelog.TableWriter`): acknowledged at once."""
        self.changelog.append(Sent(topic, key, value or b"null", None, partition))
        acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        acked.set_result(SimpleNamespace(topic_partition=(topic, partition), offset=len(self.changelog) - 1))
        return acked

    async def changelog_batches(
        self, topic: str, partition: int, records: Sequence[tuple[bytes, bytes | None]]
    ) -> list[tuple[asyncio.Future[Any], int, int]]:
        """A table writer's `batches` (`streaming.changelog.aiokafka_batches`): one record batch,
        acknowledged at once."""
        base = len(self.changelog)
        for key, value in records:
            self.changelog.append(Sent(topic, key, value or b"null", None, partition))
        acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        acked.set_result(SimpleNamespace(topic_partition=(topic, partition), offset=base))
        return [(acked, 0, len(records))]

    def record_writes(self, writer: Any) -> None:
        """Make a table writer's changelog writes go here, whichever way it sends them."""
        writer.send = self.changelog_send
        writer.batches = self.changelog_batches

    def to(self, name: str) -> list[Sent]:
        """Messages sent to a topic, by its default name."""
        return [s for s in self.sent if s.topic == SETTINGS.topic(name)]

    def records(self, name: str) -> list[Any]:
        return [s.record for s in self.to(name)]


class Driver:
    """One agent of the app under `test_context`, fed record by record."""

    def __init__(self, app: faust.App, ctx: Any, recorder: Recorder) -> None:
        self.app = app
        self.ctx = ctx
        self.recorder = recorder
        self._topics: dict[str, faust.TopicT] = {}

    async def put(
        self,
        name: str,
        value: bytes | dict[str, Any] | None,
        key: bytes | None = None,
        partition: int = 0,
        headers: Iterable[tuple[str, bytes]] | None = None,
    ) -> None:
        """Consume one message from topic `name` (default name). A dict value is encoded as JSON and,
        unless `key` is given, keyed by its user_id."""
        if isinstance(value, dict):
            key = value["user_id"].encode() if key is None else key
            value = orjson.dumps(value)
        actual = SETTINGS.topic(name)
        if actual not in self._topics:
            self._topics[actual] = self.app.topic(actual, key_type=bytes, value_type=bytes)
        self.ctx.original_channel = self._topics[actual]
        if name in CONFIG_TOPICS:  # what the cache's own consumer would do: apply it at its offset
            cache = self.app.attribution["cache"]  # type: ignore[attr-defined]
            offset = self.ctx.sent_offset
            cache.apply(name, key, value, partition, offset, list(headers or []))
            await cache.advanced({(actual, partition): offset + 1})
        await self.ctx.put(value=value, key=key, partition=partition, headers=list(headers or []))
        # The body has taken the message; let it finish whatever it awaits before the next one.
        for _ in range(10):
            await asyncio.sleep(0)
        assert not self.ctx.crashed, f"the agent crashed: {self.ctx.crash_reason!r}"

    def state(self, user: str) -> UserState:
        users = self.app.attribution["users"]  # type: ignore[attr-defined]
        return decode_state(user, users.get(user.encode()))


def _agent(app: faust.App, name: str) -> Any:
    return next(agent for full, agent in app.agents.items() if full.rsplit(".", 1)[-1] == name)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()

    async def send(self: faust.topics.Topic, *, key: Any = None, value: Any = None, **kw: Any) -> asyncio.Future[None]:
        rec.sent.append(Sent(self.get_topic_name(), key, value, kw.get("headers"), kw.get("partition")))
        # Like a forced send: a future that completes when the broker acknowledges.
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if rec.unacked is None:
            acked.set_result(None)
        else:
            rec.unacked.append(acked)
        return acked

    monkeypatch.setattr(faust.topics.Topic, "send", send)
    return rec


@pytest.fixture
def pixels() -> list[dict[str, Any]]:
    """The pixels in force; a test may replace or extend them before `app` is built."""
    return [pixel_json()]


@pytest.fixture
def line_items() -> list[dict[str, Any]]:
    return [line_item_json()]


@pytest.fixture
def app(pixels: list[dict[str, Any]], line_items: list[dict[str, Any]]) -> Iterator[faust.App]:
    """The product's app (memory store), its config cache loaded with `pixels` and `line_items`."""
    app = create_app(SETTINGS)
    cache = app.attribution["cache"]  # type: ignore[attr-defined]
    for p in pixels:
        cache.apply("pixels", str(p["id"]).encode(), orjson.dumps(p))
    for li in line_items:
        cache.apply("line-items", str(li["id"]).encode(), orjson.dumps(li))
    assert set(cache.pixels) == {p["id"] for p in pixels}, "a fixture pixel is invalid"
    assert set(cache.line_items) == {li["id"] for li in line_items}, "a fixture line item is invalid"
    cache.ready.set()
    yield app
    # A stream's first iteration makes Faust build the app's consumer, whose (never started)
    # consumer thread owns an event loop of its own: close it, or it leaks a ResourceWarning.
    consumer = getattr(app, "_consumer", None)
    thread_loop = getattr(getattr(consumer, "_thread", None), "thread_loop", None)
    if thread_loop is not None and not thread_loop.is_running():
        thread_loop.close()


@pytest.fixture
async def events(app: faust.App, recorder: Recorder) -> AsyncIterator[Driver]:
    recorder.record_writes(app.attribution["writer"])  # type: ignore[attr-defined]
    async with _agent(app, "events").test_context() as ctx:
        yield Driver(app, ctx, recorder)


@pytest.fixture
async def config_agent(app: faust.App, recorder: Recorder) -> AsyncIterator[Driver]:
    async with _agent(app, "config").test_context() as ctx:
        yield Driver(app, ctx, recorder)
