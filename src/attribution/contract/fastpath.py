"""A fast path for decoding, generated from the same JSON Schemas as the validators.

`field_reader(schema, fields)` compiles, from a schema's `properties` and `required`, one Python
function that checks a decoded JSON object against the schema's simple rules and returns the
values of `fields` in that order (a missing optional field gives its schema `default`, else None),
or None when the record is not plainly valid. It never raises and never copies the record.

It accepts a subset of what the schema accepts: only exact types (a JSON integer must be an int,
so JSON Schema's `2000.0` integers and anything unusual fall back), and only the keywords listed
in `_SUPPORTED`, plus a top-level `anyOf` whose alternatives only list required fields ("one of
these fields must be present"); a schema using any other keyword gets no fast path at all
(`field_reader` returns None). A record the fast path refuses goes through the full validator, which accepts it or names
what is wrong, so acceptance and every dead-letter message stay the validator's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

FieldReader = Callable[[Any], "tuple[Any, ...] | None"]

_SUPPORTED = {"type", "minimum", "maximum", "minLength", "maxLength", "default", "description", "title"}
_TOP = {"$schema", "$id", "title", "description", "type", "required", "properties", "anyOf"}
_TYPES = {
    "string": "type(v) is str",
    "integer": "type(v) is int",
    "number": "(type(v) is int or type(v) is float)",
    "null": "v is None",
}
_MISSING = object()


def field_reader(schema: Mapping[str, Any], fields: Sequence[str]) -> FieldReader | None:
    """The fast path of `schema` returning `fields`, or None if the schema is beyond it."""
    if not set(schema) <= _TOP or schema.get("type") != "object":
        return None
    props: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    if not set(fields) <= set(props) or not required <= set(props):
        return None
    alternatives = _any_of(schema.get("anyOf"), props)
    if alternatives is None:
        return None
    lines = ["def read(d):"]
    if alternatives:
        present = " or ".join("(" + " and ".join(f"{name!r} in d" for name in alt) + ")" for alt in alternatives)
        lines.append(f"    if not ({present}): return None")
    consts: dict[str, Any] = {"MISSING": _MISSING}
    for n, (name, rule) in enumerate(props.items()):
        test = _test(rule)
        if test is None:
            return None
        var = f"v{n}"
        if name in required:
            lines += [f"    v = d.get({name!r}, MISSING)", f"    if v is MISSING or not ({test}): return None"]
        else:
            consts[f"D{n}"] = rule.get("default")
            lines += [
                f"    v = d.get({name!r}, MISSING)",
                f"    if v is MISSING: v = D{n}",
                f"    elif not ({test}): return None",
            ]
        lines.append(f"    {var} = v")
    index = {name: n for n, name in enumerate(props)}
    lines.append(f"    return ({''.join(f'v{index[f]}, ' for f in fields)})")
    namespace: dict[str, Any] = dict(consts)
    exec("\n".join(lines), namespace)  # the code is generated from our own schema files
    reader: FieldReader = namespace["read"]
    return reader


def _any_of(rule: Any, props: Mapping[str, Any]) -> list[list[str]] | None:
    """The required-field lists of a top-level `anyOf` ([] when there is none), or None when it
    says anything else."""
    if rule is None:
        return []
    if not isinstance(rule, list) or not rule:
        return None
    alternatives: list[list[str]] = []
    for alt in rule:
        if not isinstance(alt, dict) or not set(alt) <= {"required", "description"}:
            return None
        names = alt.get("required")
        if not isinstance(names, list) or not names or not set(names) <= set(props):
            return None
        alternatives.append([str(n) for n in names])
    return alternatives


def _test(rule: Mapping[str, Any]) -> str | None:
    """A Python expression over `v` that holds only if `v` satisfies `rule`, or None if unsupported."""
    if not set(rule) <= _SUPPORTED:
        return None
    types = rule.get("type")
    names = [types] if isinstance(types, str) else list(types or ())
    if not names or not set(names) <= set(_TYPES):
        return None
    alternatives = []
    for name in names:
        parts = [_TYPES[name]]
        if name in ("integer", "number"):
            if "minimum" in rule:
                parts.append(f"{rule['minimum']!r} <= v")
            if "maximum" in rule:
                parts.append(f"v <= {rule['maximum']!r}")
        if name == "string":
            if "minLength" in rule:
                parts.append(f"len(v) >= {int(rule['minLength'])}")
            if "maxLength" in rule:
                parts.append(f"len(v) <= {int(rule['maxLength'])}")
        alternatives.append("(" + " and ".join(parts) + ")")
    return " or ".join(alternatives)
