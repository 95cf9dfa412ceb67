"""Per-user state to bytes and back: the value of the state table and its changelog.

Compact JSON arrays, not objects, because this is the bulk of the changelog and of memory:
`[version, watermark, touches, counted, processed, held]`, a touch being
`[kind (0 impression, 1 click), event_id, timestamp, advertiser_id, line_item_id, creative_id,
auction_id, campaign_id, imp_type]`. A held conversion is `[event_id, pixel_id, timestamp, value, order_id, other, tag]`. The user
id is the table key and is not repeated inside.
"""

from __future__ import annotations

from typing import Any

import orjson

from attribution.domain import Conversion, Touch, UserState
from attribution.domain.records import TouchKind

VERSION = 1
_KINDS: tuple[TouchKind, TouchKind] = ("impression", "click")


def encode_state(state: UserState) -> bytes:
    touches = [
        [
            1 if t.kind == "click" else 0,
            t.event_id,
            t.timestamp,
            t.advertiser_id,
            t.line_item_id,
            t.creative_id,
            t.auction_id,
            t.campaign_id,
            t.imp_type,
        ]
        for t in state.touches
    ]
    held = [[c.event_id, c.pixel_id, c.timestamp, c.value, c.order_id, c.other, tag] for c, tag in state.held]
    return orjson.dumps([VERSION, state.watermark, touches, state.counted, state.processed, held])


def has_held(raw: bytes | None) -> bool:
    """Cheap check, without decoding, for held conversions in an encoded state."""
    return bool(raw) and not raw.endswith(b",[]]")  # type: ignore[union-attr]


def decode_state(user_id: str, raw: bytes | None) -> UserState:
    """Inverse of `encode_state`; None (no state yet) is the empty state."""
    if not raw:
        return UserState()
    data: list[Any] = orjson.loads(raw)
    version, watermark, touches, counted, processed = data[:5]
    held = data[5] if len(data) > 5 else []  # states written before holding existed
    if version != VERSION:
        raise ValueError(f"state of user {user_id!r}: unknown version {version}")
    return UserState(
        tuple(Touch(_KINDS[k], e, user_id, ts, a, li, c, au, ca, it) for k, e, ts, a, li, c, au, ca, it in touches),
        tuple((p, ts) for p, ts in counted),
        tuple((e, ts) for e, ts in processed),
        watermark,
        tuple((Conversion(e, p, user_id, ts, v, o, x), tag) for e, p, ts, v, o, x, tag in held),
    )
