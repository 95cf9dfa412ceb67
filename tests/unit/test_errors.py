"""One exception tree: every error this package raises on purpose is an `AttributionError`."""

from __future__ import annotations

import pytest

from attribution import errors
from attribution.contract import decode_config
from attribution.errors import AttributionError, InvalidKey, RecordError
from attribution.kafka.client import ReadTimeout, TopicMissing, Unreachable
from attribution.web.api import ApiError


def test_every_exception_class_of_the_package_is_under_attribution_error() -> None:
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)]
    assert classes
    assert all(issubclass(c, AttributionError) for c in classes)
    assert all(issubclass(c, AttributionError) for c in (ApiError, TopicMissing, ReadTimeout, Unreachable))


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InvalidEncoding, "invalid_utf8"),
        (errors.InvalidJson, "invalid_json"),
        (errors.InvalidKey, "invalid_key"),
        (errors.InvalidHeader, "invalid_header"),
        (errors.InvalidLine, "invalid_line"),
        (errors.SchemaViolation, "schema_violation"),
        (errors.InvalidConfig, "invalid_pixel"),
        (errors.InvalidLineItem, "invalid_line_item"),
    ],
)
def test_each_dead_letter_code_family_has_its_class(cls: type[RecordError], code: str) -> None:
    assert cls("x").code == code
    assert not issubclass(cls, errors.InvalidJson) or cls is errors.InvalidJson


def test_a_config_record_keyed_by_another_id_raises_invalid_key() -> None:
    with pytest.raises(InvalidKey) as info:
        decode_config("pixels", b"2", b'{"id": 1, "advertiser_id": 1, "name": "p"}')
    assert (info.value.code, info.value.field) == ("invalid_key", "key")
