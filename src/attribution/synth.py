"""Deterministic synthetic ad traffic: configuration and a timestamp-ordered stream of events.

Used by the benchmarks (`bench/`) and by `attribution simulate`, which publishes the same records to
Kafka. Everything is derived from one seeded `random.Random`, so a `TrafficSpec` always yields the
same records, byte for byte, on every machine and Python version that keeps `random`'s generator.

Shape of the traffic (defaults; see `TrafficSpec`):

* `advertisers` advertisers, each with `line_items_per_advertiser` line items (a few creatives
  each, most in a campaign) and `pixels_per_advertiser` conversion pixels. Across all pixels every
  setting is covered: trigger types `hybrid`/`view`/`click` (some left to the default), repeat rules
  `null`/`0`/N, windows left to the defaults, explicit, or turned off with `null` or `0`, `img`
  pixels without and with one piggyback, `js` pixels with several, event categories on some,
  default values on some. The first advertiser has one inactive pixel, one paused pixel (carried
  only by its inactive line item) and one inactive line item; the second has an inactive link. One
  retired pixel is written and then deleted (a tombstone).
* Events arrive at a steady rate over `duration_ms`, in non-decreasing timestamp order: about
  90% impressions, 8% clicks, 2% conversions. Users are drawn with a skew (a few heavy users, a
  long tail) and mostly see their "home" advertiser. Impressions are mostly `imp_type` 7, some
  5/9/10/11, and some non-touch types (1-4). A click follows a recent impression of the same
  user, auction, line item and creative. Most conversions come from a user who clicked or saw an
  ad of the pixel's advertiser recently (latency skewed short), the rest from random users, so a
  real share is attributed post-click and post-view while every unattributed reason also occurs.
  Some conversions carry `value`, `order_id`, `other`; about 1% name an unknown pixel; about 1% are
  redelivered (the identical record again, right after the original).

Memory is O(1) in the number of events (and of users): only two fixed-size rings of recent
touches are kept; user ids are computed from the user's index.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from attribution.domain.config import DAY_MS

__all__ = [
    "DAY_MS",
    "NON_TOUCH_IMP_TYPES",
    "OTHER_TOUCH_IMP_TYPES",
    "Layout",
    "TrafficSpec",
    "config_records",
    "events",
    "layout",
    "user_id",
]

#: 5 kept, 9 external impression, 10 external click, 11 insertion (7, RTB, is the common case).
OTHER_TOUCH_IMP_TYPES = (5, 9, 10, 11)
#: 1 blank, 2 PSA, 3 default error, 4 default: valid impressions that are never touches.
NON_TOUCH_IMP_TYPES = (1, 2, 3, 4)

_MASK63 = (1 << 63) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # odd, so `n * _GOLDEN mod 2**64` is a bijection
_MIX2 = 0xD6E8FEB86659FD93
_UNKNOWN_PIXEL_ID = 999_999

Record = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class TrafficSpec:
    """What to generate. Shares are of all event records; the rest are impressions."""

    users: int
    events: int
    advertisers: int = 8
    seed: int = 1
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    duration_ms: int = 3 * DAY_MS
    line_items_per_advertiser: int = 4
    pixels_per_advertiser: int = 4
    click_share: float = 0.08
    conversion_share: float = 0.02
    #: Of impressions: the share with another touch imp_type (5/9/10/11), and with a non-touch one.
    other_touch_imp_share: float = 0.06
    non_touch_imp_share: float = 0.06
    #: Of conversions: from a recent clicker, from a recent viewer (the rest: a random user).
    post_click_conversion_share: float = 0.35
    post_view_conversion_share: float = 0.40
    unknown_pixel_share: float = 0.01
    duplicate_share: float = 0.01
    #: Share of touches on the user's "home" advertiser (the rest: any advertiser, skewed).
    home_advertiser_share: float = 0.7
    #: How many recent impressions / clicks clicks and conversions are drawn from.
    recent_touches: int = 8192

    def __post_init__(self) -> None:
        if self.users < 1 or self.events < 0:
            raise ValueError("users must be >= 1 and events >= 0")
        if self.advertisers < 1:
            raise ValueError("advertisers must be >= 1")
        if self.line_items_per_advertiser < 2 or self.pixels_per_advertiser < 3:
            raise ValueError("need >= 2 line items and >= 3 pixels per advertiser")
        if self.pixels_per_advertiser > 19:
            raise ValueError("a line item carries at most 20 pixels")
        if self.duration_ms < 0 or self.recent_touches < 1:
            raise ValueError("duration_ms must be >= 0 and recent_touches >= 1")
        if self.click_share + self.conversion_share > 1:
            raise ValueError("click_share + conversion_share must be <= 1")


def _touch(
    eid: str, uid: str, ts: int, adv: int, li: int, cr: int, auction: str, campaign: int | None
) -> dict[str, Any]:
    """An impression or click value (the fields they share), campaign_id only when there is one."""
    touch: dict[str, Any] = {
        "event_id": eid,
        "user_id": uid,
        "timestamp": ts,
        "advertiser_id": adv,
        "line_item_id": li,
        "creative_id": cr,
        "auction_id": auction,
    }
    if campaign is not None:
        touch["campaign_id"] = campaign
    return touch


def user_id(index: int) -> str:
    """The user id of user number `index`: a distinct 18-19 digit decimal, like an ad-server uid."""
    return str(((index + 1) * _GOLDEN) & _MASK63)


def _event_id(n: int, seed: int) -> str:
    return format(((n + 1) * _GOLDEN ^ seed * _MIX2) & 0xFFFFFFFFFFFFFFFF, "016x")


@dataclass(frozen=True)
class Layout:
    """Ids of the configured entities; index `a` is the a-th advertiser."""

    advertiser_ids: tuple[int, ...]
    #: Per advertiser: (line_item_id, campaign_id or None, creative ids).
    line_items: tuple[tuple[tuple[int, int | None, tuple[int, ...]], ...], ...]
    #: Per advertiser: its pixel ids.
    pixel_ids: tuple[tuple[int, ...], ...]
    inactive_pixel_id: int
    paused_pixel_id: int
    inactive_line_item_id: int
    retired_pixel_id: int


def layout(spec: TrafficSpec) -> Layout:
    """The ids of advertisers, line items, creatives, campaigns and pixels (no randomness)."""
    advertisers = tuple(101 + a for a in range(spec.advertisers))
    line_items = []
    pixels = []
    for a in range(spec.advertisers):
        items = []
        for j in range(spec.line_items_per_advertiser):
            li = 300_001 + a * spec.line_items_per_advertiser + j
            campaign = None if j % 4 == 3 else 40_001 + a * 10 + j // 2
            items.append((li, campaign, tuple(900_000 + (li - 300_000) * 4 + k for k in range(3))))
        line_items.append(tuple(items))
        pixels.append(tuple(700_001 + a * spec.pixels_per_advertiser + k for k in range(spec.pixels_per_advertiser)))
    return Layout(
        advertiser_ids=advertisers,
        line_items=tuple(line_items),
        pixel_ids=tuple(pixels),
        inactive_pixel_id=pixels[0][1],
        paused_pixel_id=pixels[0][-1],
        inactive_line_item_id=line_items[0][-1][0],
        retired_pixel_id=700_001 + spec.advertisers * spec.pixels_per_advertiser,
    )


_CATEGORIES: tuple[str | None, ...] = (
    None,
    "purchase",
    None,
    "lead",
    "add_to_cart",
    None,
    "landing_page",
    "initiate_checkout",
    "item_view",
    "add_payment_info",
)
_REPEAT_RULES: tuple[int | str | None, ...] = ("default", None, 0, 60, 1440)
_DOMAINS = ("ads.example-dsp.com", "track.example-analytics.net", "px.example-retail.io", "t.example-social.com")


def _pixel(spec: TrafficSpec, lay: Layout, a: int, k: int) -> dict[str, Any]:
    """The pixel record of advertiser `a`'s k-th pixel; settings cycle over the global index."""
    g = a * spec.pixels_per_advertiser + k
    pid = lay.pixel_ids[a][k]
    category = _CATEGORIES[g % len(_CATEGORIES)]
    p: dict[str, Any] = {
        "id": pid,
        "advertiser_id": lay.advertiser_ids[a],
        "name": f"Advertiser {lay.advertiser_ids[a]} {category or 'conversion'} #{k + 1}",
    }
    if pid == lay.inactive_pixel_id:
        p["state"] = "inactive"
    elif g % 2:
        p["state"] = "active"
    trigger = ("hybrid", "view", "click")[g % 3]
    if not (trigger == "hybrid" and g % 2 == 0):  # half the hybrids by default
        p["trigger_type"] = trigger
    windows = g % 4
    if windows == 1:
        short = g % 8 == 1  # short windows on some, long explicit ones on the others
        p["post_view_expire_mins"] = 60 if short else 10_080
        p["post_click_expire_mins"] = 1440 if short else 43_200
    elif windows == 2:
        p["post_view_expire_mins"], p["post_click_expire_mins"] = None, None  # expiration off
    elif windows == 3:
        p["post_view_expire_mins"], p["post_click_expire_mins"] = 0, 0  # expiration off
    repeat = _REPEAT_RULES[g % len(_REPEAT_RULES)]
    if repeat != "default":
        p["min_minutes_per_conv"] = repeat
    if g % 5 == 2:
        p["post_click_value"], p["post_view_value"] = 40.0, 12.5
    if category is not None:
        p["event_category"] = category
    elif g % 3 == 0:
        p["event_category"] = None
    kind = g % 7
    domain = _DOMAINS[g % len(_DOMAINS)]
    if kind in (2, 3):
        p["pixel_type"] = "img"
        p["piggyback_pixels"] = [{"pixel_type": "img", "url": f"https://{domain}/px?id={pid}&src=attribution"}]
    elif kind in (4, 5, 6):
        p["pixel_type"] = "js"
        p["piggyback_pixels"] = [
            {"pixel_type": "js", "url": f"https://{_DOMAINS[(g + i) % len(_DOMAINS)]}/tag/{pid}/{i}.js?v=2"}
            for i in range(2 + kind - 4)
        ]
    elif kind == 1:
        p["pixel_type"] = "img"
    return p


