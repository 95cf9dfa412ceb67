"""`attribution pixels|line-items` on a real broker refuse what the HTTP API refuses, in the same words."""

from __future__ import annotations

import uuid

import orjson
from click.testing import CliRunner, Result

from attribution.cli import main
from integration.harness import BROKER


def invoke(prefix: str, *args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(
        main, [*args, "--broker", BROKER, "--topic-prefix", prefix], input=stdin, catch_exceptions=False
    )


def test_the_cli_refuses_a_line_item_naming_an_unknown_pixel_like_the_api() -> None:
    prefix = f"it-{uuid.uuid4().hex[:8]}-"
    assert invoke(prefix, "topics", "create").exit_code == 0
    pixel = {"id": 1, "advertiser_id": 10, "name": "checkout"}
    assert invoke(prefix, "pixels", "put", "-", stdin=orjson.dumps(pixel)).exit_code == 0

    refused = invoke(
        prefix, "line-items", "put", "-", stdin=orjson.dumps({"id": 5, "advertiser_id": 10, "pixels": [{"id": 9}]})
    )
    foreign = invoke(
        prefix, "line-items", "put", "-", stdin=orjson.dumps({"id": 6, "advertiser_id": 11, "pixels": [{"id": 1}]})
    )
    accepted = invoke(
        prefix, "line-items", "put", "-", stdin=orjson.dumps({"id": 7, "advertiser_id": 10, "pixels": [{"id": 1}]})
    )
    in_use = invoke(prefix, "pixels", "delete", "1")
    listed = invoke(prefix, "line-items", "list", "--json")

    assert refused.exit_code == 1
    assert refused.stderr.strip() == "line item 5: pixels.0.id: pixel 9 does not exist: create it first"
    assert foreign.exit_code == 1
    assert "pixel 1 belongs to advertiser 10, not to the line item's advertiser 11" in foreign.stderr
    assert accepted.stdout.strip() == "put line item 7"
    assert in_use.exit_code == 1
    assert "pixel 1 is still carried by line item 7: remove it from them first, or use --force" in in_use.stderr
    assert [orjson.loads(line)["id"] for line in listed.stdout.splitlines()] == [7]
