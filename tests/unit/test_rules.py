"""The attribution rules of docs/design.md, one group per rule, in order, and their precedence."""

from __future__ import annotations

import pytest

from attribution.domain import (
    EMPTY,
    AttributedConversion,
    Config,
    Conversion,
    Event,
    PiggybackFire,
    PiggybackPixel,
    Pixel,
    UnattributedConversion,
    step,
)
from helpers import (
    ADVERTISER,
    DAY,
    LINE_ITEM,
    MINUTE,
    OTHER_ADVERTISER,
    PIXEL,
    T0,
    USER,
    click,
    config,
    conversion,
    fires,
    impression,
    judge_last,
    line_item,
    link,
    outcomes,
    pixel,
    reason_of,
    run,
)

PIGGYBACKS = ("https://a.example/p?x=1", "https://b.example/q", "http://c.example/r")


def js_pixel_with_piggybacks(**overrides: object) -> Pixel:
    return pixel(
        pixel_type="js",
        piggyback_pixels=tuple(PiggybackPixel("js", url) for url in PIGGYBACKS),
        **overrides,
    )


# --- rule 1: duplicates -----------------------------------------------------------------------


def test_a_redelivered_conversion_produces_no_outputs_at_all_not_even_piggybacks() -> None:
    cfg = config(pixels=[js_pixel_with_piggybacks()])
    conv = conversion(timestamp=T0 + MINUTE)
    state, first = run([click(timestamp=T0), conv], cfg)
    assert len(fires(first)) == 3
    assert isinstance(outcomes(first)[0], AttributedConversion)

    again, outputs = step(state, conv, cfg)

    assert outputs == ()
    assert again == state


def test_a_duplicate_is_silent_even_if_its_payload_differs_from_the_original() -> None:
    conv = conversion(timestamp=T0 + MINUTE)
    state, _ = run([click(timestamp=T0), conv])
    changed = conversion(event_id=conv.event_id, timestamp=T0 + 2 * MINUTE, value=99.0)

    again, outputs = step(state, changed, config())

    assert outputs == ()
    assert again == state


def test_a_duplicate_of_an_unattributed_conversion_stays_silent_after_its_pixel_is_configured() -> None:
    conv = conversion(pixel_id=42)
    state, first = run([conv], config())
    assert outcomes(first)[0].reason == "unknown_pixel"
    now_known = config(pixels=[pixel(), pixel(id=42)], line_items=[line_item(pixels=[link(), link(id=42)])])

    _, outputs = run([click(timestamp=T0 - 1), conv], now_known, state=state)

    assert outputs == []


def test_a_duplicate_does_not_count_towards_the_repeat_rule() -> None:
    cfg = config(pixels=[pixel(min_minutes_per_conv=0)])
    conv = conversion(timestamp=T0 + MINUTE)
    state, _ = run([click(timestamp=T0), conv], cfg)

    again, _ = step(state, conv, cfg)

    assert again.counted == state.counted == ((PIXEL, T0 + MINUTE),)


# --- rules 2 and 3: unknown and inactive pixels -----------------------------------------------


def test_a_conversion_of_an_unknown_pixel_is_unattributed_with_reason_unknown_pixel() -> None:
    conv = conversion(pixel_id=999, timestamp=T0 + MINUTE)
    _, outputs = run([click(timestamp=T0), conv])

    assert outputs == [UnattributedConversion(conv.event_id, 999, USER, T0 + MINUTE, "unknown_pixel")]


def test_an_unknown_pixel_conversion_is_remembered_so_its_redelivery_is_silent() -> None:
    conv = conversion(pixel_id=999)
    state, _ = run([conv])

    assert state.has_processed(conv.event_id)
    assert step(state, conv, config())[1] == ()


def test_a_conversion_of_an_inactive_pixel_is_unattributed_even_with_an_eligible_touch() -> None:
    cfg = config(pixels=[js_pixel_with_piggybacks(state="inactive")])
    conv = conversion(timestamp=T0 + MINUTE)

    _, outputs = run([click(timestamp=T0), conv], cfg)

    assert outputs == [UnattributedConversion(conv.event_id, PIXEL, USER, T0 + MINUTE, "inactive_pixel")]


