"""Every part of a user's state bounded over time and in size (`domain.state`), and the largest
state record under the bound the changelog is sized for (`contract.state_codec.MAX_STATE_BYTES`)."""

from __future__ import annotations

from attribution.contract.state_codec import MAX_STATE_BYTES, encode_state
from attribution.domain import (
    EMPTY,
    AttributedConversion,
    Conversion,
    Forgotten,
    Limits,
    Touch,
    UserState,
    expires_at,
    step,
)
from attribution.domain.config import LONGEST_RETENTION, Retention, touch_retention
from attribution.domain.state import (
    MAX_TIED,
    _prune_touches,
    add_touch,
    latest_use,
    record_conversion,
    touch_bytes,
    visible_touches,
)
from helpers import DAY, MINUTE, T0, click, config, conversion, impression, line_item, link, outcomes, pixel, run

LIMITS = Limits()

# --- touch retention, from the configuration ----------------------------------------------------


def test_touch_retention_is_the_product_defaults_when_no_pixel_looks_further_back() -> None:
    assert config().retention == Retention(1 * DAY, 14 * DAY)
    assert touch_retention([]) == Retention(1 * DAY, 14 * DAY)
    assert touch_retention([pixel(post_view_expire_mins=60, post_click_expire_mins=60)]) == Retention(DAY, 14 * DAY)


def test_touch_retention_is_the_longest_window_of_any_pixel_in_any_state_up_to_the_maxima() -> None:
    pixels = [
        pixel(id=1, post_view_expire_mins=3 * 1440),
        pixel(id=2, state="inactive", post_click_expire_mins=40 * 1440),
    ]
    assert touch_retention(pixels) == Retention(3 * DAY, 40 * DAY)
    off = [pixel(post_view_expire_mins=None, post_click_expire_mins=0)]  # expiration off: the maxima
    assert touch_retention(off) == Retention(30 * DAY, 90 * DAY)


def test_an_impression_is_pruned_after_the_configured_view_retention_not_the_30_day_maximum() -> None:
    old = impression(timestamp=T0)
    state, _ = run([old, click(timestamp=T0 + DAY + 1, line_item_id=101)])  # default pixel: 1 day

    assert old.event_id not in [t.event_id for t in state.touches]
    kept, _ = run([old, click(timestamp=T0 + DAY, line_item_id=101)])
    assert old.event_id in [t.event_id for t in kept.touches]


def test_a_pixel_created_later_with_default_windows_still_finds_the_touches_it_can_credit() -> None:
    # No pixel at all when the click arrives; 13 days later a default pixel is created.
    touch = click(timestamp=T0)
    state, _ = run([touch, impression(timestamp=T0 + 13 * DAY, line_item_id=101)], config(pixels=[], line_items=[]))

    _, outputs = step(state, conversion(timestamp=T0 + 13 * DAY + 1), config())
    result = outcomes(outputs)[0]
    assert isinstance(result, AttributedConversion)
    assert result.touch_event_id == touch.event_id


# --- touches: caps per user ---------------------------------------------------------------------


def test_the_user_touch_cap_drops_the_oldest_impressions_before_any_click() -> None:
    clicks = [click(timestamp=T0 + i, line_item_id=500 + i) for i in range(3)]
    imps = [impression(timestamp=T0 + 10 + i, line_item_id=1000 + i, advertiser_id=10 + i) for i in range(10)]
    forgotten = Forgotten()
    state = EMPTY
    for t in (*clicks, *imps):
        state = add_touch(state, t, Limits(max_user_touches=5), forgotten=forgotten)

    assert [t.event_id for t in state.touches] == [t.event_id for t in (*clicks, *imps[-2:])]
    assert forgotten.touches == 8


def test_the_user_touch_cap_keeps_the_latest_clicks_when_clicks_alone_exceed_it() -> None:
    clicks = [click(timestamp=T0 + i, line_item_id=500 + i, advertiser_id=10 + i) for i in range(6)]
    state, _ = run([impression(timestamp=T0 + 100), *clicks], limits=Limits(max_user_touches=4))

    assert [t.event_id for t in state.touches] == [t.event_id for t in clicks[-4:]]


def test_touches_of_many_advertisers_stay_under_the_user_cap() -> None:
    events = [impression(timestamp=T0 + i, advertiser_id=1 + i, line_item_id=1 + i) for i in range(1000)]
    state, _ = run(events)

    assert len(state.touches) == LIMITS.max_user_touches == 128
    assert state.touches[-1].event_id == events[-1].event_id


# --- dedup ids ----------------------------------------------------------------------------------


