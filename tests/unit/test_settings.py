"""Settings: read once from the environment, unusable values refused naming the variable."""

from __future__ import annotations

import pytest

from attribution.errors import UsageError
from attribution.settings import Settings


def test_the_worker_runs_on_uvloop_unless_told_otherwise() -> None:
    assert Settings.from_env({}).event_loop == "uvloop"
    assert Settings.from_env({"ATTRIBUTION_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"


def test_an_unknown_event_loop_is_refused_naming_the_variable_and_the_choices() -> None:
    with pytest.raises(UsageError, match="ATTRIBUTION_EVENT_LOOP='trio': expected one of uvloop, asyncio"):
        Settings.from_env({"ATTRIBUTION_EVENT_LOOP": "trio"})


def test_a_non_integer_is_refused_naming_the_variable() -> None:
    with pytest.raises(UsageError, match="ATTRIBUTION_HOLD_MS='soon': expected an integer"):
        Settings.from_env({"ATTRIBUTION_HOLD_MS": "soon"})


def test_an_api_token_shorter_than_32_characters_is_refused_naming_the_variable() -> None:
    with pytest.raises(UsageError, match="ATTRIBUTION_API_TOKEN: 31 characters, at least 32 are required"):
        Settings.from_env({"ATTRIBUTION_API_TOKEN": "x" * 31})


def test_an_api_token_of_32_characters_or_none_at_all_is_accepted() -> None:
    assert Settings.from_env({"ATTRIBUTION_API_TOKEN": "x" * 32}).api_token == "x" * 32
    assert Settings.from_env({"ATTRIBUTION_API_TOKEN": ""}).api_token == ""


def test_the_web_server_answers_local_names_and_its_bind_address_by_default() -> None:
    allowed = Settings.from_env({"ATTRIBUTION_WEB_HOST": "10.0.0.5"}).allowed_hosts
    assert allowed == {"localhost", "127.0.0.1", "::1", "10.0.0.5"}
    assert Settings.from_env({"ATTRIBUTION_WEB_HOST": "0.0.0.0"}).allowed_hosts == {"localhost", "127.0.0.1", "::1"}


def test_allowed_web_hosts_are_added_to_the_local_names_and_a_star_allows_any() -> None:
    env = {"ATTRIBUTION_WEB_ALLOWED_HOSTS": " Worker-1.internal, [fd00::1] "}
    assert Settings.from_env(env).allowed_hosts == {"localhost", "127.0.0.1", "::1", "worker-1.internal", "fd00::1"}
    assert Settings.from_env({"ATTRIBUTION_WEB_ALLOWED_HOSTS": "*"}).allowed_hosts is None


def test_the_repeat_retention_is_90_days_unless_told_otherwise_and_reaches_the_limits() -> None:
    assert Settings.from_env({}).limits.repeat_retention_ms == 90 * 86_400_000
    settings = Settings.from_env({"ATTRIBUTION_REPEAT_RETENTION_MS": "60000"})

    assert settings.limits.repeat_retention_ms == 60_000
    assert settings.limits.max_processed == 256  # the caps are not settings: they bound the record size


def test_the_size_of_touches_read_ahead_is_a_setting_that_reaches_the_limits() -> None:
    assert Settings.from_env({}).limits.ahead_bytes == 300_000
    assert Settings.from_env({"ATTRIBUTION_TOUCHES_AHEAD_BYTES": "16384"}).limits.ahead_bytes == 16_384
