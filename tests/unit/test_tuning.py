"""The consumer fetch knobs Faust does not expose (`streaming.tuning`): set where the pinned aiokafka
keeps them, refused (False) where it does not."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from attribution.streaming.tuning import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES, tune_fetch


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
