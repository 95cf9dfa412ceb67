"""A changelog write that fails stops the worker at once, loudly.

The users table lives in memory (or RocksDB) and in its changelog topic; a worker that restarts or
takes a partition over rebuilds it from the changelog. Faust 0.15.3 sends changelog records in the
background and, when the broker refuses one (`MessageSizeTooLargeError` over the topic's
`max.message.bytes`, an authorisation error, a record that outlived its delivery timeout), only
logs a warning in `Topic._on_published` and carries on from memory: after the next restart that
user's state is whatever the changelog last held, and a redelivered conversion may get a second,
different outcome. (Upstream: faust-streaming logs and drops the error of every `send_soon`
without a waiter; table changelog writes are such sends.)

`ChangelogGuard` is a Faust sensor (the documented extension point Faust calls for every send and
every send error; the users table's writes, sent by `changelog.TableWriter`, call `failed` from
their own completion): it remembers which sends are changelog writes of the users table and, when one
fails, logs the user key, the record size, the topic and the error, then ends the process
immediately with `EXIT_CHANGELOG_FAILED`. Immediately, not through Faust's graceful stop: that
stop commits the consumed offsets, including the record whose state was not written, which would
make the loss permanent; exiting without a commit makes the next worker read that record again.

With the state bounds of `domain.state` the largest state is far below the topic's limit
(`contract.state_codec.MAX_STATE_BYTES` against `topics.MAX_MESSAGE_BYTES`), so this is a last
line of defence, not a code path of normal traffic.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection
from typing import Any

import faust

log = logging.getLogger(__name__)

#: The process's exit status when a changelog write failed (EX_SOFTWARE of sysexits.h).
EXIT_CHANGELOG_FAILED = 70


class ChangelogGuard(faust.Sensor):
    """Stops the worker when a write to one of `changelogs` (actual topic names) fails.

    `exit` is `os._exit` in production, replaceable in tests."""

    def __init__(self, changelogs: Collection[str], exit: Callable[[int], Any] = os._exit, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.changelogs = set(changelogs)
        self.exit = exit

    def watch(self, topic: str) -> None:
        """Stop the worker when a write to `topic` fails too (a table made after the guard)."""
        self.changelogs.add(topic)

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> Any:
        # Called for every send: a set lookup, and a tuple for changelog writes only.
        if topic in self.changelogs:
            return (topic, getattr(message, "key", None), valsize)
        return None

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        if not state:
            return
        topic, key, size = state
        self.failed(topic, key, size, exc)

    def failed(self, topic: str, key: Any, size: int, exc: BaseException) -> None:
        """A changelog write failed: say which, and end the process now (`EXIT_CHANGELOG_FAILED`).
        Also called by the users table's own writer (`changelog.TableWriter`)."""
        log.critical(
            "changelog write FAILED for user key %r (%d bytes) to %s: %r. The state in memory is not "
            "durable: stopping the worker now, without committing, so that the record is read again "
            "on restart (exit status %d).",
            key,
            size,
            topic,
            exc,
            EXIT_CHANGELOG_FAILED,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        self.exit(EXIT_CHANGELOG_FAILED)
