"""Reading replay inputs: JSON lines to dead letters, configuration and keyed events, one input at a time.

A replay input is a file (or a list of lines) of `{"topic": NAME, "key": ..., "value": ...}` lines.
`Reader` turns one input into:

* dead letters, in the input's order, appended to the `dead` list it is given;
* configuration writes and tombstones, applied in the input's order to the shared `ConfigFold`
  (the last valid write per id wins; an invalid one leaves the previous version);
* events as `Row`s `(timestamp, rank, input, line, event)`, where `rank` is 0 for a touch and 1 for
  a conversion, `input` the input's index and `line` the index of the line among the input's
  non-blank lines. Sorting rows sorts events into replay order: by timestamp, touches before
  conversions at equal timestamps, then input order (input index, then line), which is the order
  of the inputs concatenated. The event itself is never compared: `(input, line)` is unique.

With `strict`, the reader also checks that the input is a "topic dump": its events in
non-decreasing (timestamp, rank) and no configuration record after its first event. It raises
`Unordered` at the first record that breaks this, so a replay can stream and merge such inputs
without holding them, and sort otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import orjson

from attribution.app.config import ConfigFold
from attribution.contract import INPUT_TOPICS, dead_letter, decode_value, encode
from attribution.contract import config_id as contract_config_id
from attribution.contract.codec import parse_json
from attribution.domain import Conversion, LineItem, Pixel, Touch
from attribution.errors import InvalidKey, InvalidLine, RecordError

Event = Touch | Conversion
#: (timestamp ms, 0 touch / 1 conversion, input index, line index, event)
Row = tuple[int, int, int, int, Event]

_CONFIG_TOPICS = ("pixels", "line-items")


class Unordered(Exception):
    """An input is not a topic dump: an event out of order, or a config record after an event."""


class Appender(Protocol):
    def append(self, item: bytes, /) -> None: ...


class Reader:
    """One input, read once, in order; iterate it for its event rows (see the module docstring)."""

    def __init__(
        self,
        index: int,
        lines: Iterable[bytes],
        folded: ConfigFold,
        dead: Appender,
        strict: bool,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        """`keys`: the auction token keys that verify server-side conversions (none: refused)."""
        self.keys: Mapping[str, str] = keys or {}
        self.index = index
        self.lines = lines
        self.folded = folded
        self.dead = dead
        self.strict = strict

    def __iter__(self) -> Iterator[Row]:
        index, strict, dead = self.index, self.strict, self.dead
        folded = self.folded
        offsets = dict.fromkeys(INPUT_TOPICS, 0)
        last = (-1, 0)  # (timestamp, rank) of the latest event, for the topic-dump check
        lineno = -1
        for line in self.lines:
            if not line.strip():
                continue
            lineno += 1
            topic = "<input>"
            offset = lineno
            entry: Any = None
            try:
                entry = parse_json(line)
                if type(entry) is not dict or entry.get("topic") not in offsets:
                    raise InvalidLine(_bad_line(entry), "topic")
                topic = entry["topic"]
                offset = offsets[topic]
                offsets[topic] = offset + 1
                value = entry.get("value")
                if type(value) is str:
                    value = parse_json(value.encode("utf-8", "surrogateescape"))
                if topic in _CONFIG_TOPICS:
                    if strict and last[0] >= 0:
                        raise Unordered(f"input {index}, line {lineno}: a {topic} record after an event")
                    _apply_config(folded, entry.get("key"), topic, value)
                    continue
                obj = decode_value(topic, value, self.keys)
            except RecordError as exc:
                dead.append(encode(dead_letter(exc, topic, 0, offset, _payload(line, topic, entry))))
                continue
            rank = 1 if topic == "conversions" else 0
            ts: int = obj.timestamp  # type: ignore[union-attr]  # events only past this point
            if strict:
                if ts < last[0] or (ts == last[0] and rank < last[1]):
                    raise Unordered(f"input {index}, line {lineno}: an event older than the one before it")
                last = (ts, rank)
            yield ts, rank, index, lineno, obj  # type: ignore[misc]


def _apply_config(folded: ConfigFold, key: Any, topic: str, value: Any) -> None:
    if value is None:
        folded.apply(topic, config_id(key), None)  # a tombstone: delete
        return
    obj = decode_value(topic, value)
    assert isinstance(obj, (Pixel, LineItem))  # config topics decode to Pixel / LineItem
    if key is not None and contract_config_id(key) != obj.id:
        # As on the compacted topics (`contract.decode_config`): a record keyed by another id is
        # refused and changes nothing. A line without a key is keyed by its record's id.
        raise InvalidKey(f"key: {key!r} is not the record's id {obj.id} (a config record is keyed by its id)", "key")
    folded.apply(topic, obj.id, obj)


def _payload(line: bytes, topic: str, entry: Any) -> bytes | None:
    """The bytes a dead letter carries: the line for a bad line, else the record's value."""
    if topic == "<input>":
        return line
    value = entry.get("value")
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return orjson.dumps(value)


def config_id(key: Any) -> int:
    """The id of a config record from its key (an int, or its decimal text: `contract.config_id`)."""
    ident = contract_config_id(key)
    if ident is None:
        raise InvalidKey(f"key: {key!r} is not a config id (a positive integer)", "key")
    return ident


def _bad_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "line: expected an object with topic, key and value"
    return f"topic: {entry.get('topic')!r} is not one of {', '.join(INPUT_TOPICS)}"
