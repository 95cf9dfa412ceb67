"""The live dashboard in a real browser: headless Chromium (Debian's package, driven through the
driver inside the playwright package) loads `/dashboard` from a real worker, and the numbers it
shows change once conversions go through the pipeline."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from helpers import conversion_json
from integration.harness import Pipeline

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    pipeline = Pipeline(tmp_path_factory.mktemp("dashboard"), hold_ms=500)
    pipeline.produce([{"topic": "pixels", "value": {"id": 1, "advertiser_id": 10, "name": "signup"}}])
    pipeline.start_worker()
    try:
        pipeline.wait_web()
        yield pipeline
    finally:
        pipeline.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def conversions(prefix: str, n: int) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [
        {
            "topic": "conversions",
            "value": conversion_json(event_id=f"{prefix}-{i}", pixel_id=1, user_id=f"{prefix}-u{i}", timestamp=now),
        }
        for i in range(n)
    ]


def shown(page: Any, selector: str) -> int:
    return int((page.text_content(selector) or "").replace(",", ""))


def test_the_dashboard_shows_conversions_as_they_are_judged(worker: Pipeline, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{worker.web_url()}/dashboard")
    page.wait_for_function("/^[0-9,]+$/.test(document.getElementById('kpi-conversions').textContent)", timeout=15_000)
    before = shown(page, "#kpi-conversions")
    unattributed_before = shown(page, "#kpi-unattributed")

    # Playwright's sync API runs an event loop on this thread: produce from another one.
    with ThreadPoolExecutor(1) as pool:  # no line item carries pixel 1: each conversion is pixel_paused
        pool.submit(worker.produce, conversions("dash", 3)).result(timeout=60)

    page.wait_for_function(
        f"Number(document.getElementById('kpi-conversions').textContent.replace(/,/g, '')) >= {before + 3}",
        timeout=30_000,
    )
    assert shown(page, "#kpi-conversions") == before + 3
    assert shown(page, "#kpi-unattributed") == unattributed_before + 3
    assert page.text_content("#status").startswith("live")
    row = page.locator("#pixels tr[data-pixel='1'] td")
    assert row.nth(0).text_content() == "1"
    assert int(row.nth(4).text_content() or "0") >= 3
    assert page.locator("#chart-minutes rect").count() >= 1  # the minute chart drew the new bar
    assert page.locator("#chart-reasons text[data-reason='pixel_paused']").text_content() == str(
        unattributed_before + 3
    )

    page.click("button[data-window='day']")
    assert shown(page, "#kpi-conversions") >= before + 3
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert errors == []
