"""The worker's cyclic collector policy (`streaming.collector`): freeze what survives, collect
everything now and then."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from attribution.streaming.collector import Collector


def fake_gc(calls: list[str], freed: int = 5000) -> Any:
    return SimpleNamespace(
        freeze=lambda: calls.append("freeze"),
        unfreeze=lambda: calls.append("unfreeze"),
        collect=lambda: calls.append("collect") or freed,  # objects freed
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


def test_full_collections_that_free_little_come_ever_more_rarely_and_one_that_frees_much_resets_that() -> None:
    calls: list[str] = []
    freed = iter([0, 999, 5000, 0, 0, 0])
    gc = fake_gc(calls)
    gc.collect = lambda: next(freed)
    collector = Collector(freeze_every_s=1.0, full_every_s=5.0, full_every_max_s=12.0, gc=gc)
    ran = [now for now in range(60) if collector.tick(float(now))]
    # every 5 s at first; 0 freed: 10 s; 999 freed: 12 s (the longest); 5,000 freed: 5 s again
    assert ran == [5, 15, 27, 32, 42, 54]
    assert collector.interval_s == 12.0


def test_a_full_collection_is_reported_with_its_pause_and_what_it_freed() -> None:
    calls: list[str] = []
    readings = iter([3.0, 3.25])
    collector = Collector(
        freeze_every_s=1.0, full_every_s=5.0, gc=fake_gc(calls), stopwatch=lambda: next(readings)
    )  # frees 5,000
    assert [collector.tick(float(now)) for now in range(7)] == [False] * 5 + [True, False]
    assert (collector.last_full_ms, collector.last_full_freed) == (250.0, 5000)


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
