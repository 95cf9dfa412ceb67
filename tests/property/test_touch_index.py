"""The touch index (`domain.touch_index`) changes no state: the shortcut equals the full prune.

Random sequences of touches (in order, out of order, redelivered, ahead of the horizon) and judged
conversions, under random caps, retentions and horizons (the watermark, or explicit ones that lag,
stand still or move back), are applied twice: once to the states as the engine builds them (with
their index, so the shortcut is taken whenever it can be) and once to the same states rebuilt
without it (the full prune every time). States, the `Forgotten` tallies and the touches a
conversion sees must be identical after every operation. The length from which an index holds
counts (`MIN_INDEXED`) is drawn too, so that small caps meet both the light and the full index.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from attribution.domain import Forgotten, Limits, Touch, UserState
from attribution.domain import touch_index as touch_index_module
from attribution.domain.config import Retention
from attribution.domain.state import EMPTY, add_touch, record_conversion, visible_touches, visible_touches_of

UNIT = 1_000


@contextmanager
def indexed_from(length: int) -> Iterator[None]:
    saved = touch_index_module.MIN_INDEXED
    touch_index_module.MIN_INDEXED = length
    try:
        yield
    finally:
        touch_index_module.MIN_INDEXED = saved


@dataclass(frozen=True)
class AddTouch:
    kind: str
    event: int
    advertiser: int
    line_item: int
    step: int  # from the latest timestamp so far; negative: out of order
    lag: int | None  # the horizon behind the watermark; None: the default (the watermark)


@dataclass(frozen=True)
class Judge:
    step: int
    lag: int | None


Operation = AddTouch | Judge

lags = st.one_of(st.none(), st.none(), st.sampled_from([0, 0, 1, 2, 5, 30]).map(lambda n: n * UNIT), st.just(-UNIT))
steps = st.sampled_from([0, 0, 0, 1, 1, 1, 2, 3, 7, 20, -1, -3]).map(lambda n: n * UNIT)

add_touches = st.builds(
    AddTouch,
    kind=st.sampled_from(["impression", "impression", "click"]),
    event=st.integers(0, 40),  # a small pool: some touches are redelivered
    advertiser=st.integers(1, 2),
    line_item=st.integers(1, 3),
    step=steps,
    lag=lags,
)
judges = st.builds(Judge, step=steps, lag=lags)
operations = st.lists(st.one_of(add_touches, add_touches, add_touches, judges), min_size=20, max_size=120)
limits = st.builds(
    Limits,
    per_line_item=st.integers(0, 3),
    max_touches=st.one_of(st.integers(0, 6), st.just(64)),
    max_user_touches=st.one_of(st.integers(0, 10), st.just(128)),
    ahead_bytes=st.sampled_from([0, 300, 1_000, 3_000, 300_000]),
)
retentions = st.builds(
    Retention,
    view_ms=st.sampled_from([1, 4, 10, 25, 1_000]).map(lambda n: n * UNIT),
    click_ms=st.sampled_from([1, 4, 10, 25, 1_000]).map(lambda n: n * UNIT),
)


def without_index(state: UserState) -> UserState:
    """The same value, rebuilt: no index, so every operation on it takes the full prune."""
    return UserState(
        state.touches, state.counted, state.processed, state.watermark, state.held, state.orders, state.tied
    )


#: One line item's impressions, some ahead of a horizon that then catches up: the touches ahead
#: are settled against a full line item cap (`touch_index._settle` evicting), which the broad
#: strategy above reaches only now and then.
crowded = st.lists(
    st.one_of(
        st.builds(
            AddTouch,
            kind=st.just("impression"),
            event=st.integers(0, 40),
            advertiser=st.just(1),
            line_item=st.just(1),
            step=st.sampled_from([0, 1, 1, 2]).map(lambda n: n * UNIT),
            lag=st.sampled_from([None, None, 0, 3, 6]).map(lambda n: None if n is None else n * UNIT),
        ),
        st.builds(Judge, step=st.sampled_from([0, 1]).map(lambda n: n * UNIT), lag=st.none()),
    ),
    min_size=10,
    max_size=60,
)
crowded_limits = st.builds(Limits, per_line_item=st.integers(1, 3))


@given(operations, limits, retentions, st.sampled_from([0, 0, 3, 8, 10**9]))
def test_the_index_gives_the_states_of_the_full_prune(
    ops: list[Operation], limits: Limits, retention: Retention, min_indexed: int
) -> None:
    check(ops, limits, retention, min_indexed)


@given(crowded, crowded_limits, st.sampled_from([0, 3, 10**9]))
def test_touches_settled_against_a_full_line_item_give_the_states_of_the_full_prune(
    ops: list[Operation], limits: Limits, min_indexed: int
) -> None:
    check(ops, limits, Retention(view_ms=1_000 * UNIT, click_ms=1_000 * UNIT), min_indexed)


def check(ops: list[Operation], limits: Limits, retention: Retention, min_indexed: int) -> None:
    """Apply `ops` with and without the index; states, tallies and visible touches agree throughout."""
    indexed, plain = EMPTY, EMPTY
    tally, reference = Forgotten(), Forgotten()
    latest = 1_000_000 * UNIT
    with indexed_from(min_indexed):
        for n, op in enumerate(ops):
            latest += op.step
            horizon = None if op.lag is None else latest - op.lag
            if isinstance(op, AddTouch):
                touch = Touch(op.kind, f"e{op.event}", "u", latest, op.advertiser, op.line_item, 7, f"a{n}")  # type: ignore[arg-type]
                indexed = add_touch(indexed, touch, limits, horizon, retention, tally)
                plain = add_touch(without_index(plain), touch, limits, horizon, retention, reference)
            else:
                seen = visible_touches_of(indexed, latest, limits, retention)
                assert seen == visible_touches(plain.touches, latest, limits, retention)
                indexed = record_conversion(indexed, f"c{n}", latest, None, limits, horizon, retention, tally)
                plain = record_conversion(
                    without_index(plain), f"c{n}", latest, None, limits, horizon, retention, reference
                )
            assert indexed == plain
            assert (tally.touches, tally.dedup_ids, tally.counters) == (
                reference.touches,
                reference.dedup_ids,
                reference.counters,
            )
