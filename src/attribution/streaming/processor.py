"""The per-record glue between Kafka messages and the engine, free of Faust so it is unit-testable.

`Processor.handle` takes one consumed message and the state getter and returns what the agent must
do: at most one state write, the output records to send, or a re-key forward. Ordering contract:
outputs of one record are returned in engine order (piggyback fires, then the outcome).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from attribution.contract import dead_letter, decode, encode, topic_of
from attribution.contract.state_codec import decode_state, encode_state
from attribution.domain import Config, LineItem, Pixel, step
from attribution.errors import InvalidJson, RecordError
from attribution.settings import Settings
from attribution.streaming.topics import REKEY_TOPIC

Headers = Sequence[tuple[str, bytes]]
Send = tuple[str, bytes | None, bytes]

#: Header of a re-keyed record naming its original topic (default name).
SOURCE_HEADER = "attribution-source"


@dataclass(slots=True)
class Result:
    user_key: bytes = b""
    state: bytes | None = None  # new encoded state, or None when unchanged
    sends: list[Send] = field(default_factory=list)  # (output topic default name, key, value)
    rekey: tuple[bytes, bytes | None, list[tuple[str, bytes]]] | None = None


class Processor:
    def __init__(self, settings: Settings, names: Mapping[str, str], config: Callable[[], Config]) -> None:
        """`names` maps actual (prefixed) topic names to default names; `config` gives the snapshot."""
        self.limits = settings.limits
        self.names = names
        self.config = config

    def handle(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        offset: int,
        headers: Headers | None,
        get_state: Callable[[bytes], bytes | None],
    ) -> Result:
        """Decode, step, encode one input event. Never raises for a bad record: dead letter instead."""
        result = Result()
        name = self.names.get(topic, topic)
        if name == REKEY_TOPIC:
            name = _source(headers)
        try:
            if value is None:
                raise InvalidJson("record: expected a JSON object, got null", code="not_an_object")
            record = decode(name, value)
        except RecordError as exc:
            letter = dead_letter(exc, topic, partition, offset, value)
            result.sends.append(("dead-letters", key, encode(letter)))
            return result
        assert not isinstance(record, (Pixel, LineItem))
        user_key = record.user_id.encode()
        if key != user_key and self.names.get(topic) != REKEY_TOPIC:
            # Mis-keyed: the user's state may live in another partition. Forward it keyed right.
            result.rekey = (user_key, value, [(SOURCE_HEADER, name.encode())])
            return result
        state = decode_state(record.user_id, get_state(user_key))
        new_state, outputs = step(state, record, self.config(), self.limits)
        result.user_key = user_key
        if new_state is not state:
            result.state = encode_state(new_state)
        result.sends = [(topic_of(o), user_key, encode(o)) for o in outputs]
        return result

    def check_config(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int, offset: int
    ) -> bytes | None:
        """The encoded dead letter of an invalid config record, or None when it is valid."""
        name = self.names.get(topic, topic)
        try:
            if value is None:
                if key is None or not key.strip().isdigit():
                    raise InvalidJson(f"key: {key!r} is not a config id for a delete", "key", code="invalid_key")
                return None
            decode(name, value)
        except RecordError as exc:
            return encode(dead_letter(exc, topic, partition, offset, value))
        return None


def _source(headers: Headers | None) -> str:
    for k, v in headers or ():
        if k == SOURCE_HEADER:
            return v.decode()
    return "conversions"
