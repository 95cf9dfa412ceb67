"""The config use cases over an in-memory store: every check once, for every adapter."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from attribution.app.config import LINE_ITEMS, PIXELS, ConfigService, MemoryStore, fold
from attribution.contract import config_id
from attribution.errors import ConfigError, Conflict, Invalid, NotFound, Refused
from helpers import line_item_json, pixel_json


def pixel(ident: int = 1, advertiser: int = 10, **fields: Any) -> dict[str, Any]:
    return pixel_json(id=ident, advertiser_id=advertiser, **{"name": f"pixel {ident}", **fields})


def line_item(ident: int = 5, advertiser: int = 10, pixels: tuple[int, ...] = (1,), **fields: Any) -> dict[str, Any]:
    return line_item_json(id=ident, advertiser_id=advertiser, pixels=[{"id": p} for p in pixels], **fields)


def service() -> tuple[ConfigService, MemoryStore]:
    store = MemoryStore()
    return ConfigService(store), store


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def refusal(coro: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        run(coro)
    return info.value


def test_a_line_item_naming_an_unknown_pixel_is_refused_and_nothing_is_published() -> None:
    svc, store = service()

    error = refusal(svc.put(LINE_ITEMS, [line_item(pixels=(9,))]))

    assert isinstance(error, Conflict)
    assert (error.code, error.field, error.extra) == ("unknown_pixel", "pixels.0.id", {"pixels": [9]})
    assert error.message == "pixels.0.id: pixel 9 does not exist: create it first"
    assert store.published == []


def test_a_line_item_carrying_a_pixel_of_another_advertiser_is_refused() -> None:
    svc, _ = service()
    run(svc.put(PIXELS, [pixel(1, advertiser=11)]))

    error = refusal(svc.put(LINE_ITEMS, [line_item(advertiser=10)]))

    assert (error.code, error.extra) == ("advertiser_mismatch", {"pixels": [1]})


def test_a_pixel_moved_to_another_advertiser_while_carried_is_refused() -> None:
    svc, _ = service()
    run(svc.put(PIXELS, [pixel(1)]))
    run(svc.put(LINE_ITEMS, [line_item()]))

    error = refusal(svc.put(PIXELS, [pixel(1, advertiser=12)]))

    assert (error.code, error.field, error.extra) == ("advertiser_mismatch", "advertiser_id", {"line_items": [5]})


def test_a_pixel_linked_twice_is_refused_by_the_contract() -> None:
    svc, _ = service()
    run(svc.put(PIXELS, [pixel(1)]))

    error = refusal(svc.put(LINE_ITEMS, [line_item(pixels=(1, 1))]))

    assert isinstance(error, Invalid)
    assert error.code == "invalid_line_item"
    assert "linked twice" in error.message


def test_a_pixel_in_use_is_not_deleted_unless_forced() -> None:
    svc, store = service()
    run(svc.put(PIXELS, [pixel(1)]))
    run(svc.put(LINE_ITEMS, [line_item()]))

    error = refusal(svc.delete(PIXELS, 1))
    assert (error.code, error.extra) == ("pixel_in_use", {"line_items": [5]})
    assert error.message == "pixel 1 is still carried by line item 5: remove it from them first"

    forced = run(svc.delete(PIXELS, 1, force=True))
    assert forced.carriers == [5]
    assert 1 not in forced.config.pixels
    assert store.published[-1] == ("pixels", 1, None)


def test_deleting_the_only_active_carrier_names_the_pixel_it_pauses() -> None:
    svc, _ = service()
    run(svc.put(PIXELS, [pixel(1)]))
    run(svc.put(LINE_ITEMS, [line_item()]))

    assert run(svc.delete(LINE_ITEMS, 5)).paused == [1]


def test_an_unknown_id_is_not_found() -> None:
    svc, _ = service()
    assert isinstance(refusal(svc.delete(LINE_ITEMS, 5)), NotFound)
    assert isinstance(refusal(svc.get(PIXELS, 1)), NotFound)


def test_create_refuses_an_existing_id_and_replace_needs_the_path_id() -> None:
    svc, _ = service()
    run(svc.put(PIXELS, [pixel(1)], "create"))

    assert refusal(svc.put(PIXELS, [pixel(1)], "create")).code == "already_exists"
    assert refusal(svc.put(PIXELS, [pixel(2)], "replace", 1)).code == "invalid_pixel"
    assert isinstance(refusal(svc.put(PIXELS, [pixel(3)], "replace", 3)), NotFound)


def test_a_write_of_several_records_is_all_or_nothing_and_names_each_refusal() -> None:
    svc, store = service()
    run(svc.put(PIXELS, [pixel(1)]))
    published = len(store.published)

    error = refusal(svc.put(LINE_ITEMS, [line_item(5), line_item(6, pixels=(8,)), line_item(7, pixels=(9,))]))

    assert isinstance(error, Refused)
    assert [(name, e.code) for name, e in error.errors] == [
        ("line item 6", "unknown_pixel"),
        ("line item 7", "unknown_pixel"),
    ]
    assert len(store.published) == published


def test_records_of_one_write_see_the_records_before_them() -> None:
    svc, _ = service()
    run(svc.put(PIXELS, [pixel(1)]))
    run(svc.put(LINE_ITEMS, [line_item()]))

    # Moving pixel 1 to advertiser 12 is refused while line item 5 of advertiser 10 carries it.
    error = refusal(svc.put(PIXELS, [pixel(2), pixel(1, advertiser=12)]))

    assert isinstance(error, Refused)
    assert [name for name, _ in error.errors] == ["pixel 1"]


def test_list_is_by_id_and_filters_by_advertiser() -> None:
    svc, _ = service()
    run(svc.put(PIXELS, [pixel(3), pixel(1), pixel(2, advertiser=11)]))

    items, _ = run(svc.list_items(PIXELS, 10))

    assert [p.id for p in items] == [1, 3]


def test_fold_keeps_the_last_valid_write_per_id_and_applies_deletes() -> None:
    raw = orjson.dumps
    config = fold(
        [
            ("pixels", b"1", raw(pixel(1, name="old"))),
            ("pixels", b"2", raw(pixel(2))),
            ("pixels", b"1", raw(pixel(1, name="new"))),
            ("pixels", b"1", raw(pixel(1, name=""))),  # invalid: the previous version stays
            ("pixels", b"3", raw(pixel(2))),  # keyed by another id: not a write
            ("pixels", b"2", None),
        ]
    )

    assert {i: p.name for i, p in config.pixels.items()} == {1: "new"}


@pytest.mark.parametrize("raw", [7, "7", b"7", 2**63 - 1])
def test_a_config_id_is_a_positive_integer_or_its_exact_decimal_text(raw: Any) -> None:
    assert config_id(raw) == int(raw)


@pytest.mark.parametrize("raw", [0, -1, 2**63, True, 7.0, "07", " 7", "+7", "7\n", "", "\u0667", None, b"x"])
def test_anything_else_is_not_a_config_id(raw: Any) -> None:
    assert config_id(raw) is None
