"""`SpilledStates` behaves as a dict, whatever its budget moves to disk and back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from attribution.domain import EMPTY, Limits, Touch, UserState
from attribution.domain.state import add_touch, record_conversion
from attribution.replay_states import SpilledStates

T0 = 1_700_000_000_000
USERS = [f"u{i}" for i in range(6)]


def state_of(user: str, touches: int, conversions: int) -> UserState:
    state = EMPTY
    for i in range(touches):
        kind = "click" if i % 4 == 0 else "impression"
        touch = Touch(kind, f"{user}-t{i}", user, T0 + i, 10, 100 + i % 3, 7, f"a{i}")
        state = add_touch(state, touch, Limits())
    for i in range(conversions):
        state = record_conversion(state, f"{user}-c{i}", T0 + touches + i, 1 if i % 2 else None, Limits())
    return state


operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "set", "get", "delete", "contains"]),
        st.sampled_from(USERS),
        st.integers(0, 20),
        st.integers(0, 3),
    ),
    max_size=60,
)


@given(operations, st.sampled_from([1, 3_000, 8_000, 30_000, 10**9]))
def test_spilled_states_answer_as_a_dict_does(ops: list[tuple[str, str, int, int]], budget: int) -> None:
    states, model = SpilledStates(budget), dict[str, UserState]()
    try:
        for op, user, touches, conversions in ops:
            if op == "set":
                state = state_of(user, touches, conversions)
                states[user] = model[user] = state
            elif op == "get":
                assert states.get(user) == model.get(user)
            elif op == "delete":
                if user in model:
                    del states[user], model[user]
                else:
                    assert states.get(user) is None
            else:
                assert (user in states) == (user in model)
            assert len(states) == len(model)
        assert sorted(states) == sorted(model)
        assert {user: states[user] for user in model} == model
    finally:
        states.close()
