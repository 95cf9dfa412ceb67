"""The exception tree. Every error a record can cause has a stable `code` and names the field.

AttributionError
├── RecordError            a record that cannot be used; becomes a dead letter on a topic
│   ├── InvalidEncoding    code invalid_utf8 / record_too_large
│   ├── InvalidJson        code invalid_json / not_an_object
│   ├── SchemaViolation    code schema_violation (events)
│   ├── InvalidToken       code invalid_token (a server-side conversion's token does not verify)
│   └── InvalidConfig      code invalid_pixel (refused with the rule broken)
│       └── InvalidLineItem code invalid_line_item
└── UsageError             unusable command-line arguments or input files (CLI exit code 2)
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


class UsageError(AttributionError):
    """Arguments or files the command cannot work with."""
