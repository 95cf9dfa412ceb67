"""Replay judges server-side conversions and order-id duplicates as the stream does, with the
token keys of the same settings; and the `tokens` command mints and inspects tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from attribution.cli import main
from attribution.replay import replay, replay_inputs
from attribution.replay_sink import MemorySink
from attribution.tokens import mint
from helpers import HOUR, T0, click_json, conversion_json, impression_json, line, line_item_json, pixel_json

SECRET = "replay-secret-0123456789abcdefghijk"
KEYS = {"k1": SECRET}


def server_conversion(user: str, auction: str, **fields: Any) -> dict[str, Any]:
    record = conversion_json(**fields)
    del record["user_id"]
    record["token"] = mint(user, auction, secret=SECRET, key_id="k1")
    return record


def lines() -> list[bytes]:
    return [
        line("pixels", pixel_json(dedupe_order_id=True, min_minutes_per_conv=0)),
        line("line-items", line_item_json()),
        line("impressions", impression_json(event_id="i1", user_id="u1", timestamp=T0, auction_id="A")),
        line("clicks", click_json(event_id="k1", user_id="u1", timestamp=T0 + 1, auction_id="B")),
        # no user_id, keyed by the advertiser's server: the token names u1 and auction A
        line("conversions", server_conversion("u1", "A", event_id="s1", timestamp=T0 + HOUR, order_id="O-1"), "adv"),
        # the browser pixel of the same order: a duplicate by order id
        line("conversions", conversion_json(event_id="p1", user_id="u1", timestamp=T0 + HOUR + 1, order_id="O-1")),
        # a token for an auction the user has no touch of
        line("conversions", server_conversion("u1", "Z", event_id="s2", timestamp=T0 + HOUR + 2)),
        # a forged token
        line("conversions", {**server_conversion("u1", "A", event_id="s3", timestamp=T0 + HOUR + 3), "token": "AAAA"}),
    ]


def outputs(result: Any) -> dict[str, list[dict[str, Any]]]:
    return {topic: [orjson.loads(r) for r in records] for topic, records in result.outputs.items()}


def test_replay_judges_server_side_conversions_and_order_duplicates_with_the_keys_given() -> None:
    out = outputs(replay(lines(), keys=KEYS))

    [attributed] = out["attributed-conversions"]
    assert (attributed["conversion_id"], attributed["user_id"], attributed["touch_event_id"]) == ("s1", "u1", "i1")
    assert attributed["source"] == "server"
    assert [(u["conversion_id"], u["reason"], u["source"]) for u in out["unattributed-conversions"]] == [
        ("p1", "duplicate_order_id", "pixel"),
        ("s2", "no_eligible_touch", "server"),
    ]
    [letter] = out["dead-letters"]
    assert letter["error"]["code"] == "invalid_token"
    assert SECRET not in orjson.dumps(letter).decode()


def test_replay_without_keys_refuses_every_token() -> None:
    out = outputs(replay(lines()))

    assert [d["error"]["code"] for d in out["dead-letters"]] == ["invalid_token"] * 3


def test_the_external_sort_keeps_server_side_conversions_as_the_merge_does() -> None:
    unordered = list(reversed(lines()[2:]))
    config = lines()[:2]
    merged = MemorySink()
    sorted_ = MemorySink()
    replay_inputs([config + lines()[2:]], merged, keys=KEYS)
    replay_inputs([config + unordered], sorted_, keys=KEYS, run_events=1)

    assert merged.channels["attributed-conversions"] == sorted_.channels["attributed-conversions"]
    assert merged.channels["unattributed-conversions"] == sorted_.channels["unattributed-conversions"]


def test_the_replay_command_takes_the_keys_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines()))
    env = {"ATTRIBUTION_TOKEN_SECRET": SECRET, "ATTRIBUTION_TOKEN_KEY_ID": "k1"}

    result = CliRunner().invoke(main, ["replay", str(path), "--out", str(tmp_path / "out")], env=env)

    assert result.exit_code == 0, result.output
    expected = replay(lines(), keys=KEYS).outputs["attributed-conversions"]
    assert (tmp_path / "out" / "attributed-conversions.jsonl").read_bytes() == b"".join(r + b"\n" for r in expected)


# --- attribution tokens mint|inspect ----------------------------------------------------------


@pytest.fixture
def env() -> dict[str, str]:
    return {"ATTRIBUTION_TOKEN_SECRET": SECRET, "ATTRIBUTION_TOKEN_KEY_ID": "k1", "ATTRIBUTION_TOKEN_KEYS": ""}


def test_tokens_mint_prints_a_token_that_the_library_verifies(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["tokens", "mint", "--user-id", "u1", "--auction-id", "A"], env=env)

    assert result.exit_code == 0, result.output
    assert result.output.strip() == mint("u1", "A", secret=SECRET, key_id="k1")
    assert SECRET not in result.output


def test_tokens_inspect_says_what_a_token_carries_and_that_it_verifies(env: dict[str, str]) -> None:
    token = mint("u1", "A", secret=SECRET, key_id="k1")

    result = CliRunner().invoke(main, ["tokens", "inspect", token], env=env)

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["key_id: k1", "user_id: u1", "auction_id: A", "verified: yes"]


def test_tokens_inspect_exits_non_zero_for_a_token_that_does_not_verify(env: dict[str, str]) -> None:
    forged = mint("u1", "A", secret="f" * 32, key_id="k1")

    result = CliRunner().invoke(main, ["tokens", "inspect", forged], env=env)

    assert result.exit_code == 1
    assert "user_id: u1" in result.output
    assert "verified: no (token: signature does not verify)" in result.output
    assert SECRET not in result.output
    garbage = CliRunner().invoke(main, ["tokens", "inspect", "%%%"], env=env)
    assert garbage.exit_code == 1
    assert "does not parse" in garbage.output


def test_tokens_mint_refuses_without_a_secret_or_with_a_short_one(env: dict[str, str]) -> None:
    args = ["tokens", "mint", "--user-id", "u1", "--auction-id", "A"]
    missing = CliRunner().invoke(main, args, env={**env, "ATTRIBUTION_TOKEN_SECRET": ""})
    short = CliRunner().invoke(main, args, env={**env, "ATTRIBUTION_TOKEN_SECRET": "short-secret"})

    assert missing.exit_code == 2
    assert "ATTRIBUTION_TOKEN_SECRET is not set" in missing.output
    assert short.exit_code == 2
    assert "shorter than 32 bytes" in short.output
    assert "short-secret" not in short.output
