"""Bounded per-user state (docs/design.md, Bounded state): pruning by age and by cap, dedup retention, idempotence."""

from __future__ import annotations

from attribution.domain import EMPTY, AttributedConversion, Limits, UserState, step
from attribution.domain.state import DAY_MS, MAX_TIED, add_touch, record_conversion
from helpers import (
    DAY,
    LINE_ITEM,
    MINUTE,
    OTHER_ADVERTISER,
    T0,
    click,
    config,
    conversion,
    impression,
    judge_last,
    line_item,
    link,
    outcomes,
    pixel,
    run,
)

LIMITS = Limits()
#: A pixel with expiration off: touches are kept for the longest windows, 30 and 90 days.
LONGEST = config(pixels=[pixel(post_view_expire_mins=None, post_click_expire_mins=None)])


def ids(state: UserState) -> list[str]:
    return [t.event_id for t in state.touches]


# --- pruning by age ---------------------------------------------------------------------------


def test_an_impression_older_than_30_days_before_the_watermark_is_pruned() -> None:
    old = impression(timestamp=T0)
    state, _ = run([old, click(timestamp=T0 + 30 * DAY + 1, line_item_id=101)], LONGEST)

    assert old.event_id not in ids(state)


def test_an_impression_exactly_30_days_before_the_watermark_is_kept() -> None:
    old = impression(timestamp=T0)
    state, _ = run([old, click(timestamp=T0 + 30 * DAY, line_item_id=101)], LONGEST)

    assert old.event_id in ids(state)


def test_a_click_older_than_90_days_before_the_watermark_is_pruned_but_not_at_exactly_90_days() -> None:
    kept, pruned = click(timestamp=T0 + 1), click(timestamp=T0, line_item_id=101)
    state, _ = run([pruned, kept, impression(timestamp=T0 + 90 * DAY + 1, line_item_id=102)], LONGEST)

    assert ids(state)[:1] == [kept.event_id]
    assert pruned.event_id not in ids(state)


def test_a_click_survives_the_30_day_impression_horizon() -> None:
    old_click = click(timestamp=T0)
    state, _ = run([old_click, impression(timestamp=T0 + 60 * DAY, line_item_id=101)], LONGEST)

    assert old_click.event_id in ids(state)


def test_a_conversion_advances_the_watermark() -> None:
    state, _ = run([impression(timestamp=T0), conversion(pixel_id=999, timestamp=T0 + 31 * DAY)])

    assert state.watermark == T0 + 31 * DAY


def test_a_conversion_prunes_touches_older_than_30_days_before_the_watermark() -> None:
    state, _ = run([impression(timestamp=T0), conversion(pixel_id=999, timestamp=T0 + 31 * DAY)])

    assert state.touches == ()


def test_record_conversion_keeps_every_touch_after_the_horizon_it_is_given() -> None:
    touches = [impression(timestamp=T0 + d * DAY) for d in (1, 2, 3)]
    state = EMPTY
    for touch in touches:
        state = add_touch(state, touch, LIMITS, horizon=T0)
    assert state.touches == tuple(touches)  # after the horizon: not capped per line item

    state = record_conversion(state, "c", T0 + 10 * DAY, None, LIMITS, horizon=T0)

    assert state.touches == tuple(touches)


def test_the_watermark_is_the_latest_event_timestamp_not_the_last_one() -> None:
    state, _ = run([click(timestamp=T0 + 5), click(timestamp=T0, line_item_id=101)])

    assert state.watermark == T0 + 5


def test_pruning_by_age_never_changes_an_answer_at_the_longest_windows() -> None:
    cfg = config(pixels=[pixel(post_view_expire_mins=None, post_click_expire_mins=None)])
    view_edge, click_edge = impression(timestamp=T0 + 60 * DAY), click(timestamp=T0)
    conv_ts = T0 + 90 * DAY

    # The click at exactly 90 days wins (hybrid prefers clicks); without it, the impression at 30.
    assert judge_last([click_edge, view_edge, conversion(timestamp=conv_ts)], cfg).touch_event_id == click_edge.event_id
    assert judge_last([view_edge, conversion(timestamp=conv_ts)], cfg).touch_event_id == view_edge.event_id


# --- pruning by cap ---------------------------------------------------------------------------


def test_the_per_line_item_cap_keeps_the_latest_touches_of_that_line_item_and_kind() -> None:
    imps = [impression(timestamp=T0 + i) for i in range(5)]
    state, _ = run(imps)

    assert ids(state) == [imps[3].event_id, imps[4].event_id]


