"""The sample config the README and the demo publish is the simulator's own, and valid."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from attribution.contract import decode_value
from attribution.synth import TrafficSpec, config_records

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("topic", ["pixels", "line-items"])
def test_the_example_config_files_are_the_simulators_config_and_valid(topic: str) -> None:
    lines = [orjson.loads(line) for line in (EXAMPLES / f"{topic}.jsonl").read_bytes().splitlines()]
    expected = [v for t, _, v in config_records(TrafficSpec(users=1, events=0)) if t == topic and v is not None]
    assert lines == expected
    for value in lines:
        decode_value(topic, value)  # raises when invalid
