"""Settings that reach the Faust app the worker runs: static membership."""

from __future__ import annotations

from attribution.settings import Settings
from attribution.streaming.app import create_app


def test_a_group_instance_id_gives_the_worker_static_membership() -> None:
    app = create_app(Settings(app_id="static-test", group_instance_id="worker-7"))
    assert app.conf.consumer_group_instance_id == "worker-7"


def test_without_a_group_instance_id_membership_is_dynamic() -> None:
    app = create_app(Settings(app_id="dynamic-test"))
    assert app.conf.consumer_group_instance_id is None
