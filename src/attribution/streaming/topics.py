"""Topic names and specs, and idempotent creation of every topic (docs/design.md, Topics)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faust.types import TableT

from attribution.contract import CONFIG_TOPICS, EVENT_TOPICS, OUTPUT_TOPICS
from attribution.settings import Settings
from attribution.streaming.reports import REPORT_TOPIC, UPDATES_TOPIC

#: Internal topic carrying events whose key was not their user_id, re-keyed by user_id.
REKEY_TOPIC = "rekeyed-events"
#: Internal topic on which the app's timer wakes a partition whose held conversions waited enough.
TICK_TOPIC = "event-time-ticks"
INTERNAL_TOPICS = (REKEY_TOPIC, TICK_TOPIC)
#: The app's changelogged tables (user state), co-partitioned with the inputs.
TABLES = ("users",)
#: The report topics: `report-updates` (internal, outcomes keyed by report row) is co-partitioned
#: with the `reports` table's changelog; `conversion-reports` is the compacted output.
REPORT_TABLES = ("reports",)

#: `max.message.bytes` set explicitly on every topic the product creates, the users changelog
#: included: Kafka's default (1 MiB plus the 12-byte log overhead), written down so that a broker
#: configured lower does not silently refuse state records. The largest state without held
#: conversions encodes to under `contract.state_codec.MAX_STATE_BYTES` (740 KB), below it.
MAX_MESSAGE_BYTES = 1_048_588


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the product. Input topics (and the re-key topic) are co-partitioned."""
    n = settings.partitions
    specs = [TopicSpec(settings.topic(t), n) for t in (*EVENT_TOPICS, *INTERNAL_TOPICS)]
    specs += [TopicSpec(settings.topic(t), 1, compacted=True) for t in CONFIG_TOPICS]
    specs += [TopicSpec(settings.topic(t), n) for t in OUTPUT_TOPICS]
    specs += [TopicSpec(settings.topic(UPDATES_TOPIC), n), TopicSpec(settings.topic(REPORT_TOPIC), n, compacted=True)]
    return specs


def changelog_specs(settings: Settings) -> list[TopicSpec]:
    """The changelogs of the app's tables (compacted, co-partitioned with the inputs), named as
    Faust names them from the app id."""
    n = settings.partitions
    return [TopicSpec(f"{settings.app_id}-{t}-changelog", n, compacted=True) for t in (*TABLES, *REPORT_TABLES)]


def co_partitioned(settings: Settings) -> list[str]:
    """The topics that must all have `settings.partitions` partitions: the event topics, the
    internal re-key and tick topics, the tables' changelogs (named by Faust from the app id), and
    the report updates with their table's changelog (a row's partition is computed from the count)."""
    names = [settings.topic(t) for t in (*EVENT_TOPICS, *INTERNAL_TOPICS, UPDATES_TOPIC)]
    return names + [f"{settings.app_id}-{table}-changelog" for table in (*TABLES, *REPORT_TABLES)]


def partition_mismatch(settings: Settings, counts: Mapping[str, int]) -> str | None:
    """Why the worker must not start with these partition counts (topic -> count, existing topics
    only), or None. Missing topics are fine: the worker creates them with the setting's count."""
    want = settings.partitions
    found = {t: counts[t] for t in co_partitioned(settings) if t in counts}
    if all(n == want for n in found.values()):
        return None
    counts_seen = set(found.values())
    fix = (
        f"set ATTRIBUTION_PARTITIONS={counts_seen.pop()} (the topics' count)"
        if len(counts_seen) == 1
        else "recreate the topics so that they all have one count"
    )
    return (
        f"partition mismatch: ATTRIBUTION_PARTITIONS={want}, and these co-partitioned topics must all have "
        "that many partitions (a user's records and state share one partition number):\n"
        + "\n".join(f"  {t}: {n} partitions{'' if n == want else ' (mismatch)'}" for t, n in found.items())
        + f"\nThe worker did not start and consumed nothing: {fix}."
    )


async def partition_counts(settings: Settings) -> dict[str, int]:
    """The partition count of every existing topic of the cluster (nothing is created)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=20000)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if t["partitions"]}
    finally:
        await admin.close()


async def create_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> dict[str, str]:
    """Create missing topics (by default every topic of the product and the tables' changelogs);
    existing ones are left as they are. Returns name -> created|exists.

    The changelogs are created here rather than left to Faust, which declares them as the worker
    starts: a table written before the consumer's metadata knows its new changelog fails with
    Faust's `PartitionsMismatch` ("the changelog topic has 0 partitions")."""
    specs = topic_specs(settings) + changelog_specs(settings) if specs is None else specs
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=20000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        result = {s.name: "exists" for s in specs if s.name in existing}
        new = [
            NewTopic(
                s.name,
                s.partitions,
                1,
                topic_configs=topic_configs(s),
            )
            for s in specs
            if s.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently: fine
                await admin.create_topics(new)
            result.update({t.name: "created" for t in new})
        return result
    finally:
        await admin.close()


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """The topic-level configs a topic is created with."""
    configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    if spec.compacted:
        configs["cleanup.policy"] = "compact"
    return configs


def bytes_table(app: faust.App, name: str, partitions: int) -> TableT[Any, Any]:
    """A table of encoded values per key, changelogged with the topics' record size limit, so a
    value the table holds is a value its changelog accepts."""
    return app.Table(
        name,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        default=None,
        extra_topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
    )
