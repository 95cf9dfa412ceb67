"""Pixel and line-item configuration, and the pixel status derived from both.

The validation rules of a pixel (ranges, enums, piggyback types) live in `schemas/pixel.schema.json`,
the single source of truth; `attribution.contract` checks records against it before building these
objects. This module holds what the rules *mean*: defaults, "expiration off", windows in ms, status.
The limits below are asserted equal to the schema's by a unit test, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

State = Literal["active", "inactive"]
TriggerType = Literal["hybrid", "view", "click"]
PixelType = Literal["img", "js"]
Status = Literal["active", "paused", "inactive"]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
DEFAULT_POST_VIEW_EXPIRE_MINS = 1_440  # 1 day
DEFAULT_POST_CLICK_EXPIRE_MINS = 20_160  # 14 days
MAX_POST_VIEW_EXPIRE_MINS = 43_200  # 30 days; also the window when expiration is off
MAX_POST_CLICK_EXPIRE_MINS = 129_600  # 90 days; also the window when expiration is off
MAX_MIN_MINUTES_PER_CONV = 32_767
MAX_PIXELS_PER_LINE_ITEM = 20
EVENT_CATEGORIES = (
    "landing_page",
    "item_view",
    "add_to_cart",
    "initiate_checkout",
    "add_payment_info",
    "purchase",
    "lead",
)

#: The longest any pixel can look back, per touch kind: what per-user state must keep.
LONGEST_VIEW_WINDOW_MS = MAX_POST_VIEW_EXPIRE_MINS * MINUTE_MS
LONGEST_CLICK_WINDOW_MS = MAX_POST_CLICK_EXPIRE_MINS * MINUTE_MS
#: The product's default windows: the least a touch is kept, so that a pixel created later with
#: default windows still finds the touches it can credit.
DEFAULT_VIEW_WINDOW_MS = DEFAULT_POST_VIEW_EXPIRE_MINS * MINUTE_MS
DEFAULT_CLICK_WINDOW_MS = DEFAULT_POST_CLICK_EXPIRE_MINS * MINUTE_MS


@dataclass(frozen=True, slots=True)
class Retention:
    """How long (ms of event time) a touch of each kind can still be credited by some pixel."""

    view_ms: int = LONGEST_VIEW_WINDOW_MS
    click_ms: int = LONGEST_CLICK_WINDOW_MS

    def of(self, kind: str) -> int:
        return self.click_ms if kind == "click" else self.view_ms


#: Keeps touches for the longest window any pixel may ever have: right whatever the configuration.
LONGEST_RETENTION = Retention()


@dataclass(frozen=True, slots=True)
class PiggybackPixel:
    pixel_type: PixelType
    url: str


@dataclass(frozen=True, slots=True)
class Pixel:
    """A conversion pixel as configured; `None`/`0` expirations are kept as given for display."""

    id: int
    advertiser_id: int
    name: str
    state: State = "active"
    trigger_type: TriggerType = "hybrid"
    post_view_expire_mins: int | None = DEFAULT_POST_VIEW_EXPIRE_MINS
    post_click_expire_mins: int | None = DEFAULT_POST_CLICK_EXPIRE_MINS
    min_minutes_per_conv: int | None = None
    post_view_value: float | None = None
    post_click_value: float | None = None
    event_category: str | None = None
    pixel_type: PixelType = "img"
    piggyback_pixels: tuple[PiggybackPixel, ...] = ()
    #: A repeated `order_id` of the same user and pixel is `duplicate_order_id` (off by default).
    dedupe_order_id: bool = False

    @property
    def post_view_window_ms(self) -> int:
        """Post-view lookback in ms; expiration off (None or 0) means the 30-day maximum."""
        return (self.post_view_expire_mins or MAX_POST_VIEW_EXPIRE_MINS) * MINUTE_MS

    @property
    def post_click_window_ms(self) -> int:
        """Post-click lookback in ms; expiration off (None or 0) means the 90-day maximum."""
        return (self.post_click_expire_mins or MAX_POST_CLICK_EXPIRE_MINS) * MINUTE_MS


@dataclass(frozen=True, slots=True)
class PixelLink:
    """A pixel carried by a line item, with the revenue booked per attributed conversion."""

    id: int
    state: State = "active"
    post_click_revenue: float | None = None
    post_view_revenue: float | None = None


@dataclass(frozen=True, slots=True)
class LineItem:
    id: int
    advertiser_id: int
    state: State = "active"
    pixels: tuple[PixelLink, ...] = ()
    name: str | None = None


_EMPTY: Mapping[int, PixelLink] = MappingProxyType({})


@dataclass(frozen=True)
class Config:
    """A consistent snapshot of all pixels and line items.

    `links` maps a pixel id to the active links that carry it, by line item id: only active line
    items and active links are in it, so "eligible line item" and "paused" are one lookup each.
    Build it with `Config.of(...)`; it is immutable and cheap to share.
    """

    pixels: Mapping[int, Pixel] = field(default_factory=dict)
    line_items: Mapping[int, LineItem] = field(default_factory=dict)
    links: Mapping[int, Mapping[int, PixelLink]] = field(init=False, repr=False)
    #: How long touches must be kept for the pixels configured (see `touch_retention`).
    retention: Retention = field(init=False, repr=False)

    def __post_init__(self) -> None:
        links: dict[int, dict[int, PixelLink]] = {}
        for item in self.line_items.values():
            if item.state != "active":
                continue
            for link in item.pixels:
                if link.state == "active":
                    links.setdefault(link.id, {})[item.id] = link
        object.__setattr__(self, "links", {pid: MappingProxyType(m) for pid, m in links.items()})
        object.__setattr__(self, "retention", touch_retention(self.pixels.values()))

    @classmethod
    def of(cls, pixels: Iterable[Pixel] = (), line_items: Iterable[LineItem] = ()) -> Config:
        return cls({p.id: p for p in pixels}, {li.id: li for li in line_items})

    def active_links(self, pixel_id: int) -> Mapping[int, PixelLink]:
        """Active links carrying the pixel on active line items, by line item id."""
        return self.links.get(pixel_id, _EMPTY)

    def carriers(self, pixel_id: int) -> list[int]:
        """Ids of the line items carrying the pixel, in any state (an inactive one may be
        reactivated), in id order."""
        return sorted(li.id for li in self.line_items.values() if any(link.id == pixel_id for link in li.pixels))

    def status(self, pixel_id: int) -> Status | None:
        """`inactive` by state, else `active` if an active line item carries it, else `paused`.

        None for an unknown pixel.
        """
        pixel = self.pixels.get(pixel_id)
        if pixel is None:
            return None
        if pixel.state == "inactive":
            return "inactive"
        return "active" if pixel_id in self.links else "paused"


def touch_retention(pixels: Iterable[Pixel]) -> Retention:
    """The longest post-view and post-click windows among `pixels` (any state: an inactive pixel
    may be reactivated), never less than the product defaults (a pixel created later with default
    windows still finds its touches) and never more than the maxima."""
    view, click = DEFAULT_VIEW_WINDOW_MS, DEFAULT_CLICK_WINDOW_MS
    for p in pixels:
        view = max(view, p.post_view_window_ms)
        click = max(click, p.post_click_window_ms)
    return Retention(min(view, LONGEST_VIEW_WINDOW_MS), min(click, LONGEST_CLICK_WINDOW_MS))