def test_no_piggyback_fires_for_an_unknown_pixel_even_if_another_pixel_has_piggybacks() -> None:
    cfg = config(pixels=[js_pixel_with_piggybacks()])
    _, outputs = run([conversion(pixel_id=2)], cfg)

    assert fires(outputs) == []


# --- rule 4: piggyback fires ------------------------------------------------------------------


def _setup_for(outcome: str) -> tuple[Config, list[Event], Conversion]:
    """A config and events whose last conversion ends in `outcome` (with a 3-piggyback pixel)."""
    conv_ts = T0 + 10 * MINUTE
    conv = conversion(timestamp=conv_ts)
    cfg = config(pixels=[js_pixel_with_piggybacks()])
    if outcome == "pixel_paused":
        return config(pixels=[js_pixel_with_piggybacks()], line_items=[]), [click(timestamp=T0)], conv
    if outcome == "no_eligible_touch":
        return cfg, [click(timestamp=T0, advertiser_id=OTHER_ADVERTISER)], conv
    if outcome == "repeat_limited":
        return cfg, [click(timestamp=T0), conversion(timestamp=conv_ts - 1)], conv
    return cfg, [click(timestamp=T0)], conv


@pytest.mark.parametrize("outcome", ["pixel_paused", "no_eligible_touch", "repeat_limited", "attributed"])
def test_piggybacks_fire_in_list_order_whatever_the_outcome(outcome: str) -> None:
    cfg, before, conv = _setup_for(outcome)
    state, _ = run(before, cfg)

    _, outputs = step(state, conv, cfg)

    last = outcomes(outputs)[0]
    assert (last.reason if isinstance(last, UnattributedConversion) else "attributed") == outcome
    assert fires(outputs) == [
        PiggybackFire(
            fire_id=f"{conv.event_id}:{i}",
            conversion_id=conv.event_id,
            pixel_id=PIXEL,
            pixel_type="js",
            url=url,
            index=i,
            user_id=USER,
            conversion_timestamp=T0 + 10 * MINUTE,
        )
        for i, url in enumerate(PIGGYBACKS)
    ]


def test_an_img_pixel_fires_its_single_img_piggyback() -> None:
    cfg = config(pixels=[pixel(piggyback_pixels=["https://img.example/p.gif"])])
    conv = conversion(event_id="order-7")

    _, outputs = run([conv], cfg)

    assert [(f.fire_id, f.pixel_type, f.url, f.index) for f in fires(outputs)] == [
        ("order-7:0", "img", "https://img.example/p.gif", 0)
    ]


def test_a_pixel_without_piggybacks_fires_nothing_but_the_outcome() -> None:
    _, outputs = run([click(timestamp=T0), conversion(timestamp=T0 + 1)])

    assert fires(outputs) == []
    assert len(outputs) == 1


# --- rule 5: paused pixel ---------------------------------------------------------------------


def test_a_pixel_carried_by_no_line_item_is_paused_even_with_a_touch_of_its_advertiser() -> None:
    cfg = config(line_items=[line_item(pixels=[])])

    assert reason_of([click(timestamp=T0), conversion(timestamp=T0 + 1)], cfg) == "pixel_paused"


def test_a_pixel_carried_only_by_an_inactive_line_item_is_paused() -> None:
    cfg = config(line_items=[line_item(state="inactive")])

    assert reason_of([click(timestamp=T0), conversion(timestamp=T0 + 1)], cfg) == "pixel_paused"


def test_a_pixel_carried_only_through_an_inactive_link_is_paused() -> None:
    cfg = config(line_items=[line_item(pixels=[link(state="inactive")])])

    assert reason_of([click(timestamp=T0), conversion(timestamp=T0 + 1)], cfg) == "pixel_paused"


def test_a_pixel_carried_by_a_line_item_of_another_advertiser_is_not_paused() -> None:
    cfg = config(line_items=[line_item(id=200, advertiser_id=OTHER_ADVERTISER)])

    assert cfg.status(PIXEL) == "active"
    assert reason_of([conversion()], cfg) == "no_eligible_touch"


def test_a_paused_conversion_takes_precedence_over_a_touch_and_does_not_use_up_the_repeat_rule() -> None:
    paused = config(pixels=[pixel(min_minutes_per_conv=None)], line_items=[])
    state, outputs = run([click(timestamp=T0), conversion(timestamp=T0 + 1)], paused)
    assert outcomes(outputs)[0].reason == "pixel_paused"

    _, later = run([conversion(timestamp=T0 + 2)], config(), state=state)

    assert isinstance(outcomes(later)[0], AttributedConversion)


