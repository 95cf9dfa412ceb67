"""The attribution step: `step(state, event, config, limits) -> (state, outputs)`.

Pure and deterministic: the result depends only on the arguments (time comes in with the event).
Rules are applied to each conversion in the order of docs/design.md, Attribution rules:

1. a conversion already processed (same event_id, within the dedup retention) -> no output;
2. unknown pixel -> `unknown_pixel`;  3. inactive pixel -> `inactive_pixel`;
4. the pixel fired: one piggyback fire per piggyback URL, in list order, whatever follows;
5. paused pixel (no active line item carries it) -> `pixel_paused`;
   then, for a pixel with `dedupe_order_id`, an `order_id` this user already sent for this pixel
   in a conversion that reached rule 6 or later (within the dedup retention) -> `duplicate_order_id`;
6. the latest eligible touch by trigger type, else `no_eligible_touch` (a server-side conversion,
   with an `auction_id` from its token, only sees the touches of that auction);
7. the repeat rule, per (pixel, user), over attributed conversions only (a counter older than the
   repeat retention is absent), else `repeat_limited`;
8. attributed, `post_click` or `post_view`.
"""

from __future__ import annotations

from collections.abc import Mapping

from attribution.domain.config import MINUTE_MS, Config, Pixel, PixelLink
from attribution.domain.outputs import (
    AttributedConversion,
    Output,
    PiggybackFire,
    Reason,
    UnattributedConversion,
)
from attribution.domain.records import Conversion, Event, Touch
from attribution.domain.state import (
    Forgotten,
    Limits,
    UserState,
    add_touch,
    is_duplicate,
    is_duplicate_order,
    last_counted_within,
    record_conversion,
    take_held,
    visible_touches_of,
)

DEFAULT_LIMITS = Limits()
_NO_OUTPUTS: tuple[Output, ...] = ()


def step(
    state: UserState,
    event: Event,
    config: Config,
    limits: Limits = DEFAULT_LIMITS,
    horizon: int | None = None,
    forgotten: Forgotten | None = None,
) -> tuple[UserState, tuple[Output, ...]]:
    """Apply one event to one user's state.

    Touches update state and emit nothing; impressions not won in a real auction change nothing.
    A conversion emits its piggyback fires and exactly one outcome, or nothing if it is a duplicate.
    `horizon` is the earliest timestamp a conversion judged later can have (see `state`); None
    means the user's watermark, right for input judged in timestamp order. `forgotten`, when
    given, counts what the state's caps dropped (see `state`).
    """
    if isinstance(event, Touch):
        if not event.is_touch:
            return state, _NO_OUTPUTS
        return add_touch(state, event, limits, horizon, config.retention, forgotten), _NO_OUTPUTS
    return judge(state, event, config, limits, horizon, forgotten)


def judge(
    state: UserState,
    conv: Conversion,
    config: Config,
    limits: Limits = DEFAULT_LIMITS,
    horizon: int | None = None,
    forgotten: Forgotten | None = None,
) -> tuple[UserState, tuple[Output, ...]]:
    """Rules 1-8 for one conversion."""
    if is_duplicate(state, conv, limits):
        return state, _NO_OUTPUTS  # rule 1
    done = _Recorder(config, limits, horizon, forgotten)
    pixel = config.pixels.get(conv.pixel_id)
    if pixel is None:
        return done.unattributed(state, conv, "unknown_pixel")  # rule 2
    if pixel.state == "inactive":
        return done.unattributed(state, conv, "inactive_pixel")  # rule 3
    fires = piggyback_fires(pixel, conv)  # rule 4
    links = config.active_links(pixel.id)
    if not links:
        return done.unattributed(state, conv, "pixel_paused", fires)  # rule 5
    order: tuple[int, str] | None = None
    if pixel.dedupe_order_id and conv.order_id is not None:
        if is_duplicate_order(state, pixel.id, conv, limits):
            return done.unattributed(state, conv, "duplicate_order_id", fires)
        order = (pixel.id, conv.order_id)  # remembered from rule 6 on, whatever the outcome
    touches = visible_touches_of(state, conv.timestamp, limits, config.retention)
    winner = latest_eligible_touch(touches, conv, pixel, links)  # rule 6
    if winner is None:
        return done.unattributed(state, conv, "no_eligible_touch", fires, order)
    last = last_counted_within(state, pixel.id, conv.timestamp, limits)
    if not repeat_rule_counts(pixel.min_minutes_per_conv, last, conv):
        return done.unattributed(state, conv, "repeat_limited", fires, order)  # rule 7
    touch, link = winner
    new_state = done.record(state, conv, pixel.id, order)
    return new_state, (*fires, _attributed(conv, pixel, touch, link))  # rule 8


def release(
    state: UserState,
    through: int,
    config: Config,
    limits: Limits = DEFAULT_LIMITS,
    horizon: int | None = None,
    forgotten: Forgotten | None = None,
) -> tuple[UserState, tuple[Output, ...]]:
    """Judge the held conversions with `timestamp <= through`, in timestamp order."""
    state, ready = take_held(state, through)
    outputs: list[Output] = []
    for conv in ready:
        state, outs = judge(state, conv, config, limits, horizon, forgotten)
        outputs.extend(outs)
    return state, tuple(outputs)


