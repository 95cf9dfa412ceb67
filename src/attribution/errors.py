"""The exception tree. Every error a record can cause has a stable `code` and names the field.

AttributionError
├── RecordError            a record that cannot be used; becomes a dead letter on a topic
│   ├── InvalidEncoding    code invalid_utf8 / record_too_large
│   ├── InvalidJson        code invalid_json / not_an_object
│   ├── InvalidKey         code invalid_key (a config record's key is not its id)
│   ├── InvalidHeader      code invalid_header (a re-keyed record without its source topic)
│   ├── InvalidLine        code invalid_line (a replay input line that is not a record)
│   ├── SchemaViolation    code schema_violation (events)
│   ├── InvalidToken       code invalid_token (a server-side conversion's token does not verify)
│   └── InvalidConfig      code invalid_pixel (refused with the rule broken)
│       └── InvalidLineItem code invalid_line_item
├── ConfigError            a config use case refused (`attribution.app.config`); adapters map it
│   ├── NotFound           code not_found
│   ├── Conflict           code already_exists / pixel_in_use / unknown_pixel / advertiser_mismatch
│   ├── Invalid            a record the contract refuses (its code, e.g. invalid_pixel)
│   ├── Refused            several records of one write refused (`errors`: each its own error)
│   ├── Unavailable        code unavailable: the config cannot be read or written now
│   └── NotApplied         code not_applied: written, but not read back in time
├── KafkaIOError           the broker cannot be reached or refused (`attribution.kafka.client`)
├── ApiError               an HTTP reply other than success (`attribution.web.api`)
└── UsageError             unusable command-line arguments or input files (CLI exit code 2)

Each edge maps foreign exceptions into this tree in one place: the Kafka edge in
`attribution.kafka.client.map_kafka_errors`, the HTTP API in `attribution.web.api.map_config_errors`.
"""

from __future__ import annotations


class AttributionError(Exception):
    """Base of every error this package raises on purpose."""


class RecordError(AttributionError):
    """A record that cannot be processed. `code` is stable; `field` is a dotted path or ''."""

    code = "invalid_record"

    def __init__(self, message: str, field: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidEncoding(RecordError):
    code = "invalid_utf8"


class InvalidJson(RecordError):
    code = "invalid_json"


class InvalidKey(RecordError):
    code = "invalid_key"


class InvalidHeader(RecordError):
    code = "invalid_header"


class InvalidLine(RecordError):
    code = "invalid_line"


class SchemaViolation(RecordError):
    code = "schema_violation"


class InvalidToken(RecordError):
    """An auction token that is malformed, altered, forged or signed with a key not accepted.
    Its message names the field and never a secret."""

    code = "invalid_token"


class InvalidConfig(RecordError):
    """A pixel or line item that breaks a rule; the previous version stays in force."""

    code = "invalid_pixel"


class InvalidLineItem(InvalidConfig):
    code = "invalid_line_item"


class ConfigError(AttributionError):
    """A config use case refused. `code` is stable, `message` is shown as it is by every adapter,
    `field` is a dotted path or '', `extra` holds machine-readable details (ids)."""

    code = "config_error"

    def __init__(self, message: str, field: str = "", code: str | None = None, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra
        if code is not None:
            self.code = code


class NotFound(ConfigError):
    code = "not_found"


class Conflict(ConfigError):
    """The record is valid but conflicts with the current config."""

    code = "conflict"


class Invalid(ConfigError):
    """The contract refuses the record (the code is the contract's, e.g. invalid_pixel)."""

    code = "invalid_record"


class Refused(ConfigError):
    """Some records of a write of several were refused; nothing was written. `errors` holds
    (label, error) per refused record, the label being `<what> <id or #position>`."""

    def __init__(self, errors: list[tuple[str, ConfigError]]) -> None:
        first = errors[0][1]
        super().__init__(first.message, first.field, first.code, **first.extra)
        self.errors = errors


class Unavailable(ConfigError):
    code = "unavailable"


class NotApplied(ConfigError):
    code = "not_applied"


class KafkaIOError(AttributionError):
    """The broker cannot be reached, or refused; the message is one line for a person."""


class ApiError(AttributionError):
    """An HTTP error reply: status, a stable code, a message and details (`attribution.web.api`)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: object
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class UsageError(AttributionError):
    """Arguments or files the command cannot work with."""
