"""Per-user state to bytes and back: the value of the state table and its changelog.

Compact JSON arrays, not objects, because this is the bulk of the changelog and of memory:
`[version, expires, partition, watermark, touches, counted, processed, orders, tied, held]`, a
touch being
`[kind (0 impression, 1 click), event_id, timestamp, advertiser_id, line_item_id, creative_id,
auction_id, campaign_id, imp_type]`, an order `[pixel_id, order_id, timestamp]`, a tied touch
`[kind (0/1), event_id, timestamp]` (`UserState.tied`). A held conversion
is `[event_id, pixel_id, timestamp, value, order_id, other, tag, auction_id]` (auction_id null but
for a server-side conversion). The user id is the table key and is not repeated inside.

`expires` is at or before the state's `domain.state.latest_use` when it was written (the event
time after which nothing in it but held conversions can change an answer; the stream writes
`latest_use_floor`, which does not walk the touches) and `partition` the input partition the
state belongs to (its changelog partition); they come first so that the expiry index reads them
from the bytes without decoding (`read_index`). Older states are still read: version 3 (no tied
touches), version 2 (no orders, held conversions without auction_id) and version 1 (no expires nor
partition either).

Size: with the default `Limits` and no held conversions, the largest state the record schemas
allow encodes to at most `MAX_STATE_BYTES` (a unit test builds it through the engine's own
pruning): 128 touches at or before the horizon and as many after it as `Limits.ahead_bytes`
allows, whose ids are 128 characters that JSON escapes to 6 bytes each, 256 such dedup ids and 128
repeat counters, 128 order ids of 36 such characters, 8 tied touches (`MAX_TIED`), with every integer at its widest. What is left of the 1 MiB record limit of the
changelog holds a user's held conversions (at most 150, under 2 KB each at their widest, a server-side one's auction id included). A typical full state (36-character ids) is about 40 KB; most are under 1 KB.
"""

from __future__ import annotations

from typing import Any

import orjson

from attribution.contract.codec import shared_ids
from attribution.domain import Conversion, Touch, UserState
from attribution.domain.records import TouchKind

VERSION = 4
#: The largest encoded state without held conversions under the default limits (see above).
MAX_STATE_BYTES = 740_000
_KINDS: tuple[TouchKind, TouchKind] = ("impression", "click")
_INDEXED = (b"[2,", b"[3,", b"[4,")  # versions that carry expires and partition


def encode_state(state: UserState, expires: int = 0, partition: int = 0) -> bytes:
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
    held = [
        [c.event_id, c.pixel_id, c.timestamp, c.value, c.order_id, c.other, tag, c.auction_id] for c, tag in state.held
    ]
    tied = [[1 if k == "click" else 0, e, ts] for k, e, ts in state.tied]
    return orjson.dumps(
        [
            VERSION,
            expires,
            partition,
            state.watermark,
            touches,
            state.counted,
            state.processed,
            state.orders,
            tied,
            held,
        ]
    )


def has_held(raw: bytes | None) -> bool:
    """Cheap check, without decoding, for held conversions in an encoded state."""
    return bool(raw) and not raw.endswith(b",[]]")  # type: ignore[union-attr]


def read_index(raw: bytes) -> tuple[int, int] | tuple[None, None]:
    """`(expires, partition)` of an encoded state, without decoding it; Nones for version 1."""
    if not raw.startswith(_INDEXED):
        return None, None
    i = raw.index(b",", 3)
    j = raw.index(b",", i + 1)
    return int(raw[3:i]), int(raw[i + 1 : j])


def decode_state(user_id: str, raw: bytes | None) -> UserState:
    """Inverse of `encode_state`; None (no state yet) is the empty state."""
    if not raw:
        return UserState()
    data: list[Any] = orjson.loads(raw)
    version = data[0]
    orders: list[Any] = []
    tied: list[Any] = []
    if version == VERSION:
        watermark, touches, counted, processed, orders, tied, held = data[3:10]
    elif version == 3:
        watermark, touches, counted, processed, orders, held = data[3:9]
    elif version == 2:
        watermark, touches, counted, processed, held = data[3:8]
    elif version == 1:
        watermark, touches, counted, processed = data[1:5]
        held = data[5] if len(data) > 5 else []  # states written before holding existed
    else:
        raise ValueError(f"state of user {user_id!r}: unknown version {version}")
    share = shared_ids().setdefault
    return UserState(
        tuple(
            Touch(_KINDS[k], e, user_id, ts, share(a, a), share(li, li), share(c, c), au, share(ca, ca), it)
            for k, e, ts, a, li, c, au, ca, it in touches
        ),
        tuple((p, ts) for p, ts in counted),
        tuple((e, ts) for e, ts in processed),
        watermark,
        tuple((_held(user_id, h), h[6]) for h in held),
        tuple((p, o, ts) for p, o, ts in orders),
        tuple((_KINDS[k], e, ts) for k, e, ts in tied),
    )


def _held(user_id: str, h: list[Any]) -> Conversion:
    """A held conversion; those of version 2 and 1 have no auction_id (they came with a user id)."""
    return Conversion(h[0], h[1], user_id, h[2], h[3], h[4], h[5], h[7] if len(h) > 7 else None)
