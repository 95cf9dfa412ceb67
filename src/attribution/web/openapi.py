"""The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`.

The request bodies of pixels and line items *are* the record schemas of `schemas/` (OpenAPI 3.1
schemas are JSON Schema), so the document cannot drift from the rules the API enforces. Read
representations add the read-only fields (`status`, `health`) and list every field, since the
stored record has every default filled in.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from attribution.contract import load_schema
from attribution.web.patterns import portable

MAX_ID = 9223372036854775807
JSON = "application/json"


def record_schema(name: str) -> dict[str, Any]:
    """A record schema of `schemas/` as an OpenAPI schema object (no `$schema` / `$id`; patterns
    made portable, see `patterns.portable_pattern`)."""
    schema: dict[str, Any] = portable(copy.deepcopy(dict(load_schema(name))))
    schema.pop("$schema", None)
    schema.pop("$id", None)
    return schema


def _put_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The body of a PUT: the record without its `id`, which the path gives. (The API also takes a
    body that repeats the path's id, so a record read with GET can be sent back; any other id is a
    422. The schema leaves `id` out because it cannot say "equal to the path parameter".)"""
    put = copy.deepcopy(schema)
    put["properties"].pop("id", None)
    put["required"] = [r for r in put.get("required", []) if r != "id"]
    put["description"] = (put.get("description", "") + " The id is the path's.").strip()
    return put


