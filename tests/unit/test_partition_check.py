"""The worker's start-up check of partition counts: co-partitioned topics must all have
ATTRIBUTION_PARTITIONS partitions, or it refuses to start naming each topic and its count."""

from __future__ import annotations

from attribution.settings import Settings
from attribution.streaming import create_app
from attribution.streaming.topics import co_partitioned, partition_mismatch, topic_specs

SETTINGS = Settings(topic_prefix="p-", app_id="grp", partitions=4)
INPUTS = ["p-impressions", "p-clicks", "p-conversions", "p-rekeyed-events", "p-event-time-ticks", "p-report-updates"]
CHANGELOGS = ["grp-users-changelog", "grp-reports-changelog"]


def test_the_co_partitioned_topics_are_the_inputs_the_internal_topics_and_the_table_changelogs() -> None:
    assert co_partitioned(SETTINGS) == INPUTS + CHANGELOGS


def test_the_changelogs_checked_are_those_of_the_apps_tables() -> None:
    app = create_app(SETTINGS)
    names = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert names == set(CHANGELOGS)


def test_every_co_partitioned_topic_the_topics_command_creates_gets_the_setting() -> None:
    created = {s.name: s.partitions for s in topic_specs(SETTINGS)}
    assert all(created[t] == 4 for t in INPUTS)


def test_matching_counts_and_missing_topics_let_the_worker_start() -> None:
    assert partition_mismatch(SETTINGS, {}) is None
    assert partition_mismatch(SETTINGS, dict.fromkeys(INPUTS + CHANGELOGS, 4)) is None
    assert partition_mismatch(SETTINGS, {"p-impressions": 4, "p-pixels": 1, "p-dead-letters": 7}) is None


def test_topics_created_with_2_partitions_refuse_a_worker_set_to_4_naming_each_topic_and_the_fix() -> None:
    message = partition_mismatch(SETTINGS, {**dict.fromkeys(INPUTS, 2), "p-pixels": 1})
    assert message is not None
    assert "ATTRIBUTION_PARTITIONS=4" in message
    for topic in INPUTS:
        assert f"{topic}: 2 partitions (mismatch)" in message
    assert "set ATTRIBUTION_PARTITIONS=2" in message
    assert "p-pixels" not in message


def test_a_changelog_left_from_another_count_refuses_and_asks_for_one_count() -> None:
    message = partition_mismatch(SETTINGS, {**dict.fromkeys(INPUTS, 4), "grp-users-changelog": 8})
    assert message is not None
    assert "grp-users-changelog: 8 partitions (mismatch)" in message
    assert "p-clicks: 4 partitions\n" in message
    assert "recreate the topics so that they all have one count" in message
