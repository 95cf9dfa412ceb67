"""Every scenario class, replayed offline, gives its hand-computed outcome."""

from __future__ import annotations

import orjson
import pytest

from attribution.replay import replay
from scenarios import SCENARIOS, Scenario, build


def outcomes(s: Scenario) -> tuple[dict[str, str], list[tuple[str, str]], set[str]]:
    result = replay(orjson.dumps(e) for e in s.entries)
    got: dict[str, str] = {}
    for raw in result.outputs["attributed-conversions"]:
        a = orjson.loads(raw)
        got[a["conversion_id"]] = f"{a['attribution']}:{a['touch_event_id']}"
    for raw in result.outputs["unattributed-conversions"]:
        u = orjson.loads(raw)
        got[u["conversion_id"]] = u["reason"]
    dead = [(orjson.loads(r)["topic"], orjson.loads(r)["error"]["code"]) for r in result.outputs["dead-letters"]]
    fires = {orjson.loads(r)["fire_id"] for r in result.outputs["piggyback-fires"]}
    return got, dead, fires


@pytest.mark.parametrize("fn", SCENARIOS, ids=lambda f: f.__name__)
def test_each_scenario_class_replays_to_its_hand_computed_outcome(fn: object) -> None:
    s = build(fn, 1)  # type: ignore[arg-type]
    got, dead, fires = outcomes(s)
    assert got == s.expected
    assert sorted(dead) == sorted(s.dead_letters)
    assert s.fires <= fires
