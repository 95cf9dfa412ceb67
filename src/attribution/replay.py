"""Offline replay: the engine over a file of records, no broker, same rules as the stream.

Input: JSON lines `{"topic": NAME, "key": optional, "value": record | null | "raw text"}` with the
default topic names of DESIGN §2.1. A string `value` is taken as the record's raw bytes (so bad
payloads can be replayed too); a null value on `pixels`/`line-items` deletes that id.

Order: config records first, in file order (the last valid write per id wins; an invalid one is a
dead letter and the previous version stays); then events by timestamp, touches before conversions
at equal timestamps, file order otherwise. Dead letters come out in file order; the partition of a
replayed record is 0 and its offset counts the records of its topic in the file, as if the file had
been produced to single-partition topics.

Memory: a user whose state has expired (`domain.state.expires_at` before the current event's
timestamp) is dropped from the map of states by the stream's own `ExpiryIndex`, so replay holds
the users active within the retention windows, not every user of the file; `ReplayResult.users`
holds the states left at the end.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from attribution.contract import INPUT_TOPICS, dead_letter, decode_value, encode, topic_of
from attribution.contract.codec import parse_json
from attribution.domain import (
    DEFAULT_LIMITS,
    EMPTY,
    Config,
    Conversion,
    Limits,
    LineItem,
    Pixel,
    Touch,
    UserState,
    step,
)
from attribution.domain.state import latest_use
from attribution.errors import InvalidJson, RecordError
from attribution.expiry_index import ExpiryIndex

OUTPUT_FILES = {
    "attributed-conversions": "attributed-conversions.jsonl",
    "unattributed-conversions": "unattributed-conversions.jsonl",
    "piggyback-fires": "piggyback-fires.jsonl",
    "dead-letters": "dead-letters.jsonl",
}

Progress = Callable[[int], None]


@dataclass
class ReplayResult:
    """Encoded output record values by output topic, in emission order."""

    outputs: dict[str, list[bytes]] = field(default_factory=lambda: {t: [] for t in OUTPUT_FILES})
    users: dict[str, UserState] = field(default_factory=dict)
    events: int = 0
    expired: int = 0  # users dropped from `users` because their state expired


@dataclass
class _Loaded:
    pixels: dict[int, Pixel] = field(default_factory=dict)
    line_items: dict[int, LineItem] = field(default_factory=dict)
    # (timestamp, 0 touch / 1 conversion, file order, event)
    events: list[tuple[int, int, int, Touch | Conversion]] = field(default_factory=list)


def replay(
    lines: Iterable[bytes],
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay JSON lines; see the module docstring for the format and the ordering."""
    # Records, states and outputs form no reference cycles: the cyclic collector would only walk
    # millions of young objects again and again (a quarter of the run time on 1M events).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _replay(lines, limits, progress)
    finally:
        if collecting:
            gc.enable()


def _replay(lines: Iterable[bytes], limits: Limits, progress: Progress | None) -> ReplayResult:
    result = ReplayResult()
    dead = result.outputs["dead-letters"]
    loaded = _load(lines, dead, progress)
    config = Config(loaded.pixels, loaded.line_items)
    events = loaded.events
    events.sort(key=_order)
    users = result.users
    outs = result.outputs
    index: ExpiryIndex[str] = ExpiryIndex()
    retention = config.retention

    def check(uid: str) -> int | None:
        state = users.get(uid)
        return None if state is None else latest_use(state, retention, limits)

    for n, (ts, _, _, event) in enumerate(events, 1):
        uid = event.user_id
        before = users.get(uid)
        state, outputs = step(EMPTY if before is None else before, event, config, limits)
        users[uid] = state
        if before is None:
            index.add(0, uid, latest_use(state, retention, limits))
        if index.any_due(0, ts):  # the horizon: no later event is earlier than this one
            for gone in index.due(0, ts, check):
                del users[gone]
                result.expired += 1
        for out in outputs:
            outs[topic_of(out)].append(encode(out))
        if progress is not None and not n % 65536:
            progress(65536)
    result.events = len(events)
    return result


def _order(item: tuple[int, int, int, Touch | Conversion]) -> tuple[int, int, int]:
    return item[0], item[1], item[2]


def _load(lines: Iterable[bytes], dead: list[bytes], progress: Progress | None) -> _Loaded:
    loaded = _Loaded()
    offsets = dict.fromkeys(INPUT_TOPICS, 0)
    for lineno, line in enumerate(_nonblank(lines, progress)):
        topic = "<input>"
        raw: bytes | None = None
        try:
            entry = parse_json(line)
            if not isinstance(entry, dict) or entry.get("topic") not in offsets:
                raise InvalidJson(_bad_line(entry), "topic", code="invalid_line")
            topic = entry["topic"]
            offset = offsets[topic]
            offsets[topic] = offset + 1
            value = entry.get("value")
            if isinstance(value, str):
                raw = value.encode("utf-8", "surrogateescape")
                value = parse_json(raw)
            elif value is not None:
                raw = None  # serialised only if it turns out to be bad
            _apply(loaded, topic, entry.get("key"), value, lineno)
        except RecordError as exc:
            if topic == "<input>":
                dead.append(encode(dead_letter(exc, topic, 0, lineno, line)))
            else:
                if raw is None and entry.get("value") is not None:
                    raw = orjson.dumps(entry["value"])
                dead.append(encode(dead_letter(exc, topic, 0, offset, raw)))
    return loaded


def _apply(loaded: _Loaded, topic: str, key: Any, value: Any, lineno: int) -> None:
    if value is None and topic in ("pixels", "line-items"):
        config: dict[int, Any] = loaded.pixels if topic == "pixels" else loaded.line_items
        config.pop(config_id(key), None)  # a tombstone: delete
        return
    obj = decode_value(topic, value)
    if isinstance(obj, Pixel):
        loaded.pixels[obj.id] = obj
    elif isinstance(obj, LineItem):
        loaded.line_items[obj.id] = obj
    else:
        loaded.events.append((obj.timestamp, 1 if isinstance(obj, Conversion) else 0, lineno, obj))


def config_id(key: Any) -> int:
    """The id of a config record from its key (an int, or its decimal text)."""
    if isinstance(key, int) and not isinstance(key, bool) and key > 0:
        return key
    if isinstance(key, (str, bytes)) and key.strip().isdigit() and int(key) > 0:
        return int(key)
    raise InvalidJson(f"key: {key!r} is not a config id (a positive integer)", "key", code="invalid_key")


def _bad_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "line: expected an object with topic, key and value"
    return f"topic: {entry.get('topic')!r} is not one of {', '.join(INPUT_TOPICS)}"


def _nonblank(lines: Iterable[bytes], progress: Progress | None) -> Iterator[bytes]:
    for n, line in enumerate(lines, 1):
        if progress is not None and not n % 65536:
            progress(65536)
        if line.strip():
            yield line
