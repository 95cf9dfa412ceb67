"""A corpus of hostile records for every input and config topic, with the dead-letter code each
must produce. Shared by the unit tier (the processor) and the integration tier (a real worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from helpers import conversion_json, impression_json, line_item_json, pixel_json

T = 1_767_225_600_000


@dataclass(frozen=True)
class Hostile:
    name: str
    topic: str
    key: bytes | None
    value: bytes | None
    code: str  # the dead letter's error code


def _j(value: Any) -> bytes:
    return orjson.dumps(value)


IMPRESSION = impression_json(
    event_id="e-1", user_id="u-1", timestamp=T, advertiser_id=1, line_item_id=2, creative_id=3, auction_id="a-1"
)
CLICK = dict(IMPRESSION)
CONVERSION = conversion_json(event_id="v-1", pixel_id=1, user_id="u-1", timestamp=T)
PIXEL = pixel_json(id=1, advertiser_id=1, name="pixel")
LINE_ITEM = line_item_json(id=2, advertiser_id=1, pixels=[{"id": 1}])

_EVENTS = {"impressions": IMPRESSION, "clicks": CLICK, "conversions": CONVERSION}


def _event_cases(topic: str, good: dict[str, Any]) -> list[Hostile]:
    k = b"u-1"

    def without(field: str) -> bytes:
        return _j({f: v for f, v in good.items() if f != field})

    def with_(**kw: Any) -> bytes:
        return _j({**good, **kw})

    return [
        Hostile(f"{topic}: invalid UTF-8", topic, k, b'{"event_id": "\xff\xfe"}', "invalid_utf8"),
        Hostile(f"{topic}: invalid JSON", topic, k, b'{"event_id": ', "invalid_json"),
        Hostile(f"{topic}: trailing garbage", topic, k, _j(good) + b"}", "invalid_json"),
        Hostile(f"{topic}: empty value", topic, k, b"", "invalid_json"),
        Hostile(f"{topic}: a JSON array", topic, k, b"[1, 2, 3]", "not_an_object"),
        Hostile(f"{topic}: a JSON string", topic, k, b'"hello"', "not_an_object"),
        Hostile(f"{topic}: JSON null", topic, k, b"null", "not_an_object"),
        Hostile(f"{topic}: a tombstone", topic, k, None, "not_an_object"),
        Hostile(f"{topic}: missing user_id", topic, k, without("user_id"), "schema_violation"),
        Hostile(f"{topic}: missing timestamp", topic, k, without("timestamp"), "schema_violation"),
        Hostile(f"{topic}: user_id is a number", topic, k, with_(user_id=42), "schema_violation"),
        Hostile(f"{topic}: timestamp is a string", topic, k, with_(timestamp="2026-01-01"), "schema_violation"),
        Hostile(f"{topic}: timestamp is a boolean", topic, k, with_(timestamp=True), "schema_violation"),
        Hostile(f"{topic}: negative timestamp", topic, k, with_(timestamp=-1), "schema_violation"),
        Hostile(
            f"{topic}: timestamp in the year 2500", topic, k, with_(timestamp=16_725_225_600_000), "schema_violation"
        ),
        Hostile(
            f"{topic}: timestamp beyond 64 bits",
            topic,
            k,
            with_(timestamp=0).replace(b'"timestamp":0', b'"timestamp":' + str(2**64).encode()),
            "schema_violation",
        ),
        Hostile(f"{topic}: huge user_id", topic, k, with_(user_id="u" * 200_000), "schema_violation"),
        Hostile(f"{topic}: empty event_id", topic, k, with_(event_id=""), "schema_violation"),
        Hostile(f"{topic}: deeply nested", topic, k, b"[" * 5000 + b"]" * 5000, "invalid_json"),
        Hostile(f"{topic}: over 1 MiB", topic, k, with_(pad="x" * 1_100_000), "record_too_large"),
    ]


def corpus() -> list[Hostile]:
    cases: list[Hostile] = []
    for topic, good in _EVENTS.items():
        cases += _event_cases(topic, good)
    cases += [
        Hostile(
            "conversions: negative value", "conversions", b"u-1", _j({**CONVERSION, "value": -1}), "schema_violation"
        ),
        Hostile(
            "conversions: order_id of 37 chars",
            "conversions",
            b"u-1",
            _j({**CONVERSION, "order_id": "o" * 37}),
            "schema_violation",
        ),
        Hostile(
            "conversions: other of 31 chars",
            "conversions",
            b"u-1",
            _j({**CONVERSION, "other": "x" * 31}),
            "schema_violation",
        ),
        Hostile(
            "conversions: a token that does not verify",
            "conversions",
            b"mmp",
            _j({**{k: v for k, v in CONVERSION.items() if k != "user_id"}, "token": "AQJrMQABdQABYQ" + "A" * 43}),
            "invalid_token",
        ),
        Hostile(
            "conversions: a huge token",
            "conversions",
            b"u-1",
            _j({**CONVERSION, "token": "A" * 200_000}),
            "invalid_token",
        ),
        Hostile(
            "conversions: token is a number", "conversions", b"u-1", _j({**CONVERSION, "token": 7}), "schema_violation"
        ),
        Hostile(
            "conversions: neither user_id nor token",
            "conversions",
            b"u-1",
            _j({k: v for k, v in CONVERSION.items() if k != "user_id"}),
            "schema_violation",
        ),
        Hostile(
            "impressions: imp_type is a string",
            "impressions",
            b"u-1",
            _j({**IMPRESSION, "imp_type": "rtb"}),
            "schema_violation",
        ),
    ]
    pixel_rules: list[tuple[str, dict[str, Any]]] = [
        ("no name", {"name": None}),
        ("empty name", {"name": ""}),
        ("id 0", {"id": 0}),
        ("bad state", {"state": "paused"}),
        ("bad trigger type", {"trigger_type": "last_touch"}),
        ("post-view window over 30 days", {"post_view_expire_mins": 43_201}),
        ("post-click window over 90 days", {"post_click_expire_mins": 129_601}),
        ("negative window", {"post_view_expire_mins": -5}),
        ("repeat every 32768 minutes", {"min_minutes_per_conv": 32_768}),
        ("negative value", {"post_click_value": -1}),
        ("unknown event category", {"event_category": "signup"}),
        ("bad pixel type", {"pixel_type": "gif"}),
        (
            "two piggybacks on an img pixel",
            {"piggyback_pixels": [{"pixel_type": "img", "url": "https://a.example/1"}] * 2},
        ),
        ("a js piggyback on an img pixel", {"piggyback_pixels": [{"pixel_type": "js", "url": "https://a.example/1"}]}),
        (
            "an img piggyback on a js pixel",
            {"pixel_type": "js", "piggyback_pixels": [{"pixel_type": "img", "url": "https://a.example/1"}]},
        ),
        ("a relative piggyback url", {"piggyback_pixels": [{"pixel_type": "img", "url": "/pixel.gif"}]}),
        (
            "a piggyback url over 8192 chars",
            {"piggyback_pixels": [{"pixel_type": "img", "url": "https://a.example/" + "x" * 8200}]},
        ),
        ("an unknown field", {"post_view_expire_min": 60}),
    ]
    for name, change in pixel_rules:
        value = {f: v for f, v in {**PIXEL, **change}.items() if v is not None}
        cases.append(Hostile(f"pixels: {name}", "pixels", b"1", _j(value), "invalid_pixel"))
    cases += [
        Hostile("pixels: invalid JSON", "pixels", b"1", b"{", "invalid_json"),
        Hostile("pixels: a tombstone without a numeric key", "pixels", b"one", None, "invalid_key"),
        Hostile("pixels: a tombstone keyed 01, not 1", "pixels", b"01", None, "invalid_key"),
        Hostile("pixels: a valid pixel keyed by another id", "pixels", b"2", _j(PIXEL), "invalid_key"),
        Hostile("pixels: a valid pixel keyed by text", "pixels", b"zz1", _j(PIXEL), "invalid_key"),
        Hostile("line-items: a valid line item keyed by another id", "line-items", b"3", _j(LINE_ITEM), "invalid_key"),
        Hostile(
            "line-items: 21 pixels",
            "line-items",
            b"2",
            _j({**LINE_ITEM, "pixels": [{"id": i} for i in range(1, 22)]}),
            "invalid_line_item",
        ),
        Hostile(
            "line-items: bad link state",
            "line-items",
            b"2",
            _j({**LINE_ITEM, "pixels": [{"id": 1, "state": "on"}]}),
            "invalid_line_item",
        ),
        Hostile("line-items: not an object", "line-items", b"2", b"[]", "not_an_object"),
        Hostile(
            "line-items: one pixel linked twice with different revenues",
            "line-items",
            b"2",
            _j({**LINE_ITEM, "pixels": [{"id": 1, "post_click_revenue": 1}, {"id": 1, "post_click_revenue": 9}]}),
            "invalid_line_item",
        ),
    ]
    return cases
