"""A user with more conversions than one state may hold (150), read before the touches that decide
them: the worker stops reading that conversions partition until the touches catch up, instead of
judging the earliest early, so every outcome is replay's.

The conversions are produced first and the test waits until the worker holds them; the touches
come after. The bounded wait is two minutes (`ATTRIBUTION_HOLD_MS`), far longer than the test:
only the touches can release what is held.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from integration.harness import Pipeline, distinct_outcomes, every_page_config, outcome_count, replay_outputs, sentinels

T0 = 1_700_000_000_000
MINUTE = 60_000
BOT = "bot-user"
ADVERTISER = 10
CONVERSIONS = 400


def conversions(n: int) -> list[dict[str, Any]]:
    """A conversion a minute for the bot, and one a minute for one of 40 other users of the partition."""
    out = []
    for i in range(n):
        ts = T0 + i * MINUTE + 1
        out.append(
            {"topic": "conversions", "value": {"event_id": f"c{i}", "pixel_id": 1, "user_id": BOT, "timestamp": ts}}
        )
        other = {"event_id": f"o{i}", "pixel_id": 1, "user_id": f"other-{i % 40}", "timestamp": ts}
        out.append({"topic": "conversions", "value": other})
    return out


def touches(n: int) -> list[dict[str, Any]]:
    """A click every ten minutes on 5 line items in turn for the bot (each conversion's credit
    depends on which clicks were read), an impression a minute for one of the other users."""
    out = []
    for i in range(n):
        ts = T0 + i * MINUTE
        base = {"timestamp": ts, "advertiser_id": ADVERTISER, "creative_id": 1, "auction_id": str(uuid.UUID(int=i))}
        if i % 10 == 0:
            click = {**base, "event_id": f"k{i}", "user_id": BOT, "line_item_id": 100 + (i // 10) % 5}
        else:
            click = {**base, "event_id": f"k{i}", "user_id": "bystander", "line_item_id": 100, "advertiser_id": 999}
        out.append({"topic": "clicks", "value": click})
        imp = {**base, "event_id": f"i{i}", "user_id": f"other-{(i + 1) % 40}", "line_item_id": 101}
        out.append({"topic": "impressions", "value": imp})
    return out


def held(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("attribution_held_conversions "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_user_over_its_held_cap_waits_for_its_touches_instead_of_being_judged_early(tmp_path: Path) -> None:
    config, early, late = every_page_config(ADVERTISER), conversions(CONVERSIONS), touches(CONVERSIONS)
    expected = distinct_outcomes(replay_outputs(config + early + late))
    assert len(expected) == 2 * CONVERSIONS

    pipeline = Pipeline(tmp_path, partitions=1, hold_ms=120_000)
    try:
        pipeline.start_worker()
        url = pipeline.wait_web()
        pipeline.produce(config)
        time.sleep(1)  # the config is read before the conversions (a conversion of an unknown pixel is refused)
        pipeline.produce(early)
        deadline = time.monotonic() + 60
        while held(url) < 150 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # whatever the worker would judge early, it has judged by now
        assert held(url) >= 150, pipeline.log()[-3000:]
        early_outcomes = pipeline.read(settle=0, timeout=2)
        assert outcome_count(early_outcomes) == 0, json.dumps(sorted(distinct_outcomes(early_outcomes))[:5])

        pipeline.produce(late + sentinels(1))
        out = pipeline.read(until=lambda o: outcome_count(o) >= len(expected), timeout=120)
        got = distinct_outcomes(out)
        assert got == expected, pipeline.log()[-3000:]
    finally:
        pipeline.close()