def test_at_most_256_dedup_ids_are_kept_the_earliest_judged_forgotten_first() -> None:
    forgotten = Forgotten()
    state = EMPTY
    for i in range(300):
        state = record_conversion(state, f"c{i}", T0 + i, None, LIMITS, forgotten=forgotten)

    assert [e for e, _ in state.processed] == [f"c{i}" for i in range(44, 300)]
    assert forgotten.dedup_ids == 44


def test_a_dedup_id_counts_only_within_the_retention_of_the_conversions_timestamp() -> None:
    first = conversion(pixel_id=999, timestamp=T0)
    state, _ = run([first])
    same_id_later = conversion(pixel_id=999, event_id=first.event_id, timestamp=T0 + 7 * DAY + 1)

    assert step(state, conversion(pixel_id=999, event_id=first.event_id, timestamp=T0 + 7 * DAY), config())[1] == ()
    assert len(outcomes(step(state, same_id_later, config())[1])) == 1  # as if the id had been pruned


# --- repeat counters ----------------------------------------------------------------------------


def test_a_repeat_counter_is_pruned_once_the_repeat_retention_is_behind_the_horizon() -> None:
    state = record_conversion(EMPTY, "c1", T0, 5, LIMITS)
    kept = record_conversion(state, "c2", T0 + 90 * DAY - 1, None, LIMITS)
    pruned = record_conversion(state, "c2", T0 + 90 * DAY, None, LIMITS)

    assert kept.counted == ((5, T0),)
    assert pruned.counted == ()


def test_a_shorter_repeat_retention_makes_a_one_per_user_pixel_count_again_after_it() -> None:
    limits = Limits(repeat_retention_ms=DAY)
    events = [click(timestamp=T0), conversion(timestamp=T0 + 1), conversion(timestamp=T0 + DAY)]
    again = [*events, conversion(timestamp=T0 + DAY + 1)]

    _, outputs = run(again, limits=limits)
    assert [getattr(o, "reason", "attributed") for o in outcomes(outputs)] == [
        "attributed",
        "repeat_limited",
        "attributed",
    ]


def test_an_n_minute_repeat_rule_is_unaffected_by_the_repeat_retention() -> None:
    cfg = config(pixels=[pixel(min_minutes_per_conv=32_767, post_click_expire_mins=None)])
    events = [click(timestamp=T0), conversion(timestamp=T0 + 1), conversion(timestamp=T0 + 32_767 * MINUTE)]

    _, outputs = run(events, cfg)
    assert [getattr(o, "reason", "attributed") for o in outcomes(outputs)] == ["attributed", "repeat_limited"]


def test_at_most_128_pixels_keep_a_repeat_counter_the_oldest_dropped() -> None:
    forgotten = Forgotten()
    state = EMPTY
    for i in range(130):
        state = record_conversion(state, f"c{i}", T0 + i, 1000 + i, LIMITS, forgotten=forgotten)

    assert len(state.counted) == 128
    assert state.last_counted(1000) is None
    assert state.last_counted(1001) is None
    assert state.last_counted(1129) == T0 + 129
    assert forgotten.counters == 2


# --- expires_at ---------------------------------------------------------------------------------


def test_expires_at_is_the_latest_time_any_part_of_the_state_can_still_matter() -> None:
    cfg = config()  # retention 1 day for impressions, 14 for clicks
    touches = (impression(timestamp=T0 + 5 * DAY), click(timestamp=T0))
    state = UserState(touches=touches)
    assert expires_at(state, cfg) == T0 + 14 * DAY
    assert expires_at(UserState(processed=(("c", T0 + 10 * DAY),)), cfg) == T0 + 17 * DAY
    assert expires_at(UserState(counted=((1, T0),)), cfg) == T0 + 90 * DAY
    assert expires_at(UserState(watermark=T0), cfg) == T0  # nothing left: expired at once


def test_a_state_holding_a_conversion_never_expires() -> None:
    held = UserState(held=((conversion(timestamp=T0), 0),))

    assert expires_at(held, config()) is None
    assert latest_use(held, config().retention, LIMITS) < T0


# --- the largest state record -------------------------------------------------------------------

BIGGEST_INT = 9_223_372_036_854_775_807
LATEST = 4_102_444_800_000  # the schemas' largest timestamp


def widest_id(i: int) -> str:
    """128 characters (the schemas' maxLength), each a control character JSON escapes to 6 bytes."""
    return ("\x01" * 120 + f"{i:08d}")[:128]


