"""The client knobs Faust does not expose (`streaming.tuning`): set where the pinned versions keep
them, refused (False) where they do not."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mode.utils.locks import Event
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from attribution.streaming.tuning import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES, block_when_full, tune_fetch


def app_with(fetcher: Any) -> Any:
    return SimpleNamespace(
        _consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher)))
    )


def test_the_fetch_wait_and_minimum_are_set_on_aiokafkas_fetcher() -> None:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500, _fetch_min_bytes=1)

    assert tune_fetch(app_with(fetcher))
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES)
    assert FETCH_MAX_WAIT_MS < 1500


def test_a_fetcher_without_those_attributes_or_no_consumer_yet_is_left_alone() -> None:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500)

    assert not tune_fetch(app_with(fetcher))
    assert fetcher._fetch_max_wait_ms == 1500
    assert not tune_fetch(SimpleNamespace(_consumer=None))


def fill(queue: FlowControlQueue[int], n: int) -> list[str]:
    """Hand `n` items to the queue as Faust's conductor does; the pressure calls it made."""
    calls: list[str] = []
    for i in range(n):
        queue.put_nowait_enhanced(
            i, on_pressure_high=lambda: calls.append("high"), on_pressure_drop=lambda: calls.append("drop")
        )
    return calls


def test_a_full_events_queue_never_stops_a_partition_and_reports_full_instead() -> None:
    control = FlowControlEvent()
    control.resume()
    usual, blocking = FlowControlQueue[int](16, flow_control=control), FlowControlQueue[int](16, flow_control=control)

    assert block_when_full(blocking)
    assert "high" in fill(usual, 16)  # Faust would take the partition out of its fetch set
    assert fill(blocking, 16) == []
    assert blocking.full()  # so Faust's hand-off waits for room (`put`) rather than queueing more


def test_a_queue_of_another_kind_is_left_alone() -> None:
    assert not block_when_full(SimpleNamespace(maxsize=16))
    assert not block_when_full(Event())
