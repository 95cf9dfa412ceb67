"""Replay in bounded memory: the states past the budget go to disk and come back unchanged."""

from __future__ import annotations

import orjson
import pytest

from attribution.domain import EMPTY, Limits, UserState
from attribution.domain.state import add_touch
from attribution.replay import replay
from attribution.replay_states import SpilledStates, _estimate
from attribution.synth import TrafficSpec, config_records, events
from helpers import MINUTE, T0, click, impression

SPEC = TrafficSpec(users=300, events=6_000, seed=3)


def traffic() -> list[bytes]:
    records = [*config_records(SPEC), *events(SPEC)]
    return [orjson.dumps({"topic": t, "key": k, "value": v}) for t, k, v in records]


def touched(n: int, user: str = "u1") -> UserState:
    state = EMPTY
    for i in range(n):
        make = click if i % 3 == 0 else impression
        state = add_touch(state, make(user_id=user, timestamp=T0 + i * MINUTE, line_item_id=100 + i % 5), Limits())
    return state


def test_a_replay_past_its_memory_budget_gives_the_outputs_and_states_of_one_in_memory() -> None:
    lines = traffic()
    small = replay(lines, memory=20_000)
    large = replay(lines)

    assert isinstance(small.users, SpilledStates)
    assert small.users.spilled > 0
    assert small.outputs == large.outputs
    assert small.expired == large.expired
    assert set(small.users) == set(large.users)
    assert all(small.users[user] == state for user, state in large.users.items())


def test_a_state_moved_to_disk_reads_back_equal_and_moves_back_to_memory() -> None:
    first, second = touched(20, "u1"), touched(3, "u2")
    states = SpilledStates(budget=_estimate(first) + 1)  # one of them fits
    states["u1"] = first
    states["u2"] = second  # over the budget: the least recently written goes to disk

    assert "u1" not in states.hot
    assert states.cold
    assert "u1" in states
    assert len(states) == 2
    assert sorted(states) == ["u1", "u2"]
    assert states["u1"] == first
    assert "u1" in states.hot


def test_deleting_a_state_on_disk_removes_it_and_an_unknown_user_is_a_key_error() -> None:
    states = SpilledStates(budget=1)
    states["u1"] = touched(4, "u1")
    states["u2"] = touched(4, "u2")

    del states["u1"]

    assert "u1" not in states
    assert states.get("u1") is None
    with pytest.raises(KeyError):
        del states["u1"]
    with pytest.raises(KeyError):
        states["nobody"]


def test_closing_the_map_removes_its_file() -> None:
    states = SpilledStates(budget=1)
    states["u1"] = touched(4, "u1")
    states["u2"] = touched(4, "u2")

    states.close()

    assert not states.cold
    assert "u1" not in states
    assert set(states) == set(states.hot)
