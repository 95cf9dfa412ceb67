"""Settings that reach the Faust app the worker runs: static membership and the bounded hand-offs."""

from __future__ import annotations

from attribution.settings import Settings
from attribution.streaming.app import create_app


def test_a_group_instance_id_gives_the_worker_static_membership() -> None:
    app = create_app(Settings(app_id="static-test", group_instance_id="worker-7"))
    assert app.conf.consumer_group_instance_id == "worker-7"


def test_without_a_group_instance_id_membership_is_dynamic() -> None:
    app = create_app(Settings(app_id="dynamic-test"))
    assert app.conf.consumer_group_instance_id is None


def test_the_worker_hands_records_over_in_bounded_batches() -> None:
    # A paused partition's records already handed to Faust are still handled: these bound how far a
    # paced touch partition overshoots (`streaming.flow`).
    app = create_app(Settings(app_id="handoff-test"))
    assert app.conf.broker_max_poll_records == 500
    assert app.conf.stream_buffer_maxsize == 1024
