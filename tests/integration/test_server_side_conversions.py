"""Through real Kafka topics and a real worker: server-side conversions by signed auction token
and order-id duplicates are judged in the stream exactly as `replay` judges them, and the token
secret shows nowhere (worker log, dead letters, /metrics)."""

from __future__ import annotations

import urllib.request
from typing import Any

import orjson

from attribution.replay import replay
from attribution.tokens import mint
from integration.harness import Pipeline, normalized, outcome_count
from scenarios import in_stream_order

SECRET = "integration-token-secret-0123456789"
KEYS = {"k7": SECRET}
ENV = {"ATTRIBUTION_TOKEN_SECRET": SECRET, "ATTRIBUTION_TOKEN_KEY_ID": "k7"}
T0 = 1_700_000_000_000
MINUTE = 60_000


def token(user: str, auction: str) -> str:
    return mint(user, auction, secret=SECRET, key_id="k7")


def touch(topic: str, event_id: str, user: str, ts: int, auction: str, line_item: int = 500) -> dict[str, Any]:
    value = {
        "event_id": event_id,
        "user_id": user,
        "timestamp": ts,
        "advertiser_id": 50,
        "line_item_id": line_item,
        "creative_id": 1,
        "auction_id": auction,
    }
    return {"topic": topic, "value": value}


def conversion(
    event_id: str, ts: int, user: str | None = None, key: str | None = None, **fields: Any
) -> dict[str, Any]:
    value: dict[str, Any] = {"event_id": event_id, "pixel_id": 51, "timestamp": ts, **fields}
    if user is not None:
        value["user_id"] = user
    entry: dict[str, Any] = {"topic": "conversions", "value": value}
    if key is not None:
        entry["key"] = key
    return entry


def entries() -> list[dict[str, Any]]:
    config = [
        {"topic": "pixels", "value": {"id": 51, "advertiser_id": 50, "name": "install", "dedupe_order_id": True,
                                       "min_minutes_per_conv": 0, "post_view_expire_mins": 1440}},
        {"topic": "pixels", "value": {"id": 52, "advertiser_id": 50, "name": "plain", "min_minutes_per_conv": 0}},
        {"topic": "line-items", "value": {"id": 500, "advertiser_id": 50, "pixels": [{"id": 51}, {"id": 52}]}},
    ]  # fmt: skip
    events = []
    for n in range(6):
        user = f"app-user-{n}"
        events += [
            touch("impressions", f"i-{n}-a", user, T0 + n, f"auc-{n}-a"),
            touch("clicks", f"k-{n}-b", user, T0 + MINUTE + n, f"auc-{n}-b"),
        ]
        base = T0 + 10 * MINUTE + 100 * n
        events += [
            # server-side, no user id, keyed by the advertiser's server: credited to auction a's view
            conversion(f"s-{n}", base, key="mmp-server", token=token(user, f"auc-{n}-a"), order_id=f"ord-{n}"),
            # the browser pixel of the same order: duplicate_order_id
            conversion(f"p-{n}", base + 1, user=user, order_id=f"ord-{n}"),
            # the same token replayed with another pixel: valid, only auction a's touch counts
            conversion(f"r-{n}", base + 2, key="mmp-server", pixel_id=52, token=token(user, f"auc-{n}-a")),
            # user id and token both, naming the same user: the token's auction b (the click)
            conversion(f"b-{n}", base + 3, user=user, token=token(user, f"auc-{n}-b"), order_id=f"other-{n}"),
            # a token of an auction the user has no touch of
            conversion(f"z-{n}", base + 4, key="mmp-server", token=token(user, "auc-unknown")),
            # forged, and naming another user than user_id: dead letters invalid_token
            conversion(f"f-{n}", base + 5, key="x", token=mint(user, f"auc-{n}-a", secret="f" * 32, key_id="k7")),
            conversion(f"o-{n}", base + 6, user="someone-else", token=token(user, f"auc-{n}-a")),
        ]
    return config + events


def test_server_side_conversions_and_order_duplicates_in_the_stream_equal_replay(pipeline: Pipeline) -> None:
    records = in_stream_order(entries())
    expected = replay([orjson.dumps(e) for e in records], keys=KEYS).outputs
    judged = outcome_count(expected)
    assert judged == 6 * 5  # the dead letters aside, every conversion has an outcome
    reasons = [orjson.loads(v)["reason"] for v in expected["unattributed-conversions"]]
    assert sorted(set(reasons)) == ["duplicate_order_id", "no_eligible_touch"]
    sources = {
        orjson.loads(v)["source"] for t in ("attributed-conversions", "unattributed-conversions") for v in expected[t]
    }
    assert sources == {"server", "pixel"}
    assert [orjson.loads(d)["error"]["code"] for d in expected["dead-letters"]] == ["invalid_token"] * 12

    # No far-future sentinel touches: the conversions wait for the touch streams (the bounded wait
    # once they are caught up), which gives the server-side ones time for their hop through the
    # re-key topic, as in a live stream where touches keep coming after the conversions.
    pipeline.produce(records)
    pipeline.start_worker(env=ENV)
    out = pipeline.read(
        until=lambda o: outcome_count(o) >= judged and len(o["dead-letters"]) >= 12,
        timeout=120,
    )

    assert normalized(out, pipeline.prefix) == normalized(expected), pipeline.log()
    metrics = urllib.request.urlopen(f"{pipeline.wait_web()}/metrics", timeout=10).read().decode()
    for text in (pipeline.log(), metrics, *(v.decode() for v in out["dead-letters"])):
        assert SECRET not in text
