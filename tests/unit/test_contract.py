"""The record contract (docs/design.md, Records): schemas, decoding, pixel rules, dead letters, outputs.

Outputs are checked with `jsonschema` (draft 7), a validator independent of the fastjsonschema
code the product compiles, so a bug in one is not hidden by the same bug in the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import orjson
import pytest

from attribution.contract import (
    CONFIG_TOPICS,
    EVENT_TOPICS,
    dead_letter,
    decode,
    decode_value,
    encode,
    load_schema,
    schema_names,
    topic_of,
)
from attribution.contract.codec import MAX_PAYLOAD_BYTES, MAX_RECORD_BYTES
from attribution.domain import (
    AttributedConversion,
    Conversion,
    LineItem,
    Output,
    PiggybackFire,
    PiggybackPixel,
    Pixel,
    PixelLink,
    Touch,
    UnattributedConversion,
)
from attribution.errors import (
    InvalidConfig,
    InvalidEncoding,
    InvalidJson,
    InvalidLineItem,
    RecordError,
    SchemaViolation,
)
from helpers import (
    DAY,
    MINUTE,
    T0,
    click,
    click_json,
    config,
    conversion,
    conversion_json,
    impression,
    impression_json,
    line_item,
    line_item_json,
    link,
    pixel,
    pixel_json,
    run,
)

SCHEMA_OF_TOPIC = {
    "impressions": "impression",
    "clicks": "click",
    "conversions": "conversion",
    "pixels": "pixel",
    "line-items": "line_item",
}
OUTPUT_SCHEMA = {
    AttributedConversion: "attributed_conversion",
    UnattributedConversion: "unattributed_conversion",
    PiggybackFire: "piggyback_fire",
}


def raw(obj: Any) -> bytes:
    return orjson.dumps(obj)


def draft7(name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(dict(load_schema(name)))


def refused(topic: str, obj: Any) -> RecordError:
    with pytest.raises(RecordError) as info:
        decode(topic, raw(obj))
    return info.value


# --- the schemas themselves -------------------------------------------------------------------


def test_there_is_one_schema_per_record_type() -> None:
    assert schema_names() == sorted(
        [
            "attributed_conversion",
            "click",
            "conversion",
            "conversion_report",
            "dead_letter",
            "impression",
            "line_item",
            "piggyback_fire",
            "pixel",
            "unattributed_conversion",
        ]
    )


@pytest.mark.parametrize("name", schema_names())
def test_every_schema_is_a_valid_draft_7_schema(name: str) -> None:
    schema = dict(load_schema(name))

    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


def test_load_schema_returns_the_same_cached_object() -> None:
    assert load_schema("pixel") is load_schema("pixel")


# --- valid samples decode into domain objects -------------------------------------------------


def test_a_full_impression_decodes_into_a_touch() -> None:
    obj = impression_json(event_id="i1", timestamp=T0, campaign_id=3, imp_type=9, auction_id="a1")

    assert decode("impressions", raw(obj)) == Touch("impression", "i1", "u1", T0, 10, 100, 7, "a1", 3, 9)


def test_a_minimal_impression_decodes_with_imp_type_7_and_no_campaign() -> None:
    touch = decode("impressions", raw(impression_json()))

    assert isinstance(touch, Touch)
    assert (touch.imp_type, touch.campaign_id, touch.kind) == (7, None, "impression")


def test_a_click_decodes_into_a_click_touch() -> None:
    touch = decode("clicks", raw(click_json(event_id="k1", campaign_id=None)))

    assert isinstance(touch, Touch)
    assert (touch.kind, touch.event_id, touch.campaign_id, touch.is_touch) == ("click", "k1", None, True)


def test_a_full_conversion_decodes_with_its_optional_fields() -> None:
    obj = conversion_json(event_id="c1", value=12.5, order_id="o" * 36, other="x" * 30)

    assert decode("conversions", raw(obj)) == Conversion("c1", 1, "u1", T0, 12.5, "o" * 36, "x" * 30)


def test_a_conversion_with_a_zero_value_keeps_the_zero() -> None:
    conv = decode("conversions", raw(conversion_json(value=0)))

    assert isinstance(conv, Conversion)
    assert conv.value == 0


def test_a_minimal_pixel_gets_every_default_filled_in() -> None:
    assert decode("pixels", raw(pixel_json(id=5, advertiser_id=6, name="p"))) == Pixel(
        id=5,
        advertiser_id=6,
        name="p",
        state="active",
        trigger_type="hybrid",
        post_view_expire_mins=1440,
        post_click_expire_mins=20160,
        min_minutes_per_conv=None,
        post_view_value=None,
        post_click_value=None,
        event_category=None,
        pixel_type="img",
        piggyback_pixels=(),
    )


def test_a_full_pixel_decodes_field_by_field() -> None:
    obj = pixel_json(
        state="inactive",
        trigger_type="view",
        post_view_expire_mins=None,
        post_click_expire_mins=0,
        min_minutes_per_conv=15,
        post_view_value=1.5,
        post_click_value=0,
        event_category="lead",
        pixel_type="js",
        piggyback_pixels=[{"pixel_type": "js", "url": "https://x.example/a"}],
    )

    decoded = decode("pixels", raw(obj))

    assert decoded == Pixel(
        1, 10, "checkout pixel", "inactive", "view", None, 0, 15, 1.5, 0, "lead", "js",
        (PiggybackPixel("js", "https://x.example/a"),),
    )  # fmt: skip


def test_decoding_a_pixel_does_not_modify_the_callers_object() -> None:
    obj = pixel_json()
    before = dict(obj)

    decode_value("pixels", obj)

    assert obj == before


def test_a_line_item_decodes_with_link_defaults() -> None:
    obj = line_item_json(name="LI", pixels=[{"id": 1}, {"id": 2, "state": "inactive", "post_click_revenue": 0.5}])

    assert decode("line-items", raw(obj)) == LineItem(
        100, 10, "active", (PixelLink(1, "active", None, None), PixelLink(2, "inactive", 0.5, None)), "LI"
    )


def test_a_line_item_without_pixels_carries_none() -> None:
    item = decode("line-items", raw({"id": 3, "advertiser_id": 4}))

    assert isinstance(item, LineItem)
    assert (item.state, item.pixels) == ("active", ())


@pytest.mark.parametrize("topic", [*EVENT_TOPICS, *CONFIG_TOPICS])
def test_every_valid_sample_is_also_valid_for_the_independent_validator(topic: str) -> None:
    sample = {
        "impressions": impression_json(),
        "clicks": click_json(),
        "conversions": conversion_json(value=1),
        "pixels": pixel_json(),
        "line-items": line_item_json(),
    }[topic]

    draft7(SCHEMA_OF_TOPIC[topic]).validate(sample)
    decode(topic, raw(sample))


# --- invalid event records --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        (topic, field)
        for topic, name in SCHEMA_OF_TOPIC.items()
        for field in load_schema(name)["required"]
    ],
)  # fmt: skip
def test_a_record_missing_a_required_field_is_refused_naming_the_field(topic: str, field: str) -> None:
    sample = {
        "impressions": impression_json(),
        "clicks": click_json(),
        "conversions": conversion_json(),
        "pixels": pixel_json(),
        "line-items": line_item_json(),
    }[topic]
    del sample[field]

    error = refused(topic, sample)

    assert error.field == field
    assert field in error.message
    expected = {"pixels": "invalid_pixel", "line-items": "invalid_line_item"}.get(topic, "schema_violation")
    assert error.code == expected


@pytest.mark.parametrize(
    ("topic", "bad"),
    [
        ("conversions", {"timestamp": -1}),
        ("conversions", {"timestamp": 4_102_444_800_001}),
        ("conversions", {"timestamp": "1700000000000"}),
        ("conversions", {"pixel_id": 0}),
        ("conversions", {"event_id": ""}),
        ("conversions", {"user_id": ""}),
        ("conversions", {"value": -0.01}),
        ("conversions", {"order_id": "o" * 37}),
        ("conversions", {"other": "x" * 31}),
        ("impressions", {"imp_type": 0}),
        ("impressions", {"imp_type": None}),
        ("impressions", {"line_item_id": 0}),
        ("impressions", {"campaign_id": 0}),
        ("clicks", {"advertiser_id": -5}),
        ("clicks", {"auction_id": 12}),
    ],
)
def test_an_out_of_range_or_mistyped_event_field_is_a_schema_violation_naming_it(
    topic: str, bad: dict[str, Any]
) -> None:
    sample = {"impressions": impression_json, "clicks": click_json, "conversions": conversion_json}[topic](**bad)
    (field,) = bad

    error = refused(topic, sample)

    assert isinstance(error, SchemaViolation)
    assert (error.code, error.field) == ("schema_violation", field)
    assert error.message.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        ("conversions", "timestamp"),
        ("conversions", "pixel_id"),
        ("impressions", "imp_type"),
        ("clicks", "line_item_id"),
        ("pixels", "post_view_expire_mins"),
        ("pixels", "min_minutes_per_conv"),
        ("line-items", "advertiser_id"),
    ],
)
def test_a_boolean_is_not_an_integer(topic: str, field: str) -> None:
    builders = {
        "impressions": impression_json,
        "clicks": click_json,
        "conversions": conversion_json,
        "pixels": pixel_json,
        "line-items": line_item_json,
    }

    error = refused(topic, builders[topic](**{field: True}))

    assert error.field == field


def test_a_boolean_conversion_value_is_not_a_number() -> None:
    assert refused("conversions", conversion_json(value=False)).field == "value"


def integer_fields(obj: Any) -> Iterator[tuple[str, Any]]:
    """(path, value) of every int-typed field of a decoded domain object, links included."""
    for name in obj.__slots__:
        value = getattr(obj, name)
        if isinstance(value, tuple):
            for i, item in enumerate(value):
                if hasattr(item, "__slots__"):
                    yield from ((f"{name}[{i}].{n}", v) for n, v in integer_fields(item))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and name not in _NUMBER_FIELDS:
            yield name, value


_NUMBER_FIELDS = {"value", "post_view_value", "post_click_value", "post_click_revenue", "post_view_revenue"}

INTEGRAL_FLOATS = [
    pytest.param("conversions", conversion_json(timestamp=float(T0), pixel_id=1.0), id="conversion"),
    pytest.param(
        "impressions",
        impression_json(timestamp=float(T0), advertiser_id=10.0, line_item_id=100.0, creative_id=7.0,
                        campaign_id=3.0, imp_type=9.0),
        id="impression",
    ),
    pytest.param("clicks", click_json(timestamp=float(T0), line_item_id=100.0), id="click"),
    pytest.param(
        "pixels",
        pixel_json(id=1.0, advertiser_id=10.0, post_view_expire_mins=60.0, post_click_expire_mins=0.0,
                   min_minutes_per_conv=30.0),
        id="pixel",
    ),
    pytest.param("line-items", line_item_json(id=100.0, advertiser_id=10.0, pixels=[]), id="line-item"),
    pytest.param(
        "line-items",
        line_item_json(pixels=[{"id": 1.0}]),
        id="line-item-link",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("topic", "obj"), INTEGRAL_FLOATS)
def test_an_integral_float_in_an_integer_field_is_decoded_as_an_int(topic: str, obj: dict[str, Any]) -> None:
    decoded = decode(topic, raw(obj))

    floats = [(name, value) for name, value in integer_fields(decoded) if type(value) is not int]
    assert floats == []


def test_an_integral_float_timestamp_gives_integer_times_in_the_outputs() -> None:
    cfg = config()
    touch = decode("clicks", raw(click_json(event_id="k", timestamp=float(T0))))
    conv = decode("conversions", raw(conversion_json(timestamp=float(T0 + 1000))))
    assert isinstance(touch, Touch)
    assert isinstance(conv, Conversion)

    _, outputs = run([touch, conv], cfg)

    assert b'"conversion_timestamp":1700000001000,' in encode(outputs[-1])
    assert b'"latency_ms":1000,' in encode(outputs[-1])


def test_a_fractional_timestamp_is_refused() -> None:
    assert refused("clicks", click_json(timestamp=T0 + 0.5)).field == "timestamp"


def test_extra_fields_on_events_are_tolerated() -> None:
    conv = decode("conversions", raw(conversion_json(event_id="c", referrer="https://shop.example")))

    assert isinstance(conv, Conversion)
    assert conv.event_id == "c"


# --- bytes that are not a JSON object ---------------------------------------------------------


@pytest.mark.parametrize("topic", [*EVENT_TOPICS, *CONFIG_TOPICS])
def test_invalid_utf8_is_refused_with_code_invalid_utf8(topic: str) -> None:
    with pytest.raises(InvalidEncoding) as info:
        decode(topic, b'{"event_id": "\xff\xfe"}')

    assert info.value.code == "invalid_utf8"


@pytest.mark.parametrize("payload", [b"{", b"", b"{'a': 1}", b'{"a": NaN}', b"not json", b'{"a":1} trailing'])
def test_invalid_json_is_refused_with_code_invalid_json(payload: bytes) -> None:
    with pytest.raises(InvalidJson) as info:
        decode("conversions", payload)

    assert info.value.code == "invalid_json"


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(b"[]", "an array"), (b"null", "null"), (b"42", "a number"), (b'"x"', "a string"), (b"true", "a boolean")],
)
def test_json_that_is_not_an_object_is_refused_with_code_not_an_object(payload: bytes, kind: str) -> None:
    with pytest.raises(InvalidJson) as info:
        decode("impressions", payload)

    assert info.value.code == "not_an_object"
    assert kind in info.value.message


def test_a_record_over_1_mb_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidEncoding) as info:
        decode("conversions", b" " * (MAX_RECORD_BYTES + 1))

    assert info.value.code == "record_too_large"


# --- the pixel settings of docs/design.md -----------------------------------------------------


def img(url: str = "https://p.example/a.gif") -> dict[str, str]:
    return {"pixel_type": "img", "url": url}


def js(url: str = "https://p.example/a.js") -> dict[str, str]:
    return {"pixel_type": "js", "url": url}


def url_of_length(n: int) -> str:
    prefix = "https://p.example/"
    return prefix + "x" * (n - len(prefix))


REFUSED_PIXELS = [
    pytest.param("id", {"id": 0}, id="id-0"),
    pytest.param("id", {"id": -1}, id="id-negative"),
    pytest.param("id", {"id": "1"}, id="id-string"),
    pytest.param("advertiser_id", {"advertiser_id": 0}, id="advertiser-0"),
    pytest.param("name", {"name": ""}, id="empty-name"),
    pytest.param("name", {"name": "   "}, id="blank-name"),
    pytest.param("name", {"name": None}, id="null-name"),
    pytest.param("state", {"state": "paused"}, id="state-paused-is-derived-not-set"),
    pytest.param("state", {"state": "ACTIVE"}, id="state-case"),
    pytest.param("trigger_type", {"trigger_type": "both"}, id="bad-trigger"),
    pytest.param("post_view_expire_mins", {"post_view_expire_mins": 43_201}, id="view-43201"),
    pytest.param("post_view_expire_mins", {"post_view_expire_mins": -1}, id="view-negative"),
    pytest.param("post_view_expire_mins", {"post_view_expire_mins": 60.5}, id="view-fraction"),
    pytest.param("post_click_expire_mins", {"post_click_expire_mins": 129_601}, id="click-129601"),
    pytest.param("post_click_expire_mins", {"post_click_expire_mins": -1}, id="click-negative"),
    pytest.param("min_minutes_per_conv", {"min_minutes_per_conv": 32_768}, id="repeat-32768"),
    pytest.param("min_minutes_per_conv", {"min_minutes_per_conv": -1}, id="repeat-negative"),
    pytest.param("post_view_value", {"post_view_value": -0.01}, id="view-value-negative"),
    pytest.param("post_click_value", {"post_click_value": -1}, id="click-value-negative"),
    pytest.param("post_click_value", {"post_click_value": "1"}, id="click-value-string"),
    pytest.param("event_category", {"event_category": "sale"}, id="bad-category"),
    pytest.param("pixel_type", {"pixel_type": "gif"}, id="bad-pixel-type"),
    pytest.param("piggyback_pixels", {"piggyback_pixels": [img(), img()]}, id="img-with-two-piggybacks"),
    pytest.param("piggyback_pixels[0].pixel_type", {"piggyback_pixels": [js()]}, id="img-with-js-piggyback"),
    pytest.param(
        "piggyback_pixels[1].pixel_type",
        {"pixel_type": "js", "piggyback_pixels": [js(), img()]},
        id="js-with-img-piggyback",
    ),
    pytest.param("piggyback_pixels[0].url", {"piggyback_pixels": [img("ftp://p.example/a")]}, id="ftp-url"),
    pytest.param("piggyback_pixels[0].url", {"piggyback_pixels": [img("/relative/a.gif")]}, id="relative-url"),
    pytest.param("piggyback_pixels[0].url", {"piggyback_pixels": [img("javascript:alert(1)")]}, id="js-scheme"),
    pytest.param("piggyback_pixels[0].url", {"piggyback_pixels": [img("https://")]}, id="no-host"),
    pytest.param("piggyback_pixels[0].url", {"piggyback_pixels": [img("https://a b.example/")]}, id="space-in-url"),
    pytest.param("piggyback_pixels[0].url", {"piggyback_pixels": [img(url_of_length(8193))]}, id="url-8193"),
    pytest.param("piggyback_pixels[0].pixel_type", {"piggyback_pixels": [{"url": "https://a.example"}]}, id="no-type"),
    pytest.param("piggyback_pixels[0].url", {"piggyback_pixels": [{"pixel_type": "img"}]}, id="no-url"),
    pytest.param("piggyback_pixels[0].size", {"piggyback_pixels": [{**img(), "size": 1}]}, id="unknown-pb-field"),
    pytest.param("piggyback_pixels", {"piggyback_pixels": "https://a.example"}, id="piggybacks-not-a-list"),
    pytest.param("post_view_expire_min", {"post_view_expire_min": 60}, id="misspelt-field-is-unknown"),
]


@pytest.mark.parametrize(("field", "overrides"), REFUSED_PIXELS)
def test_a_pixel_breaking_a_rule_is_refused_as_invalid_pixel_naming_the_field(
    field: str, overrides: dict[str, Any]
) -> None:
    error = refused("pixels", pixel_json(**overrides))

    assert isinstance(error, InvalidConfig)
    assert not isinstance(error, InvalidLineItem)
    assert error.code == "invalid_pixel"
    assert error.field == field
    assert error.message.startswith(f"{field}:")


ACCEPTED_PIXELS = [
    pytest.param({"post_view_expire_mins": 0}, id="view-0"),
    pytest.param({"post_view_expire_mins": 1}, id="view-1"),
    pytest.param({"post_view_expire_mins": 43_200}, id="view-43200"),
    pytest.param({"post_view_expire_mins": None}, id="view-null"),
    pytest.param({"post_click_expire_mins": 0}, id="click-0"),
    pytest.param({"post_click_expire_mins": 129_600}, id="click-129600"),
    pytest.param({"post_click_expire_mins": None}, id="click-null"),
    pytest.param({"min_minutes_per_conv": 0}, id="repeat-0"),
    pytest.param({"min_minutes_per_conv": 32_767}, id="repeat-32767"),
    pytest.param({"min_minutes_per_conv": None}, id="repeat-null"),
    pytest.param({"post_view_value": 0, "post_click_value": 1e15}, id="values-0-and-max"),
    pytest.param({"event_category": None}, id="category-null"),
    pytest.param({"name": "x" * 255}, id="name-255"),
    pytest.param({"piggyback_pixels": []}, id="no-piggyback"),
    pytest.param({"piggyback_pixels": [img()]}, id="img-with-one-img"),
    pytest.param({"pixel_type": "img", "piggyback_pixels": [img("HTTP://P.EXAMPLE/A")]}, id="upper-case-scheme"),
    pytest.param({"piggyback_pixels": [img(url_of_length(8192))]}, id="url-8192"),
    pytest.param(
        {"pixel_type": "js", "piggyback_pixels": [js("http://a.example"), js("https://b.example/x?y=1"), js()]},
        id="js-with-three-js",
    ),
    pytest.param({"pixel_type": "js"}, id="js-without-piggybacks"),
    *(pytest.param({"event_category": c}, id=f"category-{c}") for c in (
        "landing_page", "item_view", "add_to_cart", "initiate_checkout", "add_payment_info", "purchase", "lead"
    )),
]  # fmt: skip


@pytest.mark.parametrize("overrides", ACCEPTED_PIXELS)
def test_a_pixel_within_the_rules_is_accepted_as_given(overrides: dict[str, Any]) -> None:
    decoded = decode("pixels", raw(pixel_json(**overrides)))

    assert isinstance(decoded, Pixel)
    for field, value in overrides.items():
        got = getattr(decoded, field)
        if field == "piggyback_pixels":
            got = [{"pixel_type": p.pixel_type, "url": p.url} for p in got]
        assert got == value


def test_the_url_length_limit_is_8192_characters_exactly() -> None:
    assert len(url_of_length(8192)) == 8192
    assert len(url_of_length(8193)) == 8193


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("state", {"state": "paused"}),
        ("pixels", {"pixels": [{"id": i} for i in range(1, 22)]}),
        ("pixels[0].id", {"pixels": [{"state": "active"}]}),
        ("pixels[0].state", {"pixels": [{"id": 1, "state": "on"}]}),
        ("pixels[0].post_view_revenue", {"pixels": [{"id": 1, "post_view_revenue": -1}]}),
        ("budget", {"budget": 10}),
    ],
)
def test_a_line_item_breaking_a_rule_is_refused_as_invalid_line_item(field: str, overrides: dict[str, Any]) -> None:
    error = refused("line-items", line_item_json(**overrides))

    assert isinstance(error, InvalidLineItem)
    assert (error.code, error.field) == ("invalid_line_item", field)


def test_a_line_item_may_carry_20_pixels() -> None:
    item = decode("line-items", raw(line_item_json(pixels=[{"id": i} for i in range(1, 21)])))

    assert isinstance(item, LineItem)
    assert len(item.pixels) == 20


# --- dead letters -----------------------------------------------------------------------------


def test_a_dead_letter_names_where_the_record_was_and_why() -> None:
    error = refused("pixels", pixel_json(post_view_expire_mins=43_201))
    payload = raw(pixel_json(post_view_expire_mins=43_201))

    letter = orjson.loads(encode(dead_letter(error, "pixels", 3, 17, payload)))

    draft7("dead_letter").validate(letter)
    assert letter["topic"] == "pixels"
    assert (letter["partition"], letter["offset"]) == (3, 17)
    assert letter["error"]["code"] == "invalid_pixel"
    assert "post_view_expire_mins" in letter["error"]["message"]
    assert letter["payload"] == payload.decode()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"a" * 10_000, id="ascii"),
        pytest.param("é".encode() * 5_000, id="two-byte-chars-split-at-the-cut"),
        pytest.param(b"a" + "€".encode() * 3_000, id="three-byte-chars-split-at-the-cut"),
        pytest.param(b"\xff" * 5_000, id="invalid-utf8-replaced"),
        pytest.param(b"x" * 4095 + b"\xe2\x82", id="truncated-char-at-the-end"),
    ],
)
def test_a_dead_letter_payload_is_cut_to_4_kib_and_valid_against_its_schema(payload: bytes) -> None:
    letter = dead_letter(InvalidJson("record: not valid JSON"), "conversions", 0, 0, payload)

    assert letter.payload is not None
    assert len(letter.payload.encode("utf-8")) <= MAX_PAYLOAD_BYTES == 4096
    assert len(letter.payload.encode("utf-8")) >= MAX_PAYLOAD_BYTES - 3
    draft7("dead_letter").validate(orjson.loads(encode(letter)))


def test_a_short_payload_is_kept_whole() -> None:
    letter = dead_letter(InvalidJson("record: x"), "clicks", 0, 5, b'{"a": "\xc3\xa9"}')

    assert letter.payload == '{"a": "é"}'


def test_a_dead_letter_of_a_null_value_has_a_null_payload() -> None:
    letter = dead_letter(InvalidJson("record: expected a JSON object", code="not_an_object"), "clicks", 1, 2, None)

    assert letter.payload is None
    draft7("dead_letter").validate(orjson.loads(encode(letter)))


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"{", b"[]", b"null", raw(conversion_json(pixel_id=0)), raw(pixel_json(bogus=1))],
)
def test_every_decode_error_code_is_one_the_dead_letter_schema_allows(payload: bytes) -> None:
    topic = "pixels" if b"bogus" in payload else "conversions"
    with pytest.raises(RecordError) as info:
        decode(topic, payload)

    draft7("dead_letter").validate(orjson.loads(encode(dead_letter(info.value, topic, 0, 0, payload))))


# --- the output schemas refuse what the contract forbids --------------------------------------

OUTPUT_SAMPLES: dict[str, dict[str, Any]] = {
    "attributed_conversion": {
        "conversion_id": "c", "pixel_id": 1, "advertiser_id": 10, "user_id": "u", "conversion_timestamp": T0,
        "attribution": "post_view", "touch_event_id": "i", "touch_timestamp": T0, "auction_id": "a",
        "line_item_id": 100, "creative_id": 7, "campaign_id": None, "latency_ms": 0, "value": None,
        "booked_revenue": None, "order_id": None, "other": None, "event_category": None, "source": "pixel",
    },
    "unattributed_conversion": {
        "conversion_id": "c", "pixel_id": 1, "user_id": "u", "conversion_timestamp": T0, "reason": "pixel_paused",
        "source": "server",
    },
    "piggyback_fire": {
        "fire_id": "c:0", "conversion_id": "c", "pixel_id": 1, "pixel_type": "img", "url": "https://p.example",
        "index": 0, "user_id": "u", "conversion_timestamp": T0,
    },
    "dead_letter": {
        "topic": "clicks", "partition": 0, "offset": 3, "error": {"code": "invalid_json", "message": "record: x"},
        "payload": "{",
    },
}  # fmt: skip

OUTPUT_VIOLATIONS = [
    ("attributed_conversion", {"attribution": "post_touch"}),
    ("attributed_conversion", {"latency_ms": -1}),
    ("attributed_conversion", {"value": -1}),
    ("attributed_conversion", {"event_category": "sale"}),
    ("attributed_conversion", {"campaign_id": "7"}),
    ("unattributed_conversion", {"reason": "no_touch"}),
    ("unattributed_conversion", {"source": "browser"}),
    ("unattributed_conversion", {"conversion_timestamp": True}),
    ("piggyback_fire", {"fire_id": "c"}),
    ("piggyback_fire", {"index": -1}),
    ("piggyback_fire", {"pixel_type": "gif"}),
    ("dead_letter", {"payload": "x" * 4097}),
    ("dead_letter", {"error": {"code": "oops", "message": "m"}}),
    ("dead_letter", {"error": {"code": "invalid_json", "message": ""}}),
]


@pytest.mark.parametrize("name", sorted(OUTPUT_SAMPLES))
def test_an_output_schema_accepts_its_sample(name: str) -> None:
    draft7(name).validate(OUTPUT_SAMPLES[name])


@pytest.mark.parametrize("name", sorted(OUTPUT_SAMPLES))
def test_an_output_schema_refuses_a_missing_field_and_an_unknown_one(name: str) -> None:
    sample = OUTPUT_SAMPLES[name]
    for field in sample:
        assert not draft7(name).is_valid({k: v for k, v in sample.items() if k != field}), field
    assert not draft7(name).is_valid({**sample, "extra": 1})


@pytest.mark.parametrize(("name", "bad"), OUTPUT_VIOLATIONS)
def test_an_output_schema_refuses_an_invalid_value(name: str, bad: dict[str, Any]) -> None:
    assert not draft7(name).is_valid({**OUTPUT_SAMPLES[name], **bad})


# --- outputs ----------------------------------------------------------------------------------


def every_kind_of_output() -> Iterator[Output]:
    """Outputs of the engine for every outcome, with extreme and optional values."""
    cfg = config(
        pixels=[
            pixel(
                pixel_type="js",
                piggyback_pixels=[PiggybackPixel("js", url_of_length(8192)), PiggybackPixel("js", "http://b.example")],
                event_category="add_to_cart",
                post_click_value=0,
                min_minutes_per_conv=None,
            ),
            pixel(id=2, state="inactive"),
            pixel(id=3, piggyback_pixels=["https://i.example/p.gif"]),
            pixel(id=4, trigger_type="view", post_view_value=2.5),
        ],
        line_items=[line_item(pixels=[link(post_click_revenue=1e15, post_view_revenue=0), link(id=4)])],
    )
    events = [
        impression(timestamp=T0, campaign_id=9),
        click(timestamp=T0 + MINUTE, auction_id=""),
        conversion(timestamp=T0 + 2 * MINUTE, value=1e15, order_id="o" * 36, other="x" * 30),
        conversion(timestamp=T0 + 3 * MINUTE),  # repeat_limited
        conversion(timestamp=T0 + 4 * MINUTE, pixel_id=2),  # inactive_pixel
        conversion(timestamp=T0 + 5 * MINUTE, pixel_id=3),  # pixel_paused
        conversion(timestamp=T0 + 6 * MINUTE, pixel_id=99),  # unknown_pixel
        conversion(timestamp=T0 + 7 * MINUTE, pixel_id=4),  # post_view
        conversion(timestamp=T0 + 30 * DAY, pixel_id=4),  # no_eligible_touch: outside the view window
    ]
    _, outputs = run(events, cfg)
    yield from outputs


def test_the_sample_outputs_cover_every_output_type_and_reason() -> None:
    outputs = list(every_kind_of_output())
    reasons = {o.reason for o in outputs if isinstance(o, UnattributedConversion)}

    assert reasons == {"unknown_pixel", "inactive_pixel", "pixel_paused", "no_eligible_touch", "repeat_limited"}
    assert {o.attribution for o in outputs if isinstance(o, AttributedConversion)} == {"post_click", "post_view"}
    assert {type(o) for o in outputs} == {AttributedConversion, UnattributedConversion, PiggybackFire}


@pytest.mark.parametrize("output", list(every_kind_of_output()), ids=lambda o: type(o).__name__)
def test_every_output_the_engine_produces_is_valid_against_its_schema(output: Output) -> None:
    encoded = orjson.loads(encode(output))

    draft7(OUTPUT_SCHEMA[type(output)]).validate(encoded)


@pytest.mark.parametrize("output_type", list(OUTPUT_SCHEMA))
def test_output_fields_are_encoded_in_the_schemas_order(output_type: type) -> None:
    output = next(o for o in every_kind_of_output() if type(o) is output_type)

    assert list(orjson.loads(encode(output))) == load_schema(OUTPUT_SCHEMA[output_type])["required"]


def test_outputs_go_to_their_default_topics() -> None:
    by_type = {type(o): topic_of(o) for o in every_kind_of_output()}

    assert by_type == {
        AttributedConversion: "attributed-conversions",
        UnattributedConversion: "unattributed-conversions",
        PiggybackFire: "piggyback-fires",
    }


def test_an_encoded_output_is_compact_json() -> None:
    output = UnattributedConversion("c", 1, "u", T0, "unknown_pixel")

    assert encode(output) == (
        b'{"conversion_id":"c","pixel_id":1,"user_id":"u","conversion_timestamp":1700000000000,'
        b'"reason":"unknown_pixel","source":"pixel"}'
    )
