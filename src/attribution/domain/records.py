"""Input events of the engine: touches (impressions and clicks) and conversions.

All times are integers, milliseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TouchKind = Literal["impression", "click"]
Source = Literal["pixel", "server"]

#: imp_type values of impressions won in a real auction; only these are touches.
#: 5 kept, 7 RTB, 9 external impression, 10 external click, 11 insertion.
TOUCH_IMP_TYPES: frozenset[int] = frozenset({5, 7, 9, 10, 11})
DEFAULT_IMP_TYPE = 7


@dataclass(frozen=True, slots=True)
class Touch:
    """An impression or click a conversion can be credited to."""

    kind: TouchKind
    event_id: str
    user_id: str
    timestamp: int
    advertiser_id: int
    line_item_id: int
    creative_id: int
    auction_id: str
    campaign_id: int | None = None
    imp_type: int = DEFAULT_IMP_TYPE

    @property
    def is_touch(self) -> bool:
        """Clicks always; impressions only when won in a real auction (see TOUCH_IMP_TYPES)."""
        return self.kind == "click" or self.imp_type in TOUCH_IMP_TYPES


@dataclass(frozen=True, slots=True)
class Conversion:
    """A conversion pixel fire. `value` is dynamic revenue (>= 0) when the page sent one.

    `auction_id` is set on a server-side conversion only: the auction its verified token names
    (the user id is the token's too); only touches of that auction can be credited."""

    event_id: str
    pixel_id: int
    user_id: str
    timestamp: int
    value: float | None = None
    order_id: str | None = None
    other: str | None = None
    auction_id: str | None = None

    @property
    def source(self) -> Source:
        """`server` for a conversion sent with an auction token, `pixel` otherwise."""
        return "pixel" if self.auction_id is None else "server"


Event = Touch | Conversion