def _read(schema: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The stored record as read: every field present (defaults filled), plus read-only fields."""
    read = copy.deepcopy(schema)
    read["properties"] = {**read["properties"], **extra}
    read["required"] = list(read["properties"])
    for prop in read["properties"].values():
        prop.pop("default", None)
    items = read["properties"].get("pixels", {}).get("items")
    if items:  # a line item's links are stored with their state filled in
        items["required"] = ["id", "state", "post_click_revenue", "post_view_revenue"]
    return read


_HEALTH = {
    "type": "object",
    "readOnly": True,
    "description": "loads of the pixel, from the outcomes published in the last 24 h (publish time, UTC)",
    "required": ["loads_12h", "last_load_at", "attributed_today"],
    "properties": {
        "loads_12h": {"type": "integer", "minimum": 0, "description": "conversions (any outcome) in the last 12 h"},
        "last_load_at": {"type": ["integer", "null"], "description": "conversion timestamp (ms) of the latest load"},
        "attributed_today": {
            "type": "object",
            "required": ["post_click", "post_view"],
            "properties": {"post_click": {"type": "integer"}, "post_view": {"type": "integer"}},
        },
    },
}
_STATUS = {
    "enum": ["active", "paused", "inactive"],
    "readOnly": True,
    "description": "inactive by state, else active when an active line item carries it in an active link, else paused",
}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}, **extra}


_ERRORS = {
    "400": _error("the body is not JSON, or a query parameter is unusable"),
    "401": _error(
        "missing or wrong bearer token",
        headers={"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    ),
    "403": _error("writes are disabled: no API token is configured on this worker"),
    "404": _error("no such id"),
    "409": _error("conflicts with the current config (already exists, still in use, unknown pixel, advertiser)"),
    "413": _error("the body is too large"),
    "422": _error("the record breaks a rule of the contract: the field and the rule are named"),
    "503": _error("the broker did not take the write"),
    "504": _error("published, but not read back in time"),
}


def _responses(ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    return {**ok, **{c: _ERRORS[c] for c in codes}}


def _id_param(what: str) -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"{what} id",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def _crud(plural: str, what: str, schema: str, read: str, extra_errors: tuple[str, ...] = ()) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    read_ref = {"$ref": f"#/components/schemas/{read}"}
    put_ref = {"$ref": f"#/components/schemas/{schema}Put"}
    one = {"description": f"the {what}", "content": {JSON: {"schema": read_ref}}}
    secure: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    list_key = plural.replace("-", "_")
    write = ("400", "401", "403", "409", "413", "422", "503", "504")
    return {
        f"/{plural}": {
            "get": {
                "operationId": f"list_{list_key}",
                "summary": f"All {what}s, by id",
                "parameters": [
                    {
                        "name": "advertiser_id",
                        "in": "query",
                        "required": False,
                        "description": "only this advertiser's",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    }
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": f"the {what}s",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "required": [list_key],
                                        "properties": {list_key: {"type": "array", "items": read_ref}},
                                    }
                                }
                            },
                        }
                    },
                    "400",
                    "503",
                ),
            },
            "post": {
                "operationId": f"create_{list_key}",
                "summary": f"Create a {what} (published to the compacted topic, then read back)",
                "security": secure,
                "requestBody": {"required": True, "content": {JSON: {"schema": ref}}},
                "responses": _responses(
                    {
                        "201": {
                            **one,
                            "headers": {"Location": {"schema": {"type": "string"}, "description": f"the {what}'s URL"}},
                        }
                    },
                    *write,
                ),
            },
        },
        f"/{plural}/{{id}}": {
            "parameters": [_id_param(what)],
            "get": {
                "operationId": f"get_{list_key}",
                "summary": f"One {what}",
                "responses": _responses({"200": one}, "404", "503"),
            },
            "put": {
                "operationId": f"replace_{list_key}",
                "summary": f"Replace a {what}",
                "security": secure,
                "requestBody": {"required": True, "content": {JSON: {"schema": put_ref}}},
                "responses": _responses({"200": one}, "404", *write),
            },
            "delete": {
                "operationId": f"delete_{list_key}",
                "summary": f"Delete a {what} (a tombstone on the compacted topic)",
                "security": secure,
                "responses": _responses(
                    {"204": {"description": "deleted"}}, "401", "403", "404", "503", "504", *extra_errors
                ),
            },
        },
    }


def _flag(name: str, placeholder: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"add `{name}={placeholder}` to the tag (`1`/`true`) or not (`0`/`false`, the default)",
        "schema": {"enum": ["1", "true", "0", "false"], "default": "false"},
    }


_PERCENTILES = {
    "type": ["object", "null"],
    "required": ["p50", "p90", "p99"],
    "properties": {p: {"type": "integer"} for p in ("p50", "p90", "p99")},
}
_BLOCK = {
    "type": "object",
    "required": ["conversions", "attributed", "unattributed", "value", "booked_revenue", "latency_ms", "delay_ms"],
    "properties": {
        "conversions": {"type": "integer", "minimum": 0},
        "attributed": {
            "type": "object",
            "required": ["post_click", "post_view", "total"],
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "unattributed": {
            "type": "object",
            "required": ["total"],
            "additionalProperties": {"type": "integer", "minimum": 0},
            "description": "by reason",
        },
        "value": {"type": "number"},
        "booked_revenue": {"type": "number"},
        "latency_ms": {**_PERCENTILES, "description": "touch to conversion"},
        "delay_ms": {**_PERCENTILES, "description": "conversion to publication of its outcome"},
    },
}
_WINDOW = {
    "type": "object",
    "required": ["from", "to", "totals", "pixels"],
    "properties": {
        "from": {"type": "integer"},
        "to": {"type": "integer"},
        "totals": {"$ref": "#/components/schemas/StatsBlock"},
        "pixels": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/StatsBlock"}},
    },
}
_STATS = {
    "type": "object",
    "required": ["now", "windows", "series", "source"],
    "properties": {
        "now": {"type": "integer"},
        "windows": {
            "type": "object",
            "required": ["hour", "day"],
            "properties": {"hour": _WINDOW, "day": _WINDOW},
        },
        "series": {
            "type": "object",
            "required": ["bucket_ms", "from", "attributed", "unattributed"],
            "properties": {
                "bucket_ms": {"type": "integer"},
                "from": {"type": "integer"},
                "attributed": {"type": "array", "items": {"type": "integer"}},
                "unattributed": {"type": "array", "items": {"type": "integer"}},
            },
        },
        "source": {
            "type": "object",
            "required": ["outcomes", "oldest", "duplicates", "evicted", "caught_up"],
            "properties": {
                "outcomes": {"type": "integer"},
                "oldest": {"type": ["integer", "null"]},
                "duplicates": {"type": "integer"},
                "evicted": {"type": "integer"},
                "caught_up": {"type": "boolean"},
            },
        },
    },
}
_TAGS = {
    "type": "object",
    "required": ["pixel_id", "format", "tag", "url", "sspx_url"],
    "properties": {
        "pixel_id": {"type": "integer"},
        "format": {"enum": ["img", "js"]},
        "tag": {"type": "string", "description": "the HTML tag, after a comment line naming the pixel"},
        "url": {"type": "string", "description": "the server-side form of the call"},
        "sspx_url": {
            "type": "string",
            "description": "the server-side form by signed auction token (no user id), the token last",
        },
    },
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "line_items": {"type": "array", "items": {"type": "integer"}},
                "pixels": {"type": "array", "items": {"type": "integer"}},
            },
        }
    },
}


def _simple(summary: str, media: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {media: {"schema": schema} if schema else {}}
    return {"get": {"summary": summary, "responses": {"200": {"description": summary, "content": content}}}}


@cache
def _document() -> dict[str, Any]:
    pixel = record_schema("pixel")
    line_item = record_schema("line_item")
    paths: dict[str, Any] = {
        **_crud("pixels", "pixel", "Pixel", "PixelRead", extra_errors=("409",)),
        "/pixels/{id}/tags": {
            "parameters": [_id_param("pixel")],
            "get": {
                "operationId": "export_pixel_tags",
                "summary": "The pixel's tag (image or JavaScript) and its server-side URLs (by user id, by auction token)",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "tag format; the pixel's own pixel_type when left out",
                        "schema": {"enum": ["img", "js"]},
                    },
                    _flag("value", "[VALUE]"),
                    _flag("order_id", "[ORDER_ID]"),
                    _flag("other", "[OTHER]"),
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": "the tags",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Tags"}}},
                        }
                    },
                    "400",
                    "404",
                    "503",
                ),
            },
        },
        **_crud("line-items", "line item", "LineItem", "LineItemRead"),
        "/stats": _simple(
            "Live figures per pixel, over the last hour and day", JSON, {"$ref": "#/components/schemas/Stats"}
        ),
        "/metrics": _simple("Prometheus metrics of this worker", "text/plain"),
        "/dashboard": _simple("The live dashboard page", "text/html"),
        "/openapi.json": _simple("This document", JSON, {"type": "object"}),
    }
    paths["/stats"]["get"]["operationId"] = "stats"
    paths["/metrics"]["get"]["operationId"] = "metrics"
    paths["/dashboard"]["get"]["operationId"] = "dashboard"
    paths["/openapi.json"]["get"]["operationId"] = "openapi"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "attribution: pixels, line items, health and live reporting",
            "version": "1",
            "description": (
                "Pixels and line items are published to the compacted config topics and read back before a write "
                "answers, so a read on the same worker sees it. Writes need `Authorization: Bearer <token>` "
                '(ATTRIBUTION_API_TOKEN). Errors are `{"error": {"code", "message", "field"?}}`.'
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Pixel": pixel,
                "PixelPut": _put_body(pixel),
                "PixelRead": _read(pixel, {"status": _STATUS, "health": _HEALTH}),
                "LineItem": line_item,
                "LineItemPut": _put_body(line_item),
                "LineItemRead": _read(line_item, {}),
                "Tags": _TAGS,
                "Stats": _STATS,
                "StatsBlock": _BLOCK,
                "Error": _ERROR,
            },
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_document())