def piggyback_fires(pixel: Pixel, conv: Conversion) -> tuple[PiggybackFire, ...]:
    """One fire per piggyback pixel, in list order; `fire_id` is `<conversion_id>:<index>`."""
    return tuple(
        PiggybackFire(
            fire_id=f"{conv.event_id}:{i}",
            conversion_id=conv.event_id,
            pixel_id=pixel.id,
            pixel_type=pixel.pixel_type,
            url=pb.url,
            index=i,
            user_id=conv.user_id,
            conversion_timestamp=conv.timestamp,
        )
        for i, pb in enumerate(pixel.piggyback_pixels)
    )


def latest_eligible_touch(
    touches: tuple[Touch, ...], conv: Conversion, pixel: Pixel, links: Mapping[int, PixelLink]
) -> tuple[Touch, PixelLink] | None:
    """Rule 6: the winning touch and the link it came through, or None.

    Eligible: the pixel's advertiser, a line item in `links`, `0 <= conv.ts - touch.ts <= window`
    (edges inclusive; the window by touch kind). `click` takes the latest click, `view` the latest
    impression, `hybrid` the latest click if any, else the latest impression. `touches` is in
    timestamp order with ties in processing order, so the first match walking back wins.
    """
    trigger = pixel.trigger_type
    want_click = trigger != "view"
    want_view = trigger != "click"
    click_window = pixel.post_click_window_ms
    view_window = pixel.post_view_window_ms
    ts = conv.timestamp
    auction = conv.auction_id
    best_view: tuple[Touch, PixelLink] | None = None
    for t in reversed(touches):
        age = ts - t.timestamp
        if age < 0 or t.advertiser_id != pixel.advertiser_id or (auction is not None and t.auction_id != auction):
            continue
        if t.kind == "click":
            if not want_click or age > click_window:
                continue
            link = links.get(t.line_item_id)
            if link is not None:
                return t, link  # a click always beats an impression
        elif want_view and best_view is None and age <= view_window:
            link = links.get(t.line_item_id)
            if link is not None:
                best_view = (t, link)
                if not want_click:
                    break
    return best_view


def repeat_rule_counts(min_minutes_per_conv: int | None, last_counted: int | None, conv: Conversion) -> bool:
    """Rule 7: `None` counts the first only, `0` all, N one every N minutes (>= N since the last).

    `last_counted` is None when there is none within the repeat retention (`last_counted_within`)."""
    if last_counted is None or min_minutes_per_conv == 0:
        return True
    if min_minutes_per_conv is None:
        return False
    return conv.timestamp - last_counted >= min_minutes_per_conv * MINUTE_MS


def _attributed(conv: Conversion, pixel: Pixel, touch: Touch, link: PixelLink) -> AttributedConversion:
    click = touch.kind == "click"
    value = conv.value
    if value is None:
        value = pixel.post_click_value if click else pixel.post_view_value
    return AttributedConversion(
        conversion_id=conv.event_id,
        pixel_id=pixel.id,
        advertiser_id=pixel.advertiser_id,
        user_id=conv.user_id,
        conversion_timestamp=conv.timestamp,
        attribution="post_click" if click else "post_view",
        touch_event_id=touch.event_id,
        touch_timestamp=touch.timestamp,
        auction_id=touch.auction_id,
        line_item_id=touch.line_item_id,
        creative_id=touch.creative_id,
        campaign_id=touch.campaign_id,
        latency_ms=conv.timestamp - touch.timestamp,
        value=value,
        booked_revenue=link.post_click_revenue if click else link.post_view_revenue,
        order_id=conv.order_id,
        other=conv.other,
        event_category=pixel.event_category,
        source=conv.source,
    )


class _Recorder:
    """Records a judged conversion in the state with the call's limits, horizon and tally."""

    __slots__ = ("config", "forgotten", "horizon", "limits")

    def __init__(self, config: Config, limits: Limits, horizon: int | None, forgotten: Forgotten | None) -> None:
        self.config, self.limits, self.horizon, self.forgotten = config, limits, horizon, forgotten

    def record(
        self, state: UserState, conv: Conversion, counted_pixel: int | None, order: tuple[int, str] | None = None
    ) -> UserState:
        return record_conversion(
            state,
            conv.event_id,
            conv.timestamp,
            counted_pixel,
            self.limits,
            self.horizon,
            self.config.retention,
            self.forgotten,
            order,
        )

    def unattributed(
        self,
        state: UserState,
        conv: Conversion,
        reason: Reason,
        fires: tuple[PiggybackFire, ...] = (),
        order: tuple[int, str] | None = None,
    ) -> tuple[UserState, tuple[Output, ...]]:
        outcome = UnattributedConversion(
            conv.event_id, conv.pixel_id, conv.user_id, conv.timestamp, reason, conv.source
        )
        return self.record(state, conv, None, order), (*fires, outcome)
