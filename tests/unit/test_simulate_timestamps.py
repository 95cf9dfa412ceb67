"""`attribution simulate` stamps live traffic with the time each event is published (so delays
read as in production) and, with --fixed-date, publishes the seeded records unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from attribution.cli import main
from attribution.settings import Settings
from attribution.synth import TrafficSpec, events

# The module (the package's `simulate_cmd` attribute is the click command of the same name).
simulate_module = importlib.import_module("attribution.cli.simulate_cmd")
SPEC = TrafficSpec(users=50, events=300, seed=4)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bytes | None]] = []

    async def send(self, topic: str, key: Any, value: bytes | None, headers: Any = ()) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def flush(self) -> None:
        pass


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, bytes | None]]:
    fake = FakeProducer()

    @contextlib.asynccontextmanager
    async def producer(settings: Settings, **kw: Any) -> AsyncIterator[FakeProducer]:
        yield fake

    monkeypatch.setattr("attribution.kafka.client.producer", producer)
    return fake.sent


def published_events(sent: list[tuple[str, Any, bytes | None]]) -> list[tuple[str, Any, dict[str, Any]]]:
    return [(t, k, orjson.loads(v)) for t, k, v in sent if v is not None and not t.endswith(("pixels", "line-items"))]


def test_live_events_carry_the_clocks_time_when_sent_and_never_go_back(sent: list[Any]) -> None:
    ticks = iter([5_000, 4_000, *range(6_000, 10_000)])  # the wall clock stepping back once
    asyncio.run(simulate_module.simulate(Settings(), SPEC, rate=None, with_config=False, clock=lambda: next(ticks)))
    got = published_events(sent)
    stamps = [v["timestamp"] for _, _, v in got]
    assert stamps[:3] == [5_000, 5_000, 6_000]
    assert stamps == sorted(stamps)
    generated = list(events(SPEC))
    assert [(t, k, {**v, "timestamp": 0}) for t, k, v in got] == [
        (t, k, {**v, "timestamp": 0}) for t, k, v in generated
    ]


def test_fixed_date_events_are_the_generated_records_byte_for_byte(sent: list[Any]) -> None:
    asyncio.run(simulate_module.simulate(Settings(), SPEC, rate=None, with_config=False, clock=None))
    assert [v for _, _, v in sent] == [orjson.dumps(v) for _, _, v in events(SPEC)]


def test_the_command_stamps_with_the_wall_clock_unless_fixed_date_is_given(
    sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulate_module, "wall_clock_ms", lambda: 1_900_000_000_000)
    args = ["simulate", "--events", "40", "--users", "10", "--no-config", "--no-progress"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert {v["timestamp"] for _, _, v in published_events(sent)} == {1_900_000_000_000}
    sent.clear()
    assert CliRunner().invoke(main, [*args, "--fixed-date"]).exit_code == 0
    assert min(v["timestamp"] for _, _, v in published_events(sent)) == TrafficSpec(users=1, events=0).start_ms