# --- rule 6: eligibility ----------------------------------------------------------------------


def test_a_touch_of_another_advertiser_on_a_line_item_carrying_the_pixel_is_not_eligible() -> None:
    events = [click(timestamp=T0, advertiser_id=OTHER_ADVERTISER), conversion(timestamp=T0 + 1)]

    assert reason_of(events) == "no_eligible_touch"


def test_a_touch_on_a_line_item_that_does_not_carry_the_pixel_is_not_eligible() -> None:
    cfg = config(line_items=[line_item(), line_item(id=101, pixels=[])])
    events = [click(timestamp=T0, line_item_id=101), conversion(timestamp=T0 + 1)]

    assert reason_of(events, cfg) == "no_eligible_touch"


def test_a_touch_on_an_unknown_line_item_is_not_eligible() -> None:
    events = [click(timestamp=T0, line_item_id=555), conversion(timestamp=T0 + 1)]

    assert reason_of(events) == "no_eligible_touch"


def test_a_touch_on_an_inactive_line_item_is_not_eligible_while_another_keeps_the_pixel_active() -> None:
    cfg = config(line_items=[line_item(), line_item(id=101, state="inactive")])
    events = [click(timestamp=T0, line_item_id=101), conversion(timestamp=T0 + 1)]

    assert cfg.status(PIXEL) == "active"
    assert reason_of(events, cfg) == "no_eligible_touch"


def test_a_touch_on_a_line_item_whose_link_to_the_pixel_is_inactive_is_not_eligible() -> None:
    cfg = config(line_items=[line_item(), line_item(id=101, pixels=[link(state="inactive")])])
    events = [click(timestamp=T0, line_item_id=101), conversion(timestamp=T0 + 1)]

    assert reason_of(events, cfg) == "no_eligible_touch"


def test_an_ineligible_newer_click_does_not_hide_an_eligible_older_one() -> None:
    cfg = config(line_items=[line_item(), line_item(id=101, state="inactive")])
    good = click(timestamp=T0)
    events = [good, click(timestamp=T0 + 5, line_item_id=101), conversion(timestamp=T0 + 10)]

    assert judge_last(events, cfg).touch_event_id == good.event_id


@pytest.mark.parametrize("kind", ["impression", "click"])
def test_a_touch_after_the_conversion_is_not_eligible(kind: str) -> None:
    touch = (impression if kind == "impression" else click)(timestamp=T0 + 1)

    assert reason_of([touch, conversion(timestamp=T0)]) == "no_eligible_touch"


@pytest.mark.parametrize("kind", ["impression", "click"])
def test_a_touch_at_the_same_millisecond_as_the_conversion_is_eligible(kind: str) -> None:
    touch = (impression if kind == "impression" else click)(timestamp=T0)

    result = judge_last([touch, conversion(timestamp=T0)])

    assert result.touch_event_id == touch.event_id
    assert result.latency_ms == 0


# (kind, pixel overrides, window in ms)
WINDOWS = [
    pytest.param("impression", {}, 1 * DAY, id="default-post-view-is-1-day"),
    pytest.param("click", {}, 14 * DAY, id="default-post-click-is-14-days"),
    pytest.param("impression", {"post_view_expire_mins": 60}, 60 * MINUTE, id="post-view-60-min"),
    pytest.param("click", {"post_click_expire_mins": 1}, 1 * MINUTE, id="post-click-1-min"),
    pytest.param("impression", {"post_view_expire_mins": None}, 30 * DAY, id="post-view-null-is-30-days"),
    pytest.param("impression", {"post_view_expire_mins": 0}, 30 * DAY, id="post-view-0-is-30-days"),
    pytest.param("click", {"post_click_expire_mins": None}, 90 * DAY, id="post-click-null-is-90-days"),
    pytest.param("click", {"post_click_expire_mins": 0}, 90 * DAY, id="post-click-0-is-90-days"),
    pytest.param("impression", {"post_view_expire_mins": 43200}, 30 * DAY, id="post-view-max-43200"),
    pytest.param("click", {"post_click_expire_mins": 129600}, 90 * DAY, id="post-click-max-129600"),
]


