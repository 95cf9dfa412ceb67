"""Pixel status (docs/design.md, Pixel status) and the domain constants, checked against the JSON Schemas themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attribution.domain import REASONS, TOUCH_IMP_TYPES, Config, LineItem, Pixel, PixelLink
from attribution.domain import config as domain_config
from attribution.domain.records import DEFAULT_IMP_TYPE
from helpers import OTHER_ADVERTISER, PIXEL, config, line_item, link, pixel

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def schema(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    return result


PIXEL_PROPS = schema("pixel")["properties"]
LINE_ITEM_PROPS = schema("line_item")["properties"]


# --- status -----------------------------------------------------------------------------------


def test_a_pixel_carried_by_an_active_line_item_in_an_active_link_is_active() -> None:
    assert config().status(PIXEL) == "active"


def test_an_inactive_pixel_is_inactive_even_when_carried_by_an_active_line_item() -> None:
    assert config(pixels=[pixel(state="inactive")]).status(PIXEL) == "inactive"


def test_an_inactive_pixel_carried_by_nothing_is_inactive_not_paused() -> None:
    assert config(pixels=[pixel(state="inactive")], line_items=[]).status(PIXEL) == "inactive"


@pytest.mark.parametrize(
    "items",
    [
        pytest.param([], id="no-line-item"),
        pytest.param([line_item(pixels=[])], id="line-item-without-the-pixel"),
        pytest.param([line_item(state="inactive")], id="inactive-line-item"),
        pytest.param([line_item(pixels=[link(state="inactive")])], id="inactive-link"),
        pytest.param([line_item(pixels=[link(id=2)])], id="line-item-with-another-pixel"),
    ],
)
def test_an_active_pixel_without_an_active_carrier_is_paused(items: list[LineItem]) -> None:
    assert config(line_items=items).status(PIXEL) == "paused"


def test_one_active_carrier_among_inactive_ones_makes_the_pixel_active() -> None:
    items = [line_item(state="inactive"), line_item(id=101, pixels=[link(state="inactive")]), line_item(id=102)]

    assert config(line_items=items).status(PIXEL) == "active"


def test_a_line_item_of_another_advertiser_still_counts_as_carrying_the_pixel() -> None:
    assert config(line_items=[line_item(advertiser_id=OTHER_ADVERTISER)]).status(PIXEL) == "active"


def test_the_status_of_an_unknown_pixel_is_none() -> None:
    assert config().status(12345) is None


def test_active_links_are_only_the_active_links_of_active_line_items_by_line_item_id() -> None:
    good = link(post_click_revenue=1.0)
    cfg = config(
        line_items=[
            line_item(id=100, pixels=[good]),
            line_item(id=101, state="inactive"),
            line_item(id=102, pixels=[link(state="inactive")]),
        ]
    )

    assert dict(cfg.active_links(PIXEL)) == {100: good}
    assert dict(cfg.active_links(999)) == {}


def test_config_of_keeps_the_last_of_two_objects_with_the_same_id() -> None:
    cfg = Config.of([pixel(name="old"), pixel(name="new")], [line_item(state="inactive"), line_item()])

    assert cfg.pixels[PIXEL].name == "new"
    assert cfg.status(PIXEL) == "active"


# --- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mins", "expected"), [(None, 43_200), (0, 43_200), (1, 1), (43_200, 43_200)])
def test_the_post_view_window_in_ms_treats_null_and_0_as_the_30_day_maximum(mins: int | None, expected: int) -> None:
    assert pixel(post_view_expire_mins=mins).post_view_window_ms == expected * 60_000


@pytest.mark.parametrize(("mins", "expected"), [(None, 129_600), (0, 129_600), (1, 1), (129_600, 129_600)])
def test_the_post_click_window_in_ms_treats_null_and_0_as_the_90_day_maximum(mins: int | None, expected: int) -> None:
    assert pixel(post_click_expire_mins=mins).post_click_window_ms == expected * 60_000


def test_the_longest_windows_are_30_and_90_days_in_ms() -> None:
    assert domain_config.LONGEST_VIEW_WINDOW_MS == 30 * 86_400_000
    assert domain_config.LONGEST_CLICK_WINDOW_MS == 90 * 86_400_000


# --- constants equal the schemas --------------------------------------------------------------


def test_the_maximum_post_view_window_equals_the_pixel_schemas() -> None:
    assert domain_config.MAX_POST_VIEW_EXPIRE_MINS == PIXEL_PROPS["post_view_expire_mins"]["maximum"] == 43_200


def test_the_maximum_post_click_window_equals_the_pixel_schemas() -> None:
    assert domain_config.MAX_POST_CLICK_EXPIRE_MINS == PIXEL_PROPS["post_click_expire_mins"]["maximum"] == 129_600


def test_the_maximum_repeat_interval_equals_the_pixel_schemas() -> None:
    assert domain_config.MAX_MIN_MINUTES_PER_CONV == PIXEL_PROPS["min_minutes_per_conv"]["maximum"] == 32_767


@pytest.mark.parametrize("field", ["post_view_expire_mins", "post_click_expire_mins", "min_minutes_per_conv"])
def test_the_minutes_fields_accept_0_and_null_in_the_schema(field: str) -> None:
    assert PIXEL_PROPS[field]["minimum"] == 0
    assert set(PIXEL_PROPS[field]["type"]) == {"integer", "null"}


def test_the_default_windows_equal_the_pixel_schemas() -> None:
    assert domain_config.DEFAULT_POST_VIEW_EXPIRE_MINS == PIXEL_PROPS["post_view_expire_mins"]["default"] == 1_440
    assert domain_config.DEFAULT_POST_CLICK_EXPIRE_MINS == PIXEL_PROPS["post_click_expire_mins"]["default"] == 20_160


@pytest.mark.parametrize(
    "field", ["state", "trigger_type", "post_view_expire_mins", "post_click_expire_mins", "min_minutes_per_conv",
              "event_category", "pixel_type"]
)  # fmt: skip
def test_every_pixel_dataclass_default_equals_the_schema_default(field: str) -> None:
    bare = Pixel(id=1, advertiser_id=1, name="x")

    assert getattr(bare, field) == PIXEL_PROPS[field]["default"]


def test_the_piggyback_default_is_an_empty_list_in_both() -> None:
    assert PIXEL_PROPS["piggyback_pixels"]["default"] == []
    assert Pixel(id=1, advertiser_id=1, name="x").piggyback_pixels == ()


def test_the_event_categories_equal_the_pixel_schemas_enum_without_null() -> None:
    enum = PIXEL_PROPS["event_category"]["enum"]

    assert enum[0] is None
    assert tuple(enum[1:]) == domain_config.EVENT_CATEGORIES


def test_the_event_categories_of_the_attributed_conversion_schema_are_the_same() -> None:
    enum = schema("attributed_conversion")["properties"]["event_category"]["enum"]

    assert enum == PIXEL_PROPS["event_category"]["enum"]


def test_the_pixel_state_trigger_and_type_enums_equal_the_domain_literals() -> None:
    assert PIXEL_PROPS["state"]["enum"] == list(domain_config.State.__args__)
    assert PIXEL_PROPS["trigger_type"]["enum"] == list(domain_config.TriggerType.__args__)
    assert PIXEL_PROPS["pixel_type"]["enum"] == list(domain_config.PixelType.__args__)


def test_the_maximum_pixels_per_line_item_equals_the_line_item_schemas() -> None:
    assert domain_config.MAX_PIXELS_PER_LINE_ITEM == LINE_ITEM_PROPS["pixels"]["maxItems"] == 20


def test_line_item_and_link_state_defaults_equal_the_schema() -> None:
    assert LineItem(id=1, advertiser_id=1).state == LINE_ITEM_PROPS["state"]["default"] == "active"
    assert PixelLink(id=1).state == LINE_ITEM_PROPS["pixels"]["items"]["properties"]["state"]["default"] == "active"


def test_the_default_imp_type_equals_the_impression_schemas() -> None:
    assert DEFAULT_IMP_TYPE == schema("impression")["properties"]["imp_type"]["default"] == 7


def test_the_touch_imp_types_are_the_real_auction_ones_the_impression_schema_documents() -> None:
    assert frozenset({5, 7, 9, 10, 11}) == TOUCH_IMP_TYPES
    assert "5, 7, 9, 10, 11" in schema("impression")["description"]


def test_the_unattributed_reasons_equal_the_schemas_enum_in_rule_order() -> None:
    assert list(REASONS) == schema("unattributed_conversion")["properties"]["reason"]["enum"]
    assert list(REASONS) == [
        "unknown_pixel",
        "inactive_pixel",
        "pixel_paused",
        "duplicate_order_id",
        "no_eligible_touch",
        "repeat_limited",
    ]