def test_the_per_line_item_cap_is_per_kind_and_per_line_item() -> None:
    events = [
        *(impression(timestamp=T0 + i) for i in range(5)),
        click(timestamp=T0 + 10),
        impression(timestamp=T0 + 11, line_item_id=101),
        *(impression(timestamp=T0 + 20 + i) for i in range(5)),
    ]
    state, _ = run(events, limits=Limits(per_line_item=1))

    kinds = sorted((t.line_item_id, t.kind) for t in state.touches)
    assert kinds == [(LINE_ITEM, "click"), (LINE_ITEM, "impression"), (101, "impression")]
    assert max(t.timestamp for t in state.touches if t.kind == "impression") == T0 + 24


def test_a_heavy_stream_of_one_advertisers_impressions_does_not_evict_another_advertisers_click() -> None:
    other_pixel = pixel(id=2, advertiser_id=OTHER_ADVERTISER)
    cfg = config(
        pixels=[pixel(), other_pixel],
        line_items=[line_item(), line_item(id=200, advertiser_id=OTHER_ADVERTISER, pixels=[link(id=2)])],
    )
    their_click = click(timestamp=T0, advertiser_id=OTHER_ADVERTISER, line_item_id=200)
    flood = [impression(timestamp=T0 + MINUTE + i) for i in range(1000)]

    state, _ = run([their_click, *flood], cfg)
    _, outputs = step(state, conversion(pixel_id=2, timestamp=T0 + DAY), cfg)

    assert their_click.event_id in ids(state)
    result = outcomes(outputs)[0]
    assert isinstance(result, AttributedConversion)
    assert result.touch_event_id == their_click.event_id


def test_the_last_resort_cap_bounds_the_touches_of_one_advertiser_and_kind_keeping_the_latest() -> None:
    events = [impression(timestamp=T0 + i, line_item_id=1000 + i) for i in range(500)]
    state, _ = run(events, limits=Limits(max_touches=16))

    assert ids(state) == [e.event_id for e in events[-16:]]


def test_the_last_resort_cap_is_per_advertiser_and_kind() -> None:
    mine = [impression(timestamp=T0 + i, line_item_id=1000 + i) for i in range(50)]
    my_clicks = [click(timestamp=T0 + 100 + i, line_item_id=1000 + i) for i in range(50)]
    theirs = [
        impression(timestamp=T0 + 200 + i, line_item_id=2000 + i, advertiser_id=OTHER_ADVERTISER) for i in range(50)
    ]
    state, _ = run([*mine, *my_clicks, *theirs], limits=Limits(max_touches=4))

    assert ids(state) == [t.event_id for t in (*mine[-4:], *my_clicks[-4:], *theirs[-4:])]


def test_state_stays_bounded_under_a_long_heavy_stream() -> None:
    events = [
        (impression if i % 3 else click)(timestamp=T0 + i * MINUTE, line_item_id=100 + i % 50, advertiser_id=10 + i % 2)
        for i in range(3000)
    ]
    state, _ = run(events, LONGEST, Limits(max_user_touches=1000))

    # 50 line items (25 per advertiser) x 2 kinds x the latest 2 of each: under 64 per advertiser and kind.
    assert len(state.touches) == 50 * 2 * 2
    # A line item's clicks come every 150 events, so its latest two are at most 300 events old.
    assert min(t.timestamp for t in state.touches) >= T0 + (3000 - 300) * MINUTE