def config_records(spec: TrafficSpec) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(topic, key, value) of every pixel, then every line item; keys are the ids as text.

    Includes one retired pixel: written, then deleted by a tombstone (value None).
    """
    lay = layout(spec)
    records: list[tuple[str, str, dict[str, Any] | None]] = []
    for a in range(spec.advertisers):
        for k in range(spec.pixels_per_advertiser):
            p = _pixel(spec, lay, a, k)
            records.append(("pixels", str(p["id"]), p))
    retired = lay.retired_pixel_id
    records.append(("pixels", str(retired), {"id": retired, "advertiser_id": lay.advertiser_ids[0], "name": "Retired"}))
    records.append(("pixels", str(retired), None))
    for a in range(spec.advertisers):
        adv = lay.advertiser_ids[a]
        for j, (li, _, _) in enumerate(lay.line_items[a]):
            inactive_item = li == lay.inactive_line_item_id
            links: list[dict[str, Any]] = []
            for k, pid in enumerate(lay.pixel_ids[a]):
                if pid == lay.paused_pixel_id and not inactive_item:
                    continue  # the paused pixel is carried by the inactive line item only
                link: dict[str, Any] = {"id": pid}
                if spec.advertisers > 1 and a == 1 and j == 0 and k == 0:
                    link["state"] = "inactive"
                elif (j + k) % 3 == 0:
                    link["state"] = "active"
                if (j + k) % 2 == 0:
                    link["post_click_revenue"] = 1.5 + j
                    link["post_view_revenue"] = 0.25
                links.append(link)
            item: dict[str, Any] = {"id": li, "advertiser_id": adv, "name": f"LI {li}", "pixels": links}
            if inactive_item:
                item["state"] = "inactive"
            elif j % 2:
                item["state"] = "active"
            records.append(("line-items", str(li), item))
    return records


def events(spec: TrafficSpec) -> Iterator[Record]:
    """(topic, key = user_id, value) of `spec.events` event records, in non-decreasing timestamp order."""
    rng = random.Random(spec.seed)
    rand = rng.random
    lay = layout(spec)
    n_adv = spec.advertisers
    n_users = spec.users
    adv_ids = lay.advertiser_ids
    items = lay.line_items
    pixels = lay.pixel_ids
    start, duration, total, seed = spec.start_ms, spec.duration_ms, spec.events, spec.seed
    conv_share = spec.conversion_share
    touch_share = conv_share + spec.click_share
    imp_other = spec.other_touch_imp_share
    imp_non_touch = imp_other + spec.non_touch_imp_share
    pc_share = spec.post_click_conversion_share
    pv_share = pc_share + spec.post_view_conversion_share
    unknown_share = spec.unknown_pixel_share
    dup_share = spec.duplicate_share
    home_share = spec.home_advertiser_share
    unknown_ids = (lay.retired_pixel_id, _UNKNOWN_PIXEL_ID)
    ring_size = spec.recent_touches
    # Rings of recent touches: impressions (user, adv index, line item, creative, auction, campaign)
    # for clicks to follow and post-view conversions to come from; (user, adv index) of clicks.
    imps: list[tuple[int, int, int, int, str, int | None]] = []
    imp_pos = 0
    clickers: list[tuple[int, int]] = []
    click_pos = 0

    n = 0
    while n < total:
        ts = start + n * duration // total if total else start
        eid = _event_id(n, seed)
        x = rand()
        if x < conv_share:
            y = rand()
            if y < pc_share and clickers:
                back = int(len(clickers) * rand() ** 2)  # skewed to the most recent
                u, a = clickers[(click_pos - 1 - back) % len(clickers)]
            elif y < pv_share and imps:
                back = int(len(imps) * rand() ** 2)
                u, a = imps[(imp_pos - 1 - back) % len(imps)][:2]
            else:
                u = int(n_users * rand() ** 2)
                a = int(n_adv * rand())
            uid = user_id(u)
            if rand() < unknown_share:
                pid = unknown_ids[int(rand() * 2)]
            else:
                adv_pixels = pixels[a]
                pid = adv_pixels[int(rand() * len(adv_pixels))]
            conv: dict[str, Any] = {"event_id": eid, "pixel_id": pid, "user_id": uid, "timestamp": ts}
            z = rand()
            if z < 0.3:
                conv["value"] = round(rand() * 250, 2)
            elif z < 0.35:
                conv["value"] = None
            if rand() < 0.3:
                conv["order_id"] = f"ORD-{ts // 1000}-{n % 100_000:05d}"
            if rand() < 0.1:
                conv["other"] = ("utm=email", "utm=search", "coupon=WELCOME10", "sku=A-1077")[n % 4]
            yield "conversions", uid, conv
            n += 1
            if n < total and rand() < dup_share:
                yield "conversions", uid, conv  # redelivery: the identical record again
                n += 1
            continue
        if x < touch_share and imps:
            back = int(len(imps) * rand() ** 2)
            u, a, li, cr, auction, campaign = imps[(imp_pos - 1 - back) % len(imps)]
            uid = user_id(u)
            click = _touch(eid, uid, ts, adv_ids[a], li, cr, auction, campaign)
            if len(clickers) < ring_size:
                clickers.append((u, a))
            else:
                clickers[click_pos] = (u, a)
            click_pos = (click_pos + 1) % ring_size
            yield "clicks", uid, click
            n += 1
            continue
        # An impression.
        u = int(n_users * rand() ** 2)  # a skew: low indices are heavy users
        a = ((u + 1) * _MIX2 >> 17) % n_adv if rand() < home_share else int(n_adv * rand() ** 1.5)
        li, campaign, creatives = items[a][int(rand() * len(items[a]))]
        cr = creatives[int(rand() * len(creatives))]
        auction = str(((n + 1) * _MIX2 ^ seed) & _MASK63)
        uid = user_id(u)
        imp = _touch(eid, uid, ts, adv_ids[a], li, cr, auction, campaign)
        t = rand()
        if t < imp_other:
            imp["imp_type"] = OTHER_TOUCH_IMP_TYPES[int(t / imp_other * 4)]
        elif t < imp_non_touch:
            imp["imp_type"] = NON_TOUCH_IMP_TYPES[int((t - imp_other) / (imp_non_touch - imp_other) * 4)]
        elif t < 0.6:
            imp["imp_type"] = 7  # explicit; the rest leave it to the default (7)
        if imp_other <= t < imp_non_touch:
            yield "impressions", uid, imp  # not a touch: nobody clicks it, no conversion follows
            n += 1
            continue
        entry = (u, a, li, cr, auction, campaign)
        if len(imps) < ring_size:
            imps.append(entry)
        else:
            imps[imp_pos] = entry
        imp_pos = (imp_pos + 1) % ring_size
        yield "impressions", uid, imp
        n += 1