def test_the_largest_state_the_schemas_allow_at_every_cap_encodes_under_the_documented_bound() -> None:
    horizon = LATEST - 10**9

    def widest_touch(i: int, timestamp: int) -> Touch:
        kind = "click" if i % 2 else "impression"
        return Touch(
            kind,
            widest_id(i),
            "u",
            timestamp,
            BIGGEST_INT - i,
            BIGGEST_INT - i,
            BIGGEST_INT,
            widest_id(i),
            BIGGEST_INT,
            32_767,
        )

    # Far more touches than the caps keep, at or before the horizon (one advertiser each) and after
    # it: the pruning the engine applies decides what stays.
    behind = [widest_touch(i, horizon - 1000 + i) for i in range(3 * LIMITS.max_user_touches)]
    ahead = [widest_touch(i, horizon + 1 + i) for i in range(2000)]
    touches = _prune_touches(tuple(behind + ahead), horizon, LIMITS, LONGEST_RETENTION, None)
    assert sum(1 for t in touches if t.timestamp <= horizon) == LIMITS.max_user_touches
    assert 0 < sum(1 for t in touches if t.timestamp > horizon) < 2000
    processed = tuple((widest_id(i), LATEST) for i in range(LIMITS.max_processed))
    counted = tuple((BIGGEST_INT - i, LATEST) for i in range(LIMITS.max_counters))
    orders = tuple((BIGGEST_INT - i, "\x01" * 36, LATEST) for i in range(LIMITS.max_orders))
    tied = tuple(("click", widest_id(i), LATEST) for i in range(MAX_TIED))
    state = UserState(touches, counted, processed, LATEST, (), orders, tied)
    raw = encode_state(state, -(2**62), 2**31 - 1)

    assert len(widest_id(0).encode()) == 128
    assert len(raw) > 0.8 * MAX_STATE_BYTES
    assert len(raw) <= MAX_STATE_BYTES == 740_000
    # what is left of a 1 MiB record holds the most held conversions a user may have, at their widest
    assert MAX_STATE_BYTES + 150 * 2_000 < 1_048_576


def test_the_widest_held_conversion_a_server_side_one_encodes_under_the_documented_size() -> None:
    widest = Conversion(widest_id(1), BIGGEST_INT, "u", LATEST, 1e15, "\x01" * 36, "\x01" * 30, widest_id(2))
    empty = len(encode_state(UserState(), -(2**62), 2**31 - 1))

    assert len(encode_state(UserState(held=((widest, 2**31 - 1),)), -(2**62), 2**31 - 1)) - empty < 2_000


def test_a_heavy_user_stays_under_the_bound_however_long_it_is_active() -> None:
    pixels = [pixel(id=p, min_minutes_per_conv=0, post_click_expire_mins=None) for p in range(1, 200)]
    cfg = config(pixels=pixels, line_items=[line_item(pixels=[link(id=p) for p in range(1, 200)])])
    events = []
    for i in range(3000):
        events.append(click(timestamp=T0 + i * MINUTE, line_item_id=100 + i % 300, advertiser_id=10))
        events.append(conversion(pixel_id=1 + i % 199, timestamp=T0 + i * MINUTE + 1))
    state, _ = run(events, cfg)

    assert len(state.processed) == 256
    assert len(state.touches) <= 128
    assert len(state.counted) <= 128
    assert len(encode_state(state)) < 60_000


def test_touches_running_ahead_of_the_horizon_never_evict_the_ones_a_pending_conversion_needs() -> None:
    limits = Limits(max_touches=2, max_user_touches=2, ahead_bytes=6 * 200)
    needed = impression(event_id="needed", timestamp=T0, advertiser_id=7, line_item_id=70)
    state = add_touch(EMPTY, needed, limits, horizon=T0)
    for i in range(10):  # a flood of later touches of the same advertiser, read before the conversions
        later = impression(event_id=f"later{i}", timestamp=T0 + (i + 1) * MINUTE, advertiser_id=7, line_item_id=100 + i)
        state = add_touch(state, later, limits, horizon=T0)
    ids = [t.event_id for t in state.touches]
    # the size ceiling on touches ahead (each under 200 bytes): the newest kept
    assert ids[0] == "needed"
    assert ids[-3:] == ["later7", "later8", "later9"]
    assert sum(touch_bytes(t) for t in state.touches[1:]) <= limits.ahead_bytes
    # A conversion between them sees the touches as replay would have at its time: the caps as of then.
    visible = [t.event_id for t in visible_touches(state.touches, T0 + 30_000, limits, LONGEST_RETENTION)]
    assert visible == ["needed"]
    visible = [t.event_id for t in visible_touches(state.touches, T0 + 10 * MINUTE, limits, LONGEST_RETENTION)]
    assert visible == ["later8", "later9"]
