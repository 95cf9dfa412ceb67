"""Outcomes of the engine, one dataclass per output record type (fields in schema order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from attribution.domain.records import Source

Attribution = Literal["post_click", "post_view"]
Reason = Literal[
    "unknown_pixel", "inactive_pixel", "pixel_paused", "duplicate_order_id", "no_eligible_touch", "repeat_limited"
]
REASONS: tuple[Reason, ...] = (
    "unknown_pixel",
    "inactive_pixel",
    "pixel_paused",
    "duplicate_order_id",
    "no_eligible_touch",
    "repeat_limited",
)


@dataclass(frozen=True, slots=True)
class AttributedConversion:
    conversion_id: str
    pixel_id: int
    advertiser_id: int
    user_id: str
    conversion_timestamp: int
    attribution: Attribution
    touch_event_id: str
    touch_timestamp: int
    auction_id: str
    line_item_id: int
    creative_id: int
    campaign_id: int | None
    latency_ms: int
    value: float | None
    booked_revenue: float | None
    order_id: str | None
    other: str | None
    event_category: str | None
    source: Source = "pixel"


@dataclass(frozen=True, slots=True)
class UnattributedConversion:
    conversion_id: str
    pixel_id: int
    user_id: str
    conversion_timestamp: int
    reason: Reason
    source: Source = "pixel"


@dataclass(frozen=True, slots=True)
class PiggybackFire:
    fire_id: str
    conversion_id: str
    pixel_id: int
    pixel_type: str
    url: str
    index: int
    user_id: str
    conversion_timestamp: int


Outcome = AttributedConversion | UnattributedConversion
Output = AttributedConversion | UnattributedConversion | PiggybackFire