def test_impressions_on_many_line_items_of_one_advertiser_do_not_evict_another_advertisers_click() -> None:
    cfg = config(
        pixels=[pixel(), pixel(id=2, advertiser_id=OTHER_ADVERTISER)],
        line_items=[
            *(line_item(id=1000 + i) for i in range(40)),
            line_item(id=200, advertiser_id=OTHER_ADVERTISER, pixels=[link(id=2)]),
        ],
    )
    their_click = click(timestamp=T0, advertiser_id=OTHER_ADVERTISER, line_item_id=200)
    flood = [impression(timestamp=T0 + MINUTE + i, line_item_id=1000 + i // 2) for i in range(80)]

    result = judge_last([their_click, *flood, conversion(pixel_id=2, timestamp=T0 + DAY)], cfg)

    assert isinstance(result, AttributedConversion)


def test_the_per_line_item_cap_does_not_evict_the_only_touch_of_the_pixels_advertiser() -> None:
    eligible = impression(timestamp=T0)
    events = [
        eligible,
        impression(timestamp=T0 + 1, advertiser_id=OTHER_ADVERTISER),
        impression(timestamp=T0 + 2, advertiser_id=OTHER_ADVERTISER),
        conversion(timestamp=T0 + 3),
    ]

    assert judge_last(events).touch_event_id == eligible.event_id


# --- deduplication ids ------------------------------------------------------------------------


def test_a_judged_conversion_id_is_remembered_for_the_dedup_retention_inclusive() -> None:
    first = conversion(pixel_id=999, timestamp=T0)
    state, _ = run([first, conversion(pixel_id=999, timestamp=T0 + 7 * DAY)])

    assert state.has_processed(first.event_id)
    assert step(state, first, config())[1] == ()


def test_a_judged_conversion_id_is_forgotten_one_ms_after_the_dedup_retention() -> None:
    first = conversion(pixel_id=999, timestamp=T0)
    later = conversion(pixel_id=999, timestamp=T0 + 7 * DAY + 1)
    state, _ = run([first, later])

    assert not state.has_processed(first.event_id)
    assert state.has_processed(later.event_id)


def test_the_default_dedup_retention_is_7_days_and_configurable() -> None:
    assert LIMITS.dedup_retention_ms == 7 * DAY_MS == 7 * DAY
    first = conversion(pixel_id=999, timestamp=T0)
    state, _ = run(
        [first, conversion(pixel_id=999, timestamp=T0 + MINUTE + 1)], limits=Limits(dedup_retention_ms=MINUTE)
    )

    assert not state.has_processed(first.event_id)


def test_record_conversion_counts_only_the_pixel_it_is_given() -> None:
    state = record_conversion(EMPTY, "c1", T0, None, LIMITS)
    state = record_conversion(state, "c2", T0 + 1, 5, LIMITS)
    state = record_conversion(state, "c3", T0 + 2, 5, LIMITS)

    assert state.counted == ((5, T0 + 2),)
    assert state.last_counted(5) == T0 + 2
    assert state.last_counted(6) is None
    assert [eid for eid, _ in state.processed] == ["c1", "c2", "c3"]


# --- idempotence of touches -------------------------------------------------------------------


def test_a_redelivered_touch_is_idempotent() -> None:
    touch = click(timestamp=T0)
    state = add_touch(EMPTY, touch, LIMITS)

    assert add_touch(state, touch, LIMITS) is state


def test_a_redelivered_touch_does_not_change_which_touch_wins_a_tie() -> None:
    first, second = click(timestamp=T0), click(timestamp=T0)
    state, _ = run([first, second, first])

    _, outputs = step(state, conversion(timestamp=T0 + 1), config())

    result = outcomes(outputs)[0]
    assert isinstance(result, AttributedConversion)
    assert result.touch_event_id == second.event_id


def test_an_impression_and_a_click_may_share_an_event_id() -> None:
    state, _ = run([impression(event_id="x", timestamp=T0), click(event_id="x", timestamp=T0)])

    assert sorted(t.kind for t in state.touches) == ["click", "impression"]


def test_a_redelivered_touch_evicted_by_the_cap_does_not_change_the_winner_of_a_tie() -> None:
    a, b, c = (impression(event_id=e, timestamp=T0) for e in ("a", "b", "c"))
    state, _ = run([a, b, c])
    assert ids(state) == ["b", "c"]
    conv = conversion(timestamp=T0 + 1)
    before = outcomes(step(state, conv, config())[1])[0]

    redelivered, _ = run([a], state=state)
    after = outcomes(step(redelivered, conv, config())[1])[0]

    assert after == before


def test_touches_evicted_on_a_tie_are_remembered_a_few_and_only_within_their_retention() -> None:
    state, _ = run([impression(event_id=f"t{i}", timestamp=T0) for i in range(MAX_TIED + 5)])

    assert ids(state) == [f"t{MAX_TIED + 3}", f"t{MAX_TIED + 4}"]  # the per-line-item cap keeps 2
    assert len(state.tied) == MAX_TIED  # of the tie-evicted, a bounded few
    later, _ = run([impression(event_id="late", timestamp=T0 + 2 * DAY_MS)], state=state)
    assert later.tied == ()  # past the impressions' retention (1 day): forgotten with the touches


def test_touches_stay_in_timestamp_order_whatever_the_arrival_order() -> None:
    events = [click(timestamp=T0 + d, line_item_id=100 + d) for d in (5, 1, 3, 2, 4)]
    state, _ = run(events)

    assert [t.timestamp for t in state.touches] == [T0 + d for d in (1, 2, 3, 4, 5)]


def test_state_is_empty_only_without_touches_counters_and_ids() -> None:
    assert EMPTY.is_empty
    assert not run([click()])[0].is_empty
    assert not run([conversion(pixel_id=999)])[0].is_empty