@pytest.mark.parametrize(("kind", "overrides", "window"), WINDOWS)
def test_a_touch_exactly_one_window_old_is_eligible(kind: str, overrides: dict[str, object], window: int) -> None:
    cfg = config(pixels=[pixel(**overrides)])
    touch = (impression if kind == "impression" else click)(timestamp=T0)

    assert judge_last([touch, conversion(timestamp=T0 + window)], cfg).touch_event_id == touch.event_id


@pytest.mark.parametrize(("kind", "overrides", "window"), WINDOWS)
def test_a_touch_one_ms_outside_the_window_is_not_eligible(
    kind: str, overrides: dict[str, object], window: int
) -> None:
    cfg = config(pixels=[pixel(**overrides)])
    touch = (impression if kind == "impression" else click)(timestamp=T0)

    assert reason_of([touch, conversion(timestamp=T0 + window + 1)], cfg) == "no_eligible_touch"


def test_the_click_window_does_not_apply_to_impressions_nor_the_view_window_to_clicks() -> None:
    cfg = config(pixels=[pixel(post_view_expire_mins=10, post_click_expire_mins=100)])
    old_click = click(timestamp=T0)
    # 50 minutes: outside the 10-minute view window, inside the 100-minute click window.
    assert judge_last([old_click, conversion(timestamp=T0 + 50 * MINUTE)], cfg).touch_event_id == old_click.event_id
    assert reason_of([impression(timestamp=T0), conversion(timestamp=T0 + 50 * MINUTE)], cfg) == "no_eligible_touch"


# --- rule 6: trigger types --------------------------------------------------------------------


def test_a_click_pixel_ignores_impressions() -> None:
    cfg = config(pixels=[pixel(trigger_type="click")])

    assert reason_of([impression(timestamp=T0), conversion(timestamp=T0 + 1)], cfg) == "no_eligible_touch"


def test_a_click_pixel_credits_the_latest_eligible_click_over_a_newer_impression() -> None:
    cfg = config(pixels=[pixel(trigger_type="click")])
    older, latest = click(timestamp=T0), click(timestamp=T0 + 10)
    events = [older, latest, impression(timestamp=T0 + 20), conversion(timestamp=T0 + 30)]

    result = judge_last(events, cfg)

    assert (result.touch_event_id, result.attribution) == (latest.event_id, "post_click")


def test_a_view_pixel_ignores_clicks() -> None:
    cfg = config(pixels=[pixel(trigger_type="view")])

    assert reason_of([click(timestamp=T0), conversion(timestamp=T0 + 1)], cfg) == "no_eligible_touch"


def test_a_view_pixel_credits_the_latest_eligible_impression_even_with_a_newer_click() -> None:
    cfg = config(pixels=[pixel(trigger_type="view")])
    older, latest = impression(timestamp=T0), impression(timestamp=T0 + 10)
    events = [older, latest, click(timestamp=T0 + 20), conversion(timestamp=T0 + 30)]

    result = judge_last(events, cfg)

    assert (result.touch_event_id, result.attribution) == (latest.event_id, "post_view")


def test_a_hybrid_pixel_prefers_an_older_click_over_a_newer_impression() -> None:
    old_click = click(timestamp=T0)
    events = [old_click, impression(timestamp=T0 + 10 * MINUTE), conversion(timestamp=T0 + 20 * MINUTE)]

    result = judge_last(events)

    assert (result.touch_event_id, result.attribution) == (old_click.event_id, "post_click")


def test_a_hybrid_pixel_falls_back_to_the_latest_impression_without_an_eligible_click() -> None:
    latest = impression(timestamp=T0 + 10)
    events = [
        impression(timestamp=T0),
        latest,
        click(timestamp=T0 + 20, advertiser_id=OTHER_ADVERTISER),
        conversion(timestamp=T0 + 30),
    ]

    result = judge_last(events)

    assert (result.touch_event_id, result.attribution) == (latest.event_id, "post_view")


def test_a_hybrid_pixel_falls_back_to_an_impression_when_its_click_is_outside_the_click_window() -> None:
    cfg = config(pixels=[pixel(post_click_expire_mins=60, post_view_expire_mins=1440)])
    imp = impression(timestamp=T0 + 2 * 60 * MINUTE)
    events = [click(timestamp=T0), imp, conversion(timestamp=T0 + 3 * 60 * MINUTE)]

    assert judge_last(events, cfg).touch_event_id == imp.event_id


