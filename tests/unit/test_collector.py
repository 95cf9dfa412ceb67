"""The worker's cyclic collector policy (`streaming.collector`): freeze what survives, collect
everything now and then."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from attribution.streaming.collector import Collector


def fake_gc(calls: list[str]) -> Any:
    return SimpleNamespace(
        freeze=lambda: calls.append("freeze"),
        unfreeze=lambda: calls.append("unfreeze"),
        collect=lambda: calls.append("collect"),
        get_freeze_count=lambda: 42,
    )


def test_the_first_tick_freezes_and_later_ones_only_once_the_interval_is_over() -> None:
    calls: list[str] = []
    collector = Collector(freeze_every_s=1.0, full_every_s=100.0, gc=fake_gc(calls))

    for now in (10.0, 10.2, 10.9, 11.0, 11.5, 12.1):
        collector.tick(now)

    assert calls == ["freeze", "freeze", "freeze"]
    assert collector.frozen() == 42


def test_a_full_collection_unfreezes_collects_then_freezes_again_once_per_interval() -> None:
    calls: list[str] = []
    collector = Collector(freeze_every_s=1.0, full_every_s=5.0, gc=fake_gc(calls))

    for now in range(12):
        collector.tick(float(now))

    assert calls.count("collect") == 2  # at 5 and at 10
    assert collector.full_collections == 2
    i = calls.index("collect")
    assert calls[i - 1 : i + 2] == ["unfreeze", "collect", "freeze"]


@pytest.fixture
def real_gc() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_frozen_objects_are_skipped_by_collections_and_still_freed_when_released(real_gc: None) -> None:
    class State:
        pass

    states = [State() for _ in range(1000)]
    collector = Collector()
    collector.tick(0.0)
    assert collector.frozen() >= 1000
    assert all(gc.is_tracked(s) for s in states)

    before = collector.frozen()
    del states  # acyclic: reference counting frees them, frozen or not
    assert collector.frozen() <= before - 1000

    collector.tick(collector.full_every_s)  # the full collection: unfrozen, collected, frozen anew
    assert collector.full_collections == 1
