"""`EventTime.releasable_through` gives what asking `PartitionTime.may_judge` of every held
conversion gives, whatever the watermarks, the sources caught up and the arrival times."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.streaming.event_time import LAG_SOURCES, NEVER, EventTime

timestamps = st.integers(min_value=0, max_value=6)
watermarks = st.one_of(st.just(NEVER), timestamps)
moments = st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0])


def brute_force(time: EventTime, partition: int, now: float) -> int | None:
    pt = time.of(partition)
    ok = [ts for ts, _, _, arrived in pt.held if pt.may_judge(ts, arrived, now, time.hold_s)]
    return max(ok) if ok else None


@settings(max_examples=600, deadline=None)
@given(
    impressions=watermarks,
    clicks=watermarks,
    caught=st.dictionaries(st.sampled_from(LAG_SOURCES), moments),
    held=st.lists(st.tuples(timestamps, moments), max_size=12),
    now=moments,
)
def test_the_release_of_a_tick_is_what_each_held_conversion_allows(
    impressions: int, clicks: int, caught: dict[str, float], held: list[tuple[int, float]], now: float
) -> None:
    time = EventTime(hold_ms=3000)
    pt = time.of(0)
    pt.impressions, pt.clicks = impressions, clicks
    pt.caught_up_since.update(caught)
    for i, (ts, arrived) in enumerate(held):
        time.held(0, ts, f"u{i}".encode(), arrived)

    assert time.releasable_through(0, now) == brute_force(time, 0, now)
