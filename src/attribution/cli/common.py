"""Options and helpers shared by the commands that talk to Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from attribution.errors import KafkaIOError, UsageError
from attribution.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def kafka_options(f: F) -> F:
    """`--broker` (env KAFKA_BROKER) and `--topic-prefix` (env ATTRIBUTION_TOPIC_PREFIX)."""
    f = click.option("--topic-prefix", default=None, help="Prefix of every topic name [env ATTRIBUTION_TOPIC_PREFIX].")(
        f
    )
    f = click.option("-b", "--broker", default=None, help="Kafka bootstrap server(s) [env KAFKA_BROKER].")(f)
    return f


def settings_from(broker: str | None = None, topic_prefix: str | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, with command-line flags taking precedence."""
    try:
        settings = Settings.from_env()
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    values = {k: v for k, v in {"broker": broker, "topic_prefix": topic_prefix, **overrides}.items() if v is not None}
    return dataclasses.replace(settings, **values)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; Kafka's failures become a one-line error, not a traceback (the one place
    the CLI maps them): an unreachable broker, a refusal of the Kafka edge (`KafkaIOError`: a
    missing topic, a read timed out), any other aiokafka error."""
    from attribution.kafka.client import Unreachable

    try:
        return asyncio.run(coro)
    except (Unreachable, OSError, ConnectionError) as exc:
        raise click.ClickException(f"cannot reach Kafka: {exc}") from None
    except KafkaIOError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        if type(exc).__module__.startswith("aiokafka"):
            raise click.ClickException(f"Kafka error: {exc}") from None
        raise
