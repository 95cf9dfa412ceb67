"""The index of a user's touches: the engine's shortcut past the full prune, never part of the value."""

from __future__ import annotations

import dataclasses

import pytest

from attribution.contract.state_codec import decode_state, encode_state
from attribution.domain import EMPTY, Limits, UserState
from attribution.domain import state as state_module
from attribution.domain.state import add_touch, record_conversion, visible_touches_of
from attribution.domain.touch_index import MIN_INDEXED
from helpers import MINUTE, T0, click, impression

LIMITS = Limits()


def heavy_user(touches: int) -> UserState:
    """A user touched every minute, in order, by 8 line items of 2 advertisers."""
    state = EMPTY
    for i in range(touches):
        make = click if i % 5 == 0 else impression
        touch = make(timestamp=T0 + i * MINUTE, advertiser_id=10 + i % 2, line_item_id=100 + i % 8)
        state = add_touch(state, touch, LIMITS)
    return state


def plain(state: UserState) -> UserState:
    return UserState(
        state.touches, state.counted, state.processed, state.watermark, state.held, state.orders, state.tied
    )


def test_a_heavy_users_in_order_touches_and_conversions_skip_the_full_prune(monkeypatch: pytest.MonkeyPatch) -> None:
    state = heavy_user(300)
    touch = impression(timestamp=T0 + 300 * MINUTE, line_item_id=103)
    expected_touch = add_touch(plain(state), touch, LIMITS)
    expected_conversion = record_conversion(plain(expected_touch), "c1", T0 + 301 * MINUTE, None, LIMITS)

    def full_prune(*args: object, **kwargs: object) -> object:
        raise AssertionError("the full prune ran")

    monkeypatch.setattr(state_module, "_prune_touches", full_prune)
    with_touch = add_touch(state, touch, LIMITS)
    with_conversion = record_conversion(with_touch, "c1", T0 + 301 * MINUTE, None, LIMITS)

    assert with_touch == expected_touch
    assert with_conversion == expected_conversion
    assert visible_touches_of(with_conversion, T0 + 302 * MINUTE, LIMITS, state_module.LONGEST_RETENTION) == (
        with_conversion.touches
    )


def test_a_redelivered_touch_is_recognised_with_the_index() -> None:
    state = heavy_user(100)
    again = state.touches[-3]

    assert add_touch(state, again, LIMITS) is state


def test_a_touch_out_of_order_takes_the_full_prune_and_gives_the_same_state() -> None:
    state = heavy_user(100)
    late = click(timestamp=T0 + 50 * MINUTE + 1, line_item_id=104)

    assert add_touch(state, late, LIMITS) == add_touch(plain(state), late, LIMITS)


def test_the_index_is_not_part_of_the_states_value() -> None:
    state = heavy_user(40)
    rebuilt = plain(state)

    assert len(state.touches) >= MIN_INDEXED
    assert state._index is not None
    assert rebuilt._index is None
    assert state == rebuilt
    assert hash(state) == hash(rebuilt)
    assert repr(state) == repr(rebuilt)
    assert encode_state(state) == encode_state(rebuilt)
    assert decode_state("u", encode_state(state))._index is None


def test_a_state_copied_with_other_touches_has_no_index() -> None:
    state = heavy_user(40)

    assert dataclasses.replace(state, touches=state.touches[1:])._index is None


def test_a_user_with_few_touches_has_a_light_index_without_counts() -> None:
    state = heavy_user(MIN_INDEXED - 1)

    assert state._index is not None
    assert state._index.keys is None
    assert state._index.ids is None


@pytest.mark.parametrize("touches", [3, 300], ids=["light", "indexed"])
def test_touches_ahead_that_the_horizon_reaches_evict_their_line_items_oldest_as_the_full_prune_does(
    touches: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Line item 199 holds its cap of impressions (2) behind the horizon; two more arrive ahead of
    # it, then a touch whose horizon has reached them: each settles in place, evicting the oldest.
    state = heavy_user(touches)
    at = T0 + touches * MINUTE
    for i in range(4):
        horizon = None if i < 2 else at  # the first two behind (the watermark), then two ahead
        state = add_touch(state, impression(timestamp=at + (i + 1) * MINUTE, line_item_id=199), LIMITS, horizon)
    assert sum(t.line_item_id == 199 for t in state.touches) == 4
    later = impression(timestamp=at + 10 * MINUTE, line_item_id=101)
    expected = add_touch(plain(state), later, LIMITS)

    def full_prune(*args: object, **kwargs: object) -> object:
        raise AssertionError("the full prune ran")

    monkeypatch.setattr(state_module, "_prune_touches", full_prune)
    settled = add_touch(state, later, LIMITS)

    assert settled == expected
    assert [t.timestamp for t in settled.touches if t.line_item_id == 199] == [at + 3 * MINUTE, at + 4 * MINUTE]
