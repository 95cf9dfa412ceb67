"""A failed changelog write stops the worker loudly (`streaming.durability`), and every topic the
product creates carries an explicit `max.message.bytes` (`streaming.topics`)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from attribution.settings import Settings
from attribution.streaming.durability import EXIT_CHANGELOG_FAILED, ChangelogGuard
from attribution.streaming.topics import MAX_MESSAGE_BYTES, TopicSpec, topic_configs

CHANGELOG = "attribution-users-changelog"


def guard_and_exits() -> tuple[ChangelogGuard, list[int]]:
    exits: list[int] = []
    return ChangelogGuard([CHANGELOG], exit=exits.append), exits


def test_a_failed_changelog_write_logs_the_user_key_and_size_and_exits_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard, exits = guard_and_exits()
    state = guard.on_send_initiated(None, CHANGELOG, SimpleNamespace(key=b"user-7"), 6, 2_000_000)

    with caplog.at_level(logging.CRITICAL):
        guard.on_send_error(None, MessageSizeTooLargeError(), state)

    assert exits == [EXIT_CHANGELOG_FAILED]
    assert "b'user-7' (2000000 bytes)" in caplog.text
    assert CHANGELOG in caplog.text
    assert "MessageSizeTooLarge" in caplog.text


def test_a_failed_send_to_another_topic_is_left_to_faust() -> None:
    guard, exits = guard_and_exits()
    state = guard.on_send_initiated(None, "attributed-conversions", SimpleNamespace(key=b"u"), 1, 10)

    guard.on_send_error(None, MessageSizeTooLargeError(), state)

    assert state is None
    assert exits == []


def test_a_table_made_after_the_guard_is_guarded_once_watched() -> None:
    guard, exits = guard_and_exits()
    guard.watch("attribution-reports-changelog")
    state = guard.on_send_initiated(None, "attribution-reports-changelog", SimpleNamespace(key=b"row#3"), 5, 10)

    guard.on_send_error(None, MessageSizeTooLargeError(), state)

    assert exits == [EXIT_CHANGELOG_FAILED]


def test_every_created_topic_has_an_explicit_max_message_bytes_over_1_mib() -> None:
    assert topic_configs(TopicSpec("events", 4)) == {"max.message.bytes": "1048588"}
    assert topic_configs(TopicSpec("pixels", 1, compacted=True)) == {
        "max.message.bytes": "1048588",
        "cleanup.policy": "compact",
    }
    assert MAX_MESSAGE_BYTES > 1_048_576


def test_the_users_changelog_is_declared_with_the_same_max_message_bytes_and_guarded() -> None:
    from attribution.streaming import create_app

    app = create_app(Settings(app_id="durability-test"))
    users = app.attribution["users"]  # type: ignore[attr-defined]

    assert users.changelog_topic.config["max.message.bytes"] == str(MAX_MESSAGE_BYTES)
    guards = [s for s in app.sensors if isinstance(s, ChangelogGuard)]
    guarded = {"durability-test-users-changelog", "durability-test-reports-changelog", "report-updates"}
    assert [g.changelogs for g in guards] == [frozenset(guarded)]
