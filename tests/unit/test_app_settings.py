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


def test_the_app_refuses_a_token_secret_shorter_than_32_bytes_without_showing_it() -> None:
    import pytest

    from attribution.errors import UsageError

    with pytest.raises(UsageError, match="ATTRIBUTION_TOKEN_SECRET: shorter than 32 bytes") as info:
        create_app(Settings(app_id="short-secret-test", token_secret="guessable-secret"))
    assert "guessable-secret" not in str(info.value)


def test_the_worker_command_refuses_a_short_token_secret_before_anything_starts() -> None:
    from click.testing import CliRunner

    from attribution.cli import main

    result = CliRunner().invoke(main, ["worker"], env={"ATTRIBUTION_TOKEN_SECRET": "guessable-secret"})

    assert result.exit_code == 2
    assert "ATTRIBUTION_TOKEN_SECRET: shorter than 32 bytes" in result.output
    assert "guessable-secret" not in result.output
