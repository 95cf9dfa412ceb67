"""Integration tier: needs a real Kafka broker (`make test` starts one when none answers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.harness import BROKER, Pipeline, broker_up


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _broker() -> None:
    if not broker_up():
        pytest.fail(f"no Kafka broker at {BROKER}: run `make kafka-up` (or `make test`, which starts one)")


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path)
    try:
        yield p
    finally:
        p.close()
