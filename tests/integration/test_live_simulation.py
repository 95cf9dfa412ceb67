"""`attribution simulate` publishes live traffic by default: the worker's pipeline delay (conversion
timestamp to published outcome) reads seconds, and the hourly report rows are those of the
current hour."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from attribution.domain.hourly import HOUR_MS, hour_of
from integration.harness import ATTRIBUTION, Pipeline, wait_until_counted


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
        result: dict[str, Any] = json.load(response)
        return result


def test_live_simulated_traffic_shows_a_delay_of_seconds_and_rows_of_the_current_hour(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, hold_ms=1000)
    try:
        pipeline.start_worker()
        url = pipeline.wait_web()
        started = time.time_ns() // 1_000_000
        simulate = [ATTRIBUTION, "simulate", "--events", "3000", "--users", "300", "--no-progress"]
        subprocess.run(simulate, env=pipeline.env, check=True, capture_output=True, timeout=120)
        deadline = time.monotonic() + 90
        totals: dict[str, Any] = {}
        while time.monotonic() < deadline:
            totals = stats(url)["windows"]["hour"]["totals"]
            if totals["conversions"] >= 40:
                break
            time.sleep(0.5)
        assert totals["conversions"] >= 40, totals
        assert totals["delay_ms"]["p50"] < 30_000, totals["delay_ms"]
        rows = wait_until_counted(pipeline, 40, timeout=60)
        assert {r["hour"] for r in rows.values()} <= {hour_of(started), hour_of(started) + HOUR_MS}
    finally:
        pipeline.close()