@pytest.mark.parametrize("kind", ["impression", "click"])
def test_at_equal_timestamps_the_touch_processed_later_wins(kind: str) -> None:
    make = impression if kind == "impression" else click
    first, second = make(timestamp=T0), make(timestamp=T0, line_item_id=LINE_ITEM, creative_id=8)

    assert judge_last([first, second, conversion(timestamp=T0 + 1)]).touch_event_id == second.event_id
    assert judge_last([second, first, conversion(timestamp=T0 + 1)]).touch_event_id == first.event_id


def test_a_touch_processed_later_with_an_older_timestamp_does_not_beat_a_newer_one() -> None:
    newer, older = click(timestamp=T0 + 10), click(timestamp=T0)

    assert judge_last([newer, older, conversion(timestamp=T0 + 20)]).touch_event_id == newer.event_id


# --- imp_type: only impressions won in a real auction are touches -----------------------------


@pytest.mark.parametrize("imp_type", [1, 2, 3, 4, 6, 8, 12, 32767])
def test_an_impression_not_won_in_a_real_auction_is_never_a_touch(imp_type: int) -> None:
    imp = impression(timestamp=T0, imp_type=imp_type)

    state, outputs = step(EMPTY, imp, config())

    assert (state, outputs) == (EMPTY, ())
    assert reason_of([imp, conversion(timestamp=T0 + 1)]) == "no_eligible_touch"


@pytest.mark.parametrize("imp_type", [5, 7, 9, 10, 11])
def test_an_impression_won_in_a_real_auction_is_a_touch(imp_type: int) -> None:
    imp = impression(timestamp=T0, imp_type=imp_type)

    assert judge_last([imp, conversion(timestamp=T0 + 1)]).touch_event_id == imp.event_id


def test_an_impression_without_imp_type_is_rtb_and_a_touch() -> None:
    imp = impression(timestamp=T0)

    assert imp.imp_type == 7
    assert judge_last([imp, conversion(timestamp=T0 + 1)]).touch_event_id == imp.event_id


def test_a_non_touch_impression_does_not_hide_an_older_real_impression() -> None:
    real = impression(timestamp=T0)
    events = [real, impression(timestamp=T0 + 5, imp_type=4), conversion(timestamp=T0 + 10)]

    assert judge_last(events).touch_event_id == real.event_id


# --- rule 7: repeat rule ----------------------------------------------------------------------


def test_with_a_null_repeat_rule_only_the_first_attributed_conversion_counts() -> None:
    events = [
        click(timestamp=T0),
        conversion(timestamp=T0 + 1),
        click(timestamp=T0 + 60 * DAY),
        conversion(timestamp=T0 + 60 * DAY + 1),
    ]
    _, outputs = run(events)

    assert [getattr(o, "reason", "attributed") for o in outcomes(outputs)] == ["attributed", "repeat_limited"]


def test_with_a_null_repeat_rule_the_first_counted_conversion_is_remembered_for_the_90_day_repeat_retention() -> None:
    state, _ = run([click(timestamp=T0), conversion(timestamp=T0 + 1)])
    edge = T0 + 1 + 90 * DAY  # the repeat retention after the counted conversion

    _, outputs = run([click(timestamp=edge - 2), conversion(timestamp=edge - 1)], state=state)
    assert outcomes(outputs)[0].reason == "repeat_limited"
    _, outputs = run([click(timestamp=edge - 1), conversion(timestamp=edge)], state=state)
    assert isinstance(outcomes(outputs)[0], AttributedConversion)


def test_with_a_zero_repeat_rule_every_conversion_counts() -> None:
    cfg = config(pixels=[pixel(min_minutes_per_conv=0)])
    events = [click(timestamp=T0), *(conversion(timestamp=T0 + i) for i in range(1, 6))]

    _, outputs = run(events, cfg)

    assert all(isinstance(o, AttributedConversion) for o in outcomes(outputs))
    assert len(outcomes(outputs)) == 5


