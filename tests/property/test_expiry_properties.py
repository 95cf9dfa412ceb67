"""Deleting a user's state once `expires_at` is before the next event's horizon never changes any
output, compared with never deleting (`domain.state.expires_at`), whatever the pixels' windows,
repeat rules, retentions and caps; replay, which deletes through the expiry index, agrees too."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution.domain import EMPTY, Config, Conversion, Limits, Output, Touch, UserState, expires_at, step
from attribution.domain.state import compact, latest_use, latest_use_floor
from helpers import DAY, HOUR, MINUTE, T0, line_item, link, pixel

USERS = ("a", "b", "c")
GAPS = (0, 1, MINUTE, HOUR, DAY - 1, DAY, DAY + 1, 7 * DAY, 14 * DAY, 14 * DAY + 1, 30 * DAY, 90 * DAY)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Config, Limits, list[Touch | Conversion]]:
    windows = st.sampled_from([None, 0, 1, 60, 1440, 2 * 1440, 14 * 1440, 43_200])
    click_windows = st.sampled_from([None, 0, 60, 1440, 20_160, 40 * 1440, 129_600])
    pixels = [
        pixel(
            id=p,
            trigger_type=draw(st.sampled_from(["hybrid", "view", "click"])),
            post_view_expire_mins=draw(windows),
            post_click_expire_mins=draw(click_windows),
            min_minutes_per_conv=draw(st.sampled_from([None, 0, 1, 60, 32_767])),
        )
        for p in (1, 2)
    ]
    config = Config.of(pixels, [line_item(id=100, pixels=[link(id=1), link(id=2)]), line_item(id=101)])
    limits = Limits(
        dedup_retention_ms=draw(st.sampled_from([MINUTE, DAY, 7 * DAY])),
        repeat_retention_ms=draw(st.sampled_from([HOUR, 20 * DAY, 90 * DAY])),
        per_line_item=draw(st.sampled_from([1, 2])),
        max_user_touches=draw(st.sampled_from([2, 128])),
        max_processed=draw(st.sampled_from([2, 256])),
        max_counters=draw(st.sampled_from([1, 128])),
    )
    events: list[Touch | Conversion] = []
    ts = T0
    conv_ids: list[str] = []
    for i in range(draw(st.integers(1, 40))):
        ts += draw(st.sampled_from(GAPS))
        user = draw(st.sampled_from(USERS))
        kind = draw(st.sampled_from(["impression", "click", "conversion", "conversion", "duplicate"]))
        if kind == "duplicate" and conv_ids:
            events.append(Conversion(draw(st.sampled_from(conv_ids)), draw(st.sampled_from([1, 2])), user, ts))
        elif kind in ("conversion", "duplicate"):
            conv_ids.append(f"c{i}")
            events.append(Conversion(f"c{i}", draw(st.sampled_from([1, 2, 3])), user, ts))
        else:
            li = draw(st.sampled_from([100, 101]))
            events.append(Touch(kind, f"t{i}", user, ts, 10, li, 1, f"auction-{i}"))  # type: ignore[arg-type]
    return config, limits, events


def run(
    config: Config, limits: Limits, events: list[Touch | Conversion], delete: bool, compacting: bool = False
) -> list[Output]:
    users: dict[str, UserState] = {}
    outputs: list[Output] = []
    for event in events:
        if compacting:  # every user loses what expired as of this event's time
            for uid, state in list(users.items()):
                users[uid] = compact(state, event.timestamp, config.retention, limits)
        if delete:  # the horizon is the event's timestamp: events come in timestamp order
            expired = []
            for uid, state in users.items():
                expires = expires_at(state, config, limits)
                if expires is not None and expires < event.timestamp:
                    expired.append(uid)
            for uid in expired:
                del users[uid]
        state, out = step(users.get(event.user_id, EMPTY), event, config, limits)
        users[event.user_id] = state
        outputs.extend(out)
    return outputs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_deleting_expired_states_never_changes_an_output(
    world: tuple[Config, Limits, list[Touch | Conversion]],
) -> None:
    config, limits, events = world

    assert run(config, limits, events, delete=True) == run(config, limits, events, delete=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_dropping_what_expired_from_a_state_never_changes_an_output(
    world: tuple[Config, Limits, list[Touch | Conversion]],
) -> None:
    config, limits, events = world

    assert run(config, limits, events, delete=False, compacting=True) == run(config, limits, events, delete=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_the_expiry_written_with_a_state_is_never_after_its_latest_use(
    world: tuple[Config, Limits, list[Touch | Conversion]],
) -> None:
    """The floor the stream writes for the index rebuilt after recovery: looked at early is fine,
    late would keep an expired user; exact while the state holds no touches."""
    config, limits, events = world
    users: dict[str, UserState] = {}
    for event in events:
        state, _ = step(users.get(event.user_id, EMPTY), event, config, limits)
        users[event.user_id] = state
        floor, exact = latest_use_floor(state, config.retention, limits), latest_use(state, config.retention, limits)
        assert floor <= exact
        if not state.touches:
            assert floor == exact
        else:
            newest = state.touches[-1]
            assert floor >= newest.timestamp + config.retention.of(newest.kind)
