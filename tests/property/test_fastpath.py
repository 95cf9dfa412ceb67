"""The decoding fast path generated from the schemas accepts only what the schema accepts, and
reads the same values the full validator would give."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from attribution.contract import load_schema, validator
from attribution.contract.fastpath import field_reader
from attribution.errors import RecordError

SCHEMAS = ("impression", "click", "conversion")

# Values around every bound and of every JSON type, so both sides of each rule are drawn.
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, -1, 7, 2000, 4102444800000, 4102444800001, 9223372036854775807, 2**63]),
    st.sampled_from([0.0, 1.5, 2000.0, -0.5, 1e15, 1e16]),
    st.sampled_from(["", "x", "u" * 36, "u" * 37, "e" * 128, "e" * 129, "é"]),
    st.just([]),
    st.just({}),
)


def record(schema: str) -> st.SearchStrategy[dict[str, Any]]:
    names = [*load_schema(schema)["properties"], "extra"]
    return st.dictionaries(st.sampled_from(names), VALUES, max_size=len(names))


@st.composite
def near_valid(draw: st.DrawFn, schema: str) -> dict[str, Any]:
    base = {
        "event_id": "e",
        "user_id": "u",
        "timestamp": 1,
        "advertiser_id": 1,
        "line_item_id": 1,
        "creative_id": 1,
        "auction_id": "",
        "pixel_id": 1,
    }
    props = load_schema(schema)["properties"]
    obj = {k: v for k, v in base.items() if k in props}
    obj.update(draw(record(schema)))
    for name in draw(st.lists(st.sampled_from(list(obj)), max_size=2)):
        obj.pop(name, None)
    return obj


@given(st.sampled_from(SCHEMAS), st.data())
def test_what_the_fast_path_reads_the_validator_accepts_with_the_same_values(schema: str, data: st.DataObject) -> None:
    props = list(load_schema(schema)["properties"])
    reader = field_reader(load_schema(schema), props)
    assert reader is not None
    obj = data.draw(near_valid(schema))
    values = reader(obj)
    if values is None:
        return
    try:
        validated = validator(schema)(obj)
    except RecordError as exc:
        raise AssertionError(f"the fast path took a record the schema refuses: {exc.message}") from None
    defaults = {k: p.get("default") for k, p in load_schema(schema)["properties"].items()}
    assert values == tuple(validated.get(k, defaults[k]) for k in props)
    assert [type(v) for v in values] == [type(validated.get(k, defaults[k])) for k in props]


def test_plainly_valid_records_take_the_fast_path() -> None:
    reader = field_reader(load_schema("conversion"), ["event_id", "value", "order_id"])
    assert reader is not None
    assert reader({"event_id": "c", "pixel_id": 2, "user_id": "u", "timestamp": 5, "value": 2.5}) == ("c", 2.5, None)
    assert reader({"event_id": "c", "pixel_id": 2, "user_id": "u", "timestamp": 5.0}) is None  # the validator decides


def test_a_schema_with_a_rule_the_fast_path_does_not_know_gets_no_fast_path() -> None:
    schema = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^a"}}}
    assert field_reader(schema, ["id"]) is None
    assert field_reader({**schema, "additionalProperties": False}, []) is None
    assert field_reader(load_schema("pixel"), ["id"]) is None  # nested objects: the validator only


def test_a_conversion_needs_a_user_id_or_a_token_on_the_fast_path_as_in_the_schema() -> None:
    reader = field_reader(load_schema("conversion"), ["user_id", "token"])
    assert reader is not None
    base = {"event_id": "c", "pixel_id": 2, "timestamp": 5}
    assert reader({**base, "user_id": "u"}) == ("u", None)
    assert reader({**base, "token": "t"}) == (None, "t")
    assert reader({**base, "user_id": "u", "token": "t"}) == ("u", "t")
    assert reader(base) is None


def test_an_any_of_beyond_required_fields_gets_no_fast_path() -> None:
    props = {"a": {"type": "string"}, "b": {"type": "string"}}
    schema = {"type": "object", "properties": props}
    assert field_reader({**schema, "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}, ["a"]) is not None
    assert field_reader({**schema, "anyOf": [{"properties": {"a": {"minLength": 1}}}]}, ["a"]) is None
    assert field_reader({**schema, "anyOf": [{"required": ["zzz"]}]}, ["a"]) is None
    assert field_reader({**schema, "anyOf": []}, ["a"]) is None