def test_with_an_n_minute_repeat_rule_a_conversion_exactly_n_minutes_later_counts() -> None:
    cfg = config(pixels=[pixel(min_minutes_per_conv=30)])
    events = [click(timestamp=T0), conversion(timestamp=T0 + 1), conversion(timestamp=T0 + 1 + 30 * MINUTE)]

    assert reason_of(events, cfg) == "attributed:post_click"


def test_with_an_n_minute_repeat_rule_a_conversion_one_ms_short_of_n_minutes_is_repeat_limited() -> None:
    cfg = config(pixels=[pixel(min_minutes_per_conv=30)])
    events = [click(timestamp=T0), conversion(timestamp=T0 + 1), conversion(timestamp=T0 + 30 * MINUTE)]

    assert reason_of(events, cfg) == "repeat_limited"


def test_a_repeat_limited_conversion_does_not_restart_the_n_minute_clock() -> None:
    cfg = config(pixels=[pixel(min_minutes_per_conv=30)])
    events = [
        click(timestamp=T0),
        conversion(timestamp=T0 + MINUTE),  # counted
        conversion(timestamp=T0 + 20 * MINUTE),  # limited
        conversion(timestamp=T0 + 31 * MINUTE),  # 30 min after the counted one
    ]
    _, outputs = run(events, cfg)

    assert [getattr(o, "reason", "attributed") for o in outcomes(outputs)] == [
        "attributed",
        "repeat_limited",
        "attributed",
    ]


def test_an_unattributed_conversion_does_not_start_the_n_minute_clock() -> None:
    cfg = config(pixels=[pixel(min_minutes_per_conv=30)])
    events = [
        conversion(timestamp=T0),  # no touch yet: no_eligible_touch
        click(timestamp=T0 + MINUTE),
        conversion(timestamp=T0 + 2 * MINUTE),
    ]
    _, outputs = run(events, cfg)

    assert [getattr(o, "reason", "attributed") for o in outcomes(outputs)] == ["no_eligible_touch", "attributed"]


def test_an_unattributed_conversion_does_not_use_up_a_null_repeat_rule() -> None:
    events = [conversion(timestamp=T0), click(timestamp=T0 + 1), conversion(timestamp=T0 + 2)]

    assert reason_of(events) == "attributed:post_click"


def test_the_repeat_rule_is_per_pixel() -> None:
    cfg = config(pixels=[pixel(), pixel(id=2)], line_items=[line_item(pixels=[link(), link(id=2)])])
    events = [click(timestamp=T0), conversion(timestamp=T0 + 1), conversion(pixel_id=2, timestamp=T0 + 2)]

    _, outputs = run(events, cfg)

    assert [type(o) for o in outcomes(outputs)] == [AttributedConversion, AttributedConversion]


def test_the_repeat_rule_is_per_user() -> None:
    cfg = config()
    _, first = run([click(timestamp=T0), conversion(timestamp=T0 + 1)], cfg)
    _, second = run([click(timestamp=T0, user_id="u2"), conversion(timestamp=T0 + 2, user_id="u2")], cfg)

    assert isinstance(outcomes(first)[0], AttributedConversion)
    assert isinstance(outcomes(second)[0], AttributedConversion)


def test_no_eligible_touch_takes_precedence_over_repeat_limited() -> None:
    events = [click(timestamp=T0), conversion(timestamp=T0 + 1), conversion(timestamp=T0 + 20 * DAY)]

    assert reason_of(events) == "no_eligible_touch"


# --- rule 8 and the attributed record ---------------------------------------------------------


def test_an_attributed_conversion_carries_every_field_of_the_contract() -> None:
    cfg = config(
        pixels=[pixel(event_category="purchase", post_click_value=3.5)],
        line_items=[line_item(pixels=[link(post_click_revenue=0.25, post_view_revenue=0.05)])],
    )
    touch = click(event_id="clk-A", timestamp=T0, creative_id=77, auction_id="auc-9", campaign_id=5)
    conv = conversion(event_id="conv-A", timestamp=T0 + 90_000, order_id="order-1", other="ext")

    assert judge_last([touch, conv], cfg) == AttributedConversion(
        conversion_id="conv-A",
        pixel_id=PIXEL,
        advertiser_id=ADVERTISER,
        user_id=USER,
        conversion_timestamp=T0 + 90_000,
        attribution="post_click",
        touch_event_id="clk-A",
        touch_timestamp=T0,
        auction_id="auc-9",
        line_item_id=LINE_ITEM,
        creative_id=77,
        campaign_id=5,
        latency_ms=90_000,
        value=3.5,
        booked_revenue=0.25,
        order_id="order-1",
        other="ext",
        event_category="purchase",
    )


