"""The OpenAPI document: its bodies are the contract's record schemas, its patterns mean what the
validator enforces, and schemathesis can read it."""

from __future__ import annotations

import re
import sys

import pytest
import schemathesis

from attribution.contract import load_schema
from attribution.web.openapi import document
from attribution.web.patterns import portable_pattern

DOC = document()
SCHEMAS = DOC["components"]["schemas"]


def test_the_document_is_openapi_3_1_with_every_route_of_the_api() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert set(DOC["paths"]) == {
        "/pixels",
        "/pixels/{id}",
        "/pixels/{id}/tags",
        "/line-items",
        "/line-items/{id}",
        "/stats",
        "/metrics",
        "/dashboard",
        "/openapi.json",
    }


@pytest.mark.parametrize(("name", "component"), [("pixel", "Pixel"), ("line_item", "LineItem")])
def test_request_bodies_are_the_contracts_record_schemas(name: str, component: str) -> None:
    contract = load_schema(name)
    body = SCHEMAS[component]
    assert body["required"] == contract["required"]
    assert set(body["properties"]) == set(contract["properties"])
    assert body["additionalProperties"] is False
    assert SCHEMAS[component + "Put"]["required"] == [r for r in contract["required"] if r != "id"]
    assert "id" not in SCHEMAS[component + "Put"]["properties"]


def test_a_line_items_pixel_limit_comes_from_the_contract() -> None:
    assert SCHEMAS["LineItem"]["properties"]["pixels"]["maxItems"] == 20


def test_every_write_needs_the_bearer_token_and_no_read_does() -> None:
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            writes = method in ("post", "put", "delete")
            assert ("security" in op) == writes, f"{method} {path}"
            if writes:
                assert "401" in op["responses"]


def test_the_read_representation_of_a_pixel_adds_status_and_health_as_read_only() -> None:
    read = SCHEMAS["PixelRead"]
    assert read["properties"]["status"]["readOnly"] is True
    assert read["properties"]["health"]["readOnly"] is True
    assert set(read["required"]) == set(load_schema("pixel")["properties"]) | {"status", "health"}


def test_schemathesis_reads_the_document_and_finds_every_operation() -> None:
    schema = schemathesis.openapi.from_dict(document())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 15


@pytest.mark.parametrize(
    "pattern",
    [r"\S", r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+[^\s]*$", r"a\sb", r"[\s]x", r"\\s"],
)
def test_portable_patterns_accept_exactly_what_the_validator_accepts(pattern: str) -> None:
    portable = portable_pattern(pattern)
    assert "\\s" not in portable.replace("\\\\", "") or pattern == r"\\s"
    samples = [chr(c) for c in range(0, 0x3100)] + ["\ufeff", "\u2028", "https://a", "https://a b", "a b", "a\x1eb"]
    for text in samples:
        for candidate in (text, f"https://x{text}", f"a{text}b", f"{text}x"):
            assert bool(re.search(portable, candidate)) == bool(re.search(pattern, candidate)), repr(candidate)


def test_a_negated_whitespace_class_inside_a_set_is_refused_rather_than_mistranslated() -> None:
    with pytest.raises(ValueError, match="not supported"):
        portable_pattern(r"[\S]")


def test_portable_patterns_name_every_character_pythons_whitespace_matches() -> None:
    ws = portable_pattern(r"\s")
    for c in range(sys.maxunicode + 1):
        assert bool(re.fullmatch(ws, chr(c))) == bool(re.fullmatch(r"\s", chr(c)))
