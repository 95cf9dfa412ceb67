"""Server-side conversions (only the token's auction counts) and the order-id rule, in the engine."""

from __future__ import annotations

from attribution.contract.state_codec import decode_state, encode_state
from attribution.domain import EMPTY, AttributedConversion, Limits, UnattributedConversion, hold, step
from helpers import (
    DAY,
    MINUTE,
    OTHER_ADVERTISER,
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

DEDUPE = config(pixels=[pixel(dedupe_order_id=True, min_minutes_per_conv=0)])


# --- server-side conversions ------------------------------------------------------------------


def test_a_server_side_conversion_is_credited_to_the_touch_of_its_auction_only() -> None:
    mine = impression(auction_id="A", timestamp=T0)
    later = impression(auction_id="B", timestamp=T0 + MINUTE)
    outcome = judge_last([mine, later, conversion(auction_id="A", timestamp=T0 + 2 * MINUTE)])

    assert isinstance(outcome, AttributedConversion)
    assert outcome.touch_event_id == mine.event_id
    assert outcome.auction_id == "A"
    assert outcome.source == "server"


def test_a_click_of_another_auction_does_not_win_over_the_tokens_impression_under_hybrid() -> None:
    events = [
        impression(auction_id="A"),
        click(auction_id="B", timestamp=T0 + 1),
        conversion(auction_id="A", timestamp=T0 + 2),
    ]

    assert reason_of(events) == "attributed:post_view"


def test_a_server_side_conversion_whose_auction_has_no_touch_is_no_eligible_touch() -> None:
    outcome = judge_last([click(auction_id="B"), conversion(auction_id="A", timestamp=T0 + 1)])

    assert isinstance(outcome, UnattributedConversion)
    assert outcome.reason == "no_eligible_touch"
    assert outcome.source == "server"


def test_the_rest_of_the_touch_rule_still_applies_to_the_tokens_auction() -> None:
    other_advertiser = impression(auction_id="A", advertiser_id=OTHER_ADVERTISER)
    too_old = impression(auction_id="A", timestamp=T0)
    assert reason_of([other_advertiser, conversion(auction_id="A", timestamp=T0 + 1)]) == "no_eligible_touch"
    assert reason_of([too_old, conversion(auction_id="A", timestamp=T0 + DAY + 1)]) == "no_eligible_touch"
    assert reason_of([too_old, conversion(auction_id="A", timestamp=T0 + DAY)]) == "attributed:post_view"


def test_a_token_replayed_with_another_pixel_counts_only_that_auctions_touches_for_it() -> None:
    cfg = config(pixels=[pixel(), pixel(id=2)], line_items=[line_item(pixels=[link(), link(id=2)])])
    touch = click(auction_id="A")
    other = click(auction_id="B", timestamp=T0 + 1)
    _, out = run([touch, other, conversion(pixel_id=2, auction_id="A", timestamp=T0 + 2)], cfg)

    (outcome,) = outcomes(out)
    assert isinstance(outcome, AttributedConversion)
    assert (outcome.pixel_id, outcome.touch_event_id, outcome.source) == (2, touch.event_id, "server")


def test_the_repeat_rule_counts_server_side_and_pixel_conversions_together_per_pixel_and_user() -> None:
    events = [click(auction_id="A"), conversion(timestamp=T0 + 1), conversion(auction_id="A", timestamp=T0 + 2)]

    assert reason_of(events) == "repeat_limited"


def test_pixel_conversions_carry_source_pixel() -> None:
    assert judge_last([click(), conversion(timestamp=T0 + 1)]).source == "pixel"
    assert judge_last([conversion(pixel_id=99)]).source == "pixel"


def test_a_held_server_side_conversion_keeps_its_auction_through_the_state_codec() -> None:
    state = hold(EMPTY, conversion(auction_id="A", order_id="o"), 3)

    assert decode_state(USER, encode_state(state)) == state


# --- order-id deduplication -------------------------------------------------------------------


def test_a_repeated_order_id_of_the_same_user_and_pixel_is_duplicate_order_id() -> None:
    first = conversion(order_id="O-1", timestamp=T0 + 1)
    again = conversion(order_id="O-1", timestamp=T0 + 2)
    _, out = run([click(), first, again], DEDUPE)

    assert [(o.conversion_id, getattr(o, "reason", "attributed")) for o in outcomes(out)] == [
        (first.event_id, "attributed"),
        (again.event_id, "duplicate_order_id"),
    ]


def test_order_ids_are_not_deduplicated_unless_the_pixel_asks() -> None:
    events = [click(), conversion(order_id="O-1", timestamp=T0 + 1), conversion(order_id="O-1", timestamp=T0 + 2)]

    assert reason_of(events, config(pixels=[pixel(min_minutes_per_conv=0)])) == "attributed:post_click"


def test_a_conversion_without_order_id_is_never_a_duplicate_by_order() -> None:
    events = [click(), conversion(timestamp=T0 + 1), conversion(timestamp=T0 + 2)]

    assert reason_of(events, DEDUPE) == "attributed:post_click"


def test_another_order_id_another_user_or_another_pixel_is_not_a_duplicate() -> None:
    cfg = config(
        pixels=[pixel(dedupe_order_id=True, min_minutes_per_conv=0), pixel(id=2, dedupe_order_id=True)],
        line_items=[line_item(pixels=[link(), link(id=2)])],
    )
    base = [click(), conversion(order_id="O-1", timestamp=T0 + 1)]
    assert reason_of([*base, conversion(order_id="O-2", timestamp=T0 + 2)], cfg) == "attributed:post_click"
    assert reason_of([*base, conversion(pixel_id=2, order_id="O-1", timestamp=T0 + 2)], cfg) == "attributed:post_click"
    # the engine keeps state per user: another user's state has never seen the order id
    other = [click(user_id="u2"), conversion(user_id="u2", order_id="O-1", timestamp=T0 + 2)]
    state, _ = run(base, cfg)
    assert state.orders == ((1, "O-1", T0 + 1),)
    assert reason_of(other, cfg) == "attributed:post_click"


def test_the_order_id_rule_runs_after_pixel_paused_and_its_piggybacks_still_fire() -> None:
    cfg = config(pixels=[pixel(dedupe_order_id=True, piggyback_pixels=["https://pb.example/x"])])
    _, out = run([click(), conversion(order_id="O", timestamp=T0 + 1), conversion(order_id="O", timestamp=T0 + 2)], cfg)
    assert [getattr(o, "reason", "attributed") for o in outcomes(out)] == ["attributed", "duplicate_order_id"]
    assert len(fires(out)) == 2  # the pixel did load, twice

    paused = config(pixels=[pixel(dedupe_order_id=True)], line_items=[])
    _, out = run([conversion(order_id="O", timestamp=T0 + 1), conversion(order_id="O", timestamp=T0 + 2)], paused)
    assert [o.reason for o in outcomes(out)] == ["pixel_paused", "pixel_paused"]  # type: ignore[union-attr]


def test_an_order_id_is_remembered_from_the_touch_rule_on_whatever_the_outcome() -> None:
    # no_eligible_touch (rule 6) and repeat_limited (rule 7) remember the order id too
    assert (
        reason_of(
            [
                conversion(order_id="O", timestamp=T0),
                click(timestamp=T0 + 1),
                conversion(order_id="O", timestamp=T0 + 2),
            ],
            DEDUPE,
        )
        == "duplicate_order_id"
    )
    once = config(pixels=[pixel(dedupe_order_id=True, min_minutes_per_conv=None)])
    events = [
        click(),
        conversion(order_id="X", timestamp=T0 + 1),
        conversion(order_id="O", timestamp=T0 + 2),
        conversion(order_id="O", timestamp=T0 + 3),
    ]
    _, out = run(events, once)
    assert [getattr(o, "reason", "attributed") for o in outcomes(out)] == [
        "attributed",
        "repeat_limited",
        "duplicate_order_id",
    ]


def test_an_order_id_of_a_conversion_stopped_before_the_touch_rule_is_not_remembered() -> None:
    cfg_paused = config(pixels=[pixel(dedupe_order_id=True)], line_items=[])
    state, _ = run([conversion(order_id="O", timestamp=T0)], cfg_paused)
    _, out = run([click(timestamp=T0 + 1), conversion(order_id="O", timestamp=T0 + 2)], DEDUPE, state=state)

    assert isinstance(outcomes(out)[0], AttributedConversion)


def test_an_order_id_counts_as_a_duplicate_within_the_dedup_retention_only() -> None:
    limits = Limits(dedup_retention_ms=DAY)
    first = [click(timestamp=T0), conversion(order_id="O", timestamp=T0)]
    at_edge = conversion(order_id="O", timestamp=T0 + DAY)
    past = conversion(order_id="O", timestamp=T0 + DAY + 1)

    assert reason_of([*first, at_edge], DEDUPE, limits) == "duplicate_order_id"
    assert reason_of([*first, past], DEDUPE, limits) == "attributed:post_click"


def test_a_duplicate_by_order_does_not_extend_the_retention_of_the_first() -> None:
    limits = Limits(dedup_retention_ms=DAY)
    events = [
        click(timestamp=T0),
        conversion(order_id="O", timestamp=T0),
        conversion(order_id="O", timestamp=T0 + DAY - 1),  # duplicate
        click(timestamp=T0 + DAY + 1),
        conversion(order_id="O", timestamp=T0 + DAY + 1),  # more than a day after the first
    ]
    _, out = run(events, DEDUPE, limits)

    assert [getattr(o, "reason", "attributed") for o in outcomes(out)] == [
        "attributed",
        "duplicate_order_id",
        "attributed",
    ]


def test_remembered_order_ids_are_capped_per_user_the_earliest_forgotten_first() -> None:
    limits = Limits(max_orders=3)
    events = [click()] + [conversion(order_id=f"O{i}", timestamp=T0 + 1 + i) for i in range(5)]
    state, _ = run(events, DEDUPE, limits)

    assert [o for _, o, _ in state.orders] == ["O2", "O3", "O4"]
    assert reason_of([*events, conversion(order_id="O0", timestamp=T0 + 10)], DEDUPE, limits) == "attributed:post_click"
    assert reason_of([*events, conversion(order_id="O4", timestamp=T0 + 10)], DEDUPE, limits) == "duplicate_order_id"


def test_remembered_order_ids_survive_the_state_codec() -> None:
    state, _ = run([click(), conversion(order_id="O-1", timestamp=T0 + 1)], DEDUPE)

    assert state.orders == ((1, "O-1", T0 + 1),)
    assert decode_state(USER, encode_state(state)) == state


def test_a_redelivered_conversion_is_a_rule_one_duplicate_not_an_order_duplicate() -> None:
    conv = conversion(order_id="O", timestamp=T0 + 1)
    state, _ = step(EMPTY, click(), DEDUPE)
    state, first = step(state, conv, DEDUPE)
    state, again = step(state, conv, DEDUPE)

    assert isinstance(first[0], AttributedConversion)
    assert again == ()


def test_a_version_2_state_with_a_held_conversion_is_still_read_and_indexed() -> None:
    import orjson

    from attribution.contract.state_codec import VERSION, has_held, read_index
    from attribution.domain import Conversion, Touch, UserState

    touch = [1, "k1", T0, 10, 100, 7, "auc", None, 7]
    v2 = orjson.dumps([2, T0 + DAY, 3, T0, [touch], [[1, T0]], [["c0", T0]], [["c1", 1, T0, 2.5, "O", None, 3]]])

    assert VERSION == 4
    assert read_index(v2) == (T0 + DAY, 3)
    assert has_held(v2)
    assert decode_state(USER, v2) == UserState(
        touches=(Touch("click", "k1", USER, T0, 10, 100, 7, "auc", None, 7),),
        counted=((1, T0),),
        processed=(("c0", T0),),
        watermark=T0,
        held=((Conversion("c1", 1, USER, T0, 2.5, "O", None), 3),),
    )
    rewritten = encode_state(decode_state(USER, v2), T0 + DAY, 3)
    assert rewritten.startswith(b"[4,")
    assert read_index(rewritten) == (T0 + DAY, 3)
    assert has_held(rewritten)
