"""Load the JSON Schemas of `schemas/` and compile validators from them, once per process.

The schemas ship inside the package (wheel) and sit at the repository root in a checkout; both
locations are tried. Validators fill in the schema's `default`s, so decoded records are complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema

from attribution.errors import RecordError, SchemaViolation

Validator = Callable[[Any], Any]

_SUFFIX = ".schema.json"


@cache
def schema_dir() -> Path:
    packaged = Path(str(resources.files("attribution"))) / "schemas"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "schemas"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("schemas/ not found in the package nor in the checkout")


def schema_names() -> list[str]:
    """Names of all record schemas, e.g. `pixel`, `attributed_conversion`."""
    return sorted(p.name[: -len(_SUFFIX)] for p in schema_dir().glob(f"*{_SUFFIX}"))


@cache
def load_schema(name: str) -> Mapping[str, Any]:
    with open(schema_dir() / f"{name}{_SUFFIX}", "rb") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@cache
def _compiled(name: str, defaults: bool) -> Validator:
    return fastjsonschema.compile(dict(load_schema(name)), use_default=defaults)


def validator(
    name: str, error: Callable[[str, str], RecordError] = SchemaViolation, defaults: bool = False
) -> Validator:
    """A function that validates a decoded JSON value against schema `name` or raises `error`
    naming the field and the rule broken. With `defaults`, it returns a copy with the schema's
    defaults filled in (the input is never modified)."""
    check = _compiled(name, defaults)

    def validate(value: Any) -> Any:
        try:
            return check(dict(value) if defaults and isinstance(value, dict) else value)
        except fastjsonschema.JsonSchemaValueException as exc:
            field, message = explain(exc, value)
            raise error(message, field) from None

    return validate


_NAME = re.compile(r"^data\.?")


def explain(exc: fastjsonschema.JsonSchemaValueException, value: Any) -> tuple[str, str]:
    """Turn a fastjsonschema error into `(field, "field: what is wrong (the rule)")`."""
    field = _NAME.sub("", exc.name or "data")
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    rule = exc.rule or ""
    if rule == "required" and isinstance(exc.value, dict):
        missing = [k for k in definition.get("required", []) if k not in exc.value]
        if missing:
            field = f"{field}.{missing[0]}" if field else missing[0]
            return field, f"{field}: is required"
    if rule == "additionalProperties" and isinstance(exc.value, dict):
        known = definition.get("properties", {})
        extra = sorted(k for k in exc.value if k not in known)
        if extra:
            field = f"{field}.{extra[0]}" if field else extra[0]
            return field, f"{field}: unknown field"
    if rule == "anyOf" and isinstance(exc.value, dict):
        # "one of these fields is required" (a conversion's user_id or token)
        alternatives = definition.get("anyOf", [])
        names = [n for alt in alternatives for n in alt.get("required", ())]
        if names and all(set(alt) <= {"required", "description"} for alt in alternatives):
            field = f"{field}.{names[0]}" if field else names[0]
            return field, f"{field}: is required (or {' or '.join(names[1:])})"
    text = (exc.message or "").removeprefix(exc.name or "").strip()
    if rule == "pattern" and len(text) > 120:
        text = "does not match the required pattern"
    message = f"{field or 'record'}: {text}"
    description = definition.get("description")
    if description:
        message += f" ({description})"
    return field, message
