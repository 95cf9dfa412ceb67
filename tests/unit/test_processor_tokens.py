"""Server-side conversions in the stream's glue: verified, re-keyed to the token's user, judged
against that auction's touches; a bad token is a dead letter `invalid_token` and nothing else."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, validator
from attribution.settings import Settings
from attribution.streaming.processor import SOURCE_HEADER, Processor, Result
from attribution.streaming.topics import INTERNAL_TOPICS, REKEY_TOPIC
from attribution.tokens import mint
from helpers import HOUR, T0, USER, click_json, config, conversion_json, impression_json

SECRET = "the-stream-secret-0123456789abcdef"
SETTINGS = Settings(token_secret=SECRET, token_key_id="k1")
NAMES = {t: t for t in (*EVENT_TOPICS, *CONFIG_TOPICS, *INTERNAL_TOPICS)}
TOKEN = mint(USER, "auction-A", secret=SECRET, key_id="k1")


class Stream:
    def __init__(self, settings: Settings = SETTINGS) -> None:
        self.processor = Processor(settings, NAMES, config, clock=lambda: 0.0)
        self.table: dict[bytes, bytes] = {}
        self.offset = 0

    def handle(
        self, name: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> Result:
        self.offset += 1
        result = self.processor.handle(name, key, value, 0, self.offset, headers, self.table.get)
        self.table.update(result.writes)
        return result


def server_conversion(**overrides: Any) -> dict[str, Any]:
    record = conversion_json(timestamp=T0, token=TOKEN)
    del record["user_id"]
    return {**record, **overrides}


def sends(result: Result) -> list[tuple[str, dict[str, Any]]]:
    return [(topic, orjson.loads(value)) for topic, _, value in result.sends]


def test_a_server_side_conversion_is_forwarded_to_the_re_key_topic_keyed_by_the_tokens_user() -> None:
    value = orjson.dumps(server_conversion())
    result = Stream().handle("conversions", value, key=b"advertiser-server-7")

    assert result.rekeys == [(USER.encode(), value, [(SOURCE_HEADER, b"conversions")])]
    assert result.sends == []
    assert result.writes == {}


def test_a_server_side_conversion_is_judged_against_its_auctions_touch_with_source_server() -> None:
    s = Stream()
    s.handle("impressions", orjson.dumps(impression_json(timestamp=T0 - HOUR, auction_id="auction-A")), USER.encode())
    s.handle("clicks", orjson.dumps(click_json(timestamp=T0 - 1, auction_id="auction-B")), USER.encode())
    s.handle(REKEY_TOPIC, orjson.dumps(server_conversion()), USER.encode(), [(SOURCE_HEADER, b"conversions")])
    # both touch streams pass the conversion: it is judged
    s.handle("impressions", orjson.dumps(impression_json(user_id="x", timestamp=T0 + 1)), b"x")
    result = s.handle("clicks", orjson.dumps(click_json(user_id="x", timestamp=T0 + 1)), b"x")

    [(topic, record)] = sends(result)
    assert topic == "attributed-conversions"
    assert (record["user_id"], record["auction_id"], record["attribution"]) == (USER, "auction-A", "post_view")
    assert record["source"] == "server"
    validator("attributed_conversion")(record)


BAD = {
    "forged": {"token": mint(USER, "auction-A", secret="x" * 32, key_id="k1")},
    "unknown key": {"token": mint(USER, "auction-A", secret=SECRET, key_id="k9")},
    "truncated": {"token": TOKEN[:-5]},
    "altered": {"token": TOKEN[:-3] + ("A" if TOKEN[-3] != "A" else "B") + TOKEN[-2:]},
    "empty": {"token": ""},
    "huge": {"token": "A" * 100_000},
    "another user": {"token": TOKEN, "user_id": "someone-else"},
}


@pytest.mark.parametrize("fields", list(BAD.values()), ids=list(BAD))
def test_a_bad_token_is_a_dead_letter_invalid_token_and_nothing_else_happens(fields: dict[str, Any]) -> None:
    record = server_conversion()
    record.update(fields)
    result = Stream().handle("conversions", orjson.dumps(record), key=USER.encode())

    [(topic, letter)] = sends(result)
    assert topic == "dead-letters"
    assert letter["error"]["code"] == "invalid_token"
    assert letter["error"]["message"].startswith("token: ")
    assert result.rekeys == []
    assert result.writes == {}
    assert SECRET not in result.sends[0][2].decode()
    validator("dead_letter")(letter)


def test_a_token_is_refused_by_a_worker_without_token_keys() -> None:
    result = Stream(Settings()).handle("conversions", orjson.dumps(server_conversion()), key=USER.encode())

    [(topic, letter)] = sends(result)
    assert (topic, letter["error"]["code"]) == ("dead-letters", "invalid_token")


def test_a_token_signed_with_a_rotation_key_is_accepted() -> None:
    old = "the-old-secret-0123456789abcdefghij"
    settings = dataclasses.replace(SETTINGS, token_keys=f"k0:{old}")
    record = server_conversion(token=mint(USER, "auction-A", secret=old, key_id="k0"))
    result = Stream(settings).handle("conversions", orjson.dumps(record), key=b"elsewhere")
    [(user_key, _, _)] = result.rekeys
    assert user_key == USER.encode()


def test_a_conversion_with_neither_user_id_nor_token_is_a_schema_violation() -> None:
    record = server_conversion()
    del record["token"]
    result = Stream().handle("conversions", orjson.dumps(record), key=USER.encode())

    [(topic, letter)] = sends(result)
    assert (topic, letter["error"]["code"]) == ("dead-letters", "schema_violation")
    assert "user_id" in letter["error"]["message"]
    assert "token" in letter["error"]["message"]