def test_an_attributed_conversion_without_campaign_or_category_has_nulls() -> None:
    result = judge_last([impression(timestamp=T0), conversion(timestamp=T0 + 1)])

    assert (result.campaign_id, result.event_category, result.order_id, result.other) == (None, None, None, None)
    assert (result.value, result.booked_revenue) == (None, None)


@pytest.mark.parametrize(
    ("kind", "event_value", "expected"),
    [
        ("click", 12.5, 12.5),
        ("impression", 12.5, 12.5),
        ("click", None, 2.0),  # the pixel's post_click_value
        ("impression", None, 1.0),  # the pixel's post_view_value
        ("click", 0.0, 0.0),  # an event value of 0 is a value, not "missing"
        ("impression", 0, 0),
    ],
)
def test_the_value_is_the_events_else_the_pixels_by_attribution(
    kind: str, event_value: float | None, expected: float
) -> None:
    cfg = config(pixels=[pixel(post_click_value=2.0, post_view_value=1.0)])
    touch = (impression if kind == "impression" else click)(timestamp=T0)

    result = judge_last([touch, conversion(timestamp=T0 + 1, value=event_value)], cfg)

    assert result.value == expected
    assert type(result.value) is type(expected)


def test_the_value_is_null_when_neither_event_nor_pixel_has_one_for_that_attribution() -> None:
    cfg = config(pixels=[pixel(post_click_value=2.0)])

    assert judge_last([impression(timestamp=T0), conversion(timestamp=T0 + 1)], cfg).value is None


def test_a_pixel_value_of_zero_is_kept_as_zero() -> None:
    cfg = config(pixels=[pixel(post_view_value=0.0)])

    assert judge_last([impression(timestamp=T0), conversion(timestamp=T0 + 1)], cfg).value == 0.0


@pytest.mark.parametrize(("kind", "expected"), [("click", 0.4), ("impression", 0.1)])
def test_booked_revenue_comes_from_the_link_of_the_credited_line_item_by_attribution(
    kind: str, expected: float
) -> None:
    cfg = config(
        line_items=[
            line_item(pixels=[link(post_click_revenue=9.0, post_view_revenue=9.0)]),
            line_item(id=101, pixels=[link(post_click_revenue=0.4, post_view_revenue=0.1)]),
        ]
    )
    touch = (impression if kind == "impression" else click)(timestamp=T0, line_item_id=101)

    result = judge_last([touch, conversion(timestamp=T0 + 1)], cfg)

    assert (result.line_item_id, result.booked_revenue) == (101, expected)


def test_booked_revenue_is_null_when_the_link_has_none_for_that_attribution() -> None:
    cfg = config(line_items=[line_item(pixels=[link(post_click_revenue=0.4)])])

    assert judge_last([impression(timestamp=T0), conversion(timestamp=T0 + 1)], cfg).booked_revenue is None


def test_the_advertiser_of_an_attributed_conversion_is_the_pixels() -> None:
    result = judge_last([click(timestamp=T0), conversion(timestamp=T0 + 1)])

    assert result.advertiser_id == ADVERTISER


def test_a_conversion_of_another_user_sees_none_of_this_users_touches() -> None:
    state, _ = run([click(timestamp=T0)])

    _, outputs = step(EMPTY, conversion(user_id="u2", timestamp=T0 + 1), config())

    assert state.touches
    assert outputs[-1] == UnattributedConversion(outputs[-1].conversion_id, PIXEL, "u2", T0 + 1, "no_eligible_touch")


def test_an_unattributed_conversion_carries_every_field_of_the_contract() -> None:
    conv = conversion(event_id="c-9", timestamp=T0 + 5, value=3.0)

    assert judge_last([conv]) == UnattributedConversion("c-9", PIXEL, USER, T0 + 5, "no_eligible_touch")


def test_a_touch_only_step_emits_nothing() -> None:
    state, outputs = step(EMPTY, click(timestamp=T0), config())

    assert outputs == ()
    assert len(state.touches) == 1
