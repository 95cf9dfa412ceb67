"""A catalogue of attribution scenarios, each with its hand-computed expected outcome.

Each scenario class lives in its own corner of the id space (advertiser, pixels, line items and
users are all offset by the scenario's number), so all of them can run together through one
pipeline and still mean exactly what they meant alone. Used by the replay tests (expected outcomes)
and the integration tests (stream outputs = replay outputs on the same records).

Entries are in the replay file format: {"topic", "value", optional "key"}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers import click_json, conversion_json, impression_json, line_item_json, pixel_json

T0 = 1_700_000_000_000
MIN = 60_000
DAY = 1_440 * MIN

Entry = dict[str, Any]


@dataclass
class Scenario:
    name: str
    n: int
    entries: list[Entry] = field(default_factory=list)
    #: conversion_id -> "post_click:<touch id>" | "post_view:<touch id>" | "<reason>"; None for
    #: a conversion that must have no outcome of its own (a duplicate)
    expected: dict[str, str] = field(default_factory=dict)
    dead_letters: list[tuple[str, str]] = field(default_factory=list)  # (topic, code)
    fires: set[str] = field(default_factory=set)

    @property
    def adv(self) -> int:
        return 1000 + self.n

    def pid(self, i: int = 0) -> int:
        return 100 * self.n + i + 1

    def li(self, i: int = 0) -> int:
        return 100 * self.n + 50 + i

    def user(self, u: str = "a") -> str:
        return f"s{self.n}-{u}"

    def pixel(self, i: int = 0, **kw: Any) -> None:
        value = pixel_json(id=self.pid(i), advertiser_id=self.adv, name=f"{self.name} {i}", **kw)
        self.entries.append({"topic": "pixels", "value": value})

    def line_item(self, i: int = 0, pixels: list[dict[str, Any]] | None = None, **kw: Any) -> None:
        links = [{"id": self.pid(0)}] if pixels is None else pixels
        value = line_item_json(id=self.li(i), advertiser_id=self.adv, pixels=links, **kw)
        self.entries.append({"topic": "line-items", "value": value})

    def touch(self, kind: str, eid: str, at: int, user: str = "a", li: int = 0, **kw: Any) -> None:
        build = impression_json if kind == "imp" else click_json
        value = build(
            event_id=f"s{self.n}-{eid}",
            user_id=self.user(user),
            timestamp=T0 + at,
            advertiser_id=kw.pop("advertiser_id", self.adv),
            line_item_id=self.li(li),
            auction_id=f"auction-{eid}",
            **kw,
        )
        self.entries.append({"topic": "impressions" if kind == "imp" else "clicks", "value": value})

    def conversion(self, eid: str, at: int, expect: str | None, user: str = "a", pixel: int = 0, **kw: Any) -> None:
        cid = f"s{self.n}-{eid}"
        value = conversion_json(
            event_id=cid, pixel_id=kw.pop("pixel_id", self.pid(pixel)), user_id=self.user(user), timestamp=T0 + at, **kw
        )
        self.entries.append({"topic": "conversions", "value": value})
        if expect is not None:
            self.expected[cid] = expect.replace("@", f"s{self.n}-")

    def raw(self, topic: str, value: Any, code: str, key: Any = "k") -> None:
        self.entries.append({"topic": topic, "key": key, "value": value})
        self.dead_letters.append((topic, code))


def _basic(s: Scenario) -> None:
    s.pixel()
    s.line_item()


def post_click(s: Scenario) -> None:
    _basic(s)
    s.touch("imp", "i1", 0)
    s.touch("click", "c1", 1_000)
    s.conversion("v1", 5_000, "post_click:@c1")


def post_view(s: Scenario) -> None:
    _basic(s)
    s.touch("imp", "i1", 0)
    s.conversion("v1", 5_000, "post_view:@i1")


def hybrid_prefers_an_older_click(s: Scenario) -> None:
    _basic(s)
    s.touch("click", "c1", 0)
    s.touch("imp", "i1", 3_000)
    s.conversion("v1", 5_000, "post_click:@c1")


def view_trigger_ignores_clicks(s: Scenario) -> None:
    s.pixel(trigger_type="view")
    s.line_item()
    s.touch("imp", "i1", 0)
    s.touch("click", "c1", 1_000)
    s.conversion("v1", 5_000, "post_view:@i1")
    s.touch("click", "c2", 0, user="b")
    s.conversion("v2", 5_000, "no_eligible_touch", user="b")


def click_trigger_ignores_impressions(s: Scenario) -> None:
    s.pixel(trigger_type="click")
    s.line_item()
    s.touch("imp", "i1", 0)
    s.conversion("v1", 5_000, "no_eligible_touch")


def window_edges_are_inclusive(s: Scenario) -> None:
    s.pixel(post_view_expire_mins=60, post_click_expire_mins=120)
    s.line_item()
    s.touch("imp", "i1", 0)
    s.conversion("v1", 60 * MIN, "post_view:@i1")
    s.touch("imp", "i2", 0, user="b")
    s.conversion("v2", 60 * MIN + 1, "no_eligible_touch", user="b")
    s.touch("click", "c3", 0, user="c")
    s.conversion("v3", 120 * MIN, "post_click:@c3", user="c")


def expiration_off_means_the_maximum(s: Scenario) -> None:
    s.pixel(post_view_expire_mins=None, post_click_expire_mins=0)
    s.line_item()
    s.touch("imp", "i1", 0)
    s.conversion("v1", 30 * DAY, "post_view:@i1")
    s.touch("imp", "i2", 0, user="b")
    s.conversion("v2", 30 * DAY + 1, "no_eligible_touch", user="b")


def equal_timestamps_the_later_processed_touch_wins(s: Scenario) -> None:
    _basic(s)
    s.touch("imp", "i1", 1_000)
    s.touch("imp", "i2", 1_000)
    s.conversion("v1", 1_000, "post_view:@i2")


def touches_after_the_conversion_or_of_another_advertiser_are_not_eligible(s: Scenario) -> None:
    _basic(s)
    s.touch("click", "c1", 0, advertiser_id=9999)
    s.conversion("v1", 5_000, "no_eligible_touch")
    s.touch("click", "c2", 6_000)


def unknown_inactive_and_paused_pixels(s: Scenario) -> None:
    pb = [{"pixel_type": "img", "url": "https://pb.example/x"}]
    s.pixel(0, state="inactive", piggyback_pixels=pb)
    s.pixel(1, piggyback_pixels=pb)  # carried by no line item: paused
    s.line_item(0)
    s.touch("click", "c1", 0)
    s.conversion("v1", 5_000, "inactive_pixel")
    s.conversion("v2", 6_000, "pixel_paused", pixel=1)
    s.conversion("v3", 7_000, "unknown_pixel", pixel_id=99_999_999)
    s.fires.add("s{n}-v2:0")


def inactive_line_items_and_links_do_not_carry(s: Scenario) -> None:
    s.pixel(0)
    s.pixel(1)
    s.line_item(0, state="inactive")
    s.line_item(1, pixels=[{"id": s.pid(1), "state": "inactive"}, {"id": s.pid(0)}])
    s.touch("click", "c1", 0, li=0)
    s.conversion("v1", 5_000, "no_eligible_touch")
    s.conversion("v2", 6_000, "pixel_paused", pixel=1)


def repeat_rule_one_per_user(s: Scenario) -> None:
    _basic(s)
    s.touch("click", "c1", 0)
    s.conversion("v1", 1_000, "post_click:@c1")
    s.conversion("v2", 2_000, "repeat_limited")


def repeat_rule_all(s: Scenario) -> None:
    s.pixel(min_minutes_per_conv=0)
    s.line_item()
    s.touch("click", "c1", 0)
    s.conversion("v1", 1_000, "post_click:@c1")
    s.conversion("v2", 2_000, "post_click:@c1")


def repeat_rule_every_n_minutes(s: Scenario) -> None:
    s.pixel(min_minutes_per_conv=10)
    s.line_item()
    s.touch("click", "c1", 0)
    s.conversion("v1", 1_000, "post_click:@c1")
    s.conversion("v2", 1_000 + 10 * MIN - 1, "repeat_limited")
    s.conversion("v3", 1_000 + 10 * MIN, "post_click:@c1")


def duplicates_get_one_outcome(s: Scenario) -> None:
    _basic(s)
    s.touch("click", "c1", 0)
    s.conversion("v1", 1_000, "post_click:@c1")
    s.conversion("v1", 2_000, None)  # the same event_id again, later


def only_auction_won_impressions_are_touches(s: Scenario) -> None:
    _basic(s)
    s.touch("imp", "i1", 0, imp_type=5)
    s.touch("imp", "i2", 1_000, imp_type=3)
    s.conversion("v1", 5_000, "post_view:@i1")


def values_and_revenue(s: Scenario) -> None:
    s.pixel(post_click_value=20.0, post_view_value=2.0, event_category="purchase")
    s.line_item(pixels=[{"id": s.pid(0), "post_click_revenue": 1.5, "post_view_revenue": 0.25}])
    s.touch("click", "c1", 0)
    s.conversion("v1", 1_000, "post_click:@c1", order_id="o-1", other="x")
    s.touch("imp", "i2", 0, user="b")
    s.conversion("v2", 1_000, "post_view:@i2", user="b", value=99.5)


def js_piggybacks_fire_in_order(s: Scenario) -> None:
    urls = [{"pixel_type": "js", "url": f"https://pb.example/{i}.js"} for i in range(3)]
    s.pixel(pixel_type="js", piggyback_pixels=urls)
    s.line_item()
    s.conversion("v1", 1_000, "no_eligible_touch")
    s.fires.update({"s{n}-v1:0", "s{n}-v1:1", "s{n}-v1:2"})


def mis_keyed_records_are_processed_as_their_user(s: Scenario) -> None:
    _basic(s)
    s.touch("click", "c1", 0)
    s.entries[-1]["key"] = "not-the-user"
    s.conversion("v1", 1_000, "post_click:@c1")
    s.entries[-1]["key"] = None


def an_invalid_pixel_update_keeps_the_previous_version(s: Scenario) -> None:
    _basic(s)
    s.raw(
        "pixels",
        {"id": s.pid(0), "advertiser_id": s.adv, "name": "x", "post_view_expire_mins": 43_201},
        "invalid_pixel",
        key=str(s.pid(0)),
    )
    s.touch("imp", "i1", 0)
    s.conversion("v1", 1_000, "post_view:@i1")


def a_deleted_pixel_is_unknown(s: Scenario) -> None:
    _basic(s)
    s.entries.append({"topic": "pixels", "key": str(s.pid(0)), "value": None})
    s.conversion("v1", 1_000, "unknown_pixel")


def bad_records_become_dead_letters(s: Scenario) -> None:
    _basic(s)
    s.raw("impressions", "{not json", "invalid_json")
    s.raw("clicks", [1, 2], "not_an_object")
    s.raw(
        "conversions", {"event_id": "x", "pixel_id": s.pid(0), "user_id": "u", "timestamp": "soon"}, "schema_violation"
    )
    s.raw(
        "line-items",
        {"id": s.li(3), "advertiser_id": s.adv, "pixels": [{"id": 1}] * 21},
        "invalid_line_item",
        key=str(s.li(3)),
    )
    s.touch("click", "c1", 0)
    s.conversion("v1", 1_000, "post_click:@c1")


SCENARIOS: list[Callable[[Scenario], None]] = [
    post_click,
    post_view,
    hybrid_prefers_an_older_click,
    view_trigger_ignores_clicks,
    click_trigger_ignores_impressions,
    window_edges_are_inclusive,
    expiration_off_means_the_maximum,
    equal_timestamps_the_later_processed_touch_wins,
    touches_after_the_conversion_or_of_another_advertiser_are_not_eligible,
    unknown_inactive_and_paused_pixels,
    inactive_line_items_and_links_do_not_carry,
    repeat_rule_one_per_user,
    repeat_rule_all,
    repeat_rule_every_n_minutes,
    duplicates_get_one_outcome,
    only_auction_won_impressions_are_touches,
    values_and_revenue,
    js_piggybacks_fire_in_order,
    mis_keyed_records_are_processed_as_their_user,
    an_invalid_pixel_update_keeps_the_previous_version,
    a_deleted_pixel_is_unknown,
    bad_records_become_dead_letters,
]


def build(fn: Callable[[Scenario], None], n: int) -> Scenario:
    s = Scenario(fn.__name__, n)
    fn(s)
    s.fires = {f.format(n=n) for f in s.fires}
    return s


def all_scenarios() -> list[Scenario]:
    return [build(fn, n) for n, fn in enumerate(SCENARIOS, 1)]


def in_stream_order(entries: list[Entry]) -> list[Entry]:
    """Config first (file order), then events by timestamp, touches before conversions at equal
    timestamps, file order otherwise: the order `replay` judges in, and an order in which each
    partition of each topic is in timestamp order when produced."""
    config = [e for e in entries if e["topic"] in ("pixels", "line-items")]
    events = [e for e in entries if e["topic"] not in ("pixels", "line-items")]

    def key(item: tuple[int, Entry]) -> tuple[int, int, int]:
        i, e = item
        v = e["value"]
        ts = v.get("timestamp", 0) if isinstance(v, dict) and isinstance(v.get("timestamp"), int) else 0
        return ts, 1 if e["topic"] == "conversions" else 0, i

    return config + [e for _, e in sorted(enumerate(events), key=key)]
