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


def test_the_decoded_states_a_worker_keeps_are_a_setting_of_zero_or_more_that_reaches_the_processor() -> None:
    from attribution.streaming.processor import Processor

    assert Settings.from_env({}).state_cache == 100_000
    settings = Settings.from_env({"ATTRIBUTION_STATE_CACHE": "100000"})
    assert Processor(settings, {}, lambda: None).state_cache_size == 100_000  # type: ignore[arg-type,return-value]
    with pytest.raises(UsageError, match="ATTRIBUTION_STATE_CACHE=-1"):
        Settings.from_env({"ATTRIBUTION_STATE_CACHE": "-1"})


SECRET = "s" * 32


def test_no_token_key_is_configured_unless_a_secret_is_given() -> None:
    settings = Settings.from_env({})

    assert settings.token_key_map == {}
    assert settings.token_key_id == "k1"


def test_the_token_secret_is_accepted_under_its_key_id_with_the_rotation_keys() -> None:
    env = {
        "ATTRIBUTION_TOKEN_SECRET": SECRET,
        "ATTRIBUTION_TOKEN_KEY_ID": "k2",
        "ATTRIBUTION_TOKEN_KEYS": " k1:" + "o" * 32 + " , k0:" + "z" * 40,
    }

    assert Settings.from_env(env).token_key_map == {"k1": "o" * 32, "k0": "z" * 40, "k2": SECRET}


def test_a_token_secret_shorter_than_32_bytes_is_refused_without_showing_it() -> None:
    with pytest.raises(UsageError, match="ATTRIBUTION_TOKEN_SECRET: shorter than 32 bytes") as info:
        Settings.from_env({"ATTRIBUTION_TOKEN_SECRET": "hunter2-hunter2-hunter2-hunter2"})

    assert "hunter2" not in str(info.value)


def test_a_rotation_key_that_is_short_or_malformed_is_refused_naming_the_variable_not_the_secret() -> None:
    with pytest.raises(UsageError, match="ATTRIBUTION_TOKEN_KEYS: the secret of key 'old' is shorter") as info:
        Settings.from_env({"ATTRIBUTION_TOKEN_KEYS": "old:tooshort-secret"})
    assert "tooshort" not in str(info.value)
    with pytest.raises(UsageError, match="ATTRIBUTION_TOKEN_KEYS: entry 1 is not `kid:secret`"):
        Settings.from_env({"ATTRIBUTION_TOKEN_KEYS": SECRET})
    with pytest.raises(UsageError, match="ATTRIBUTION_TOKEN_KEY_ID='a b'"):
        Settings.from_env({"ATTRIBUTION_TOKEN_KEY_ID": "a b"})


def test_token_secrets_never_appear_in_the_settings_repr() -> None:
    settings = Settings.from_env({"ATTRIBUTION_TOKEN_SECRET": SECRET, "ATTRIBUTION_TOKEN_KEYS": "k0:" + "z" * 32})

    assert SECRET not in repr(settings)
    assert "z" * 32 not in repr(settings)
