"""The record contract: JSON Schemas in `schemas/`, decoding into domain objects, encoding outputs.

Validation is compiled from the schemas (the single source of truth), never written by hand.
"""

from attribution.contract.codec import (
    CONFIG_TOPICS,
    EVENT_TOPICS,
    INPUT_TOPICS,
    MAX_ID,
    OUTPUT_TOPICS,
    DeadLetter,
    config_id,
    config_key,
    dead_letter,
    decode,
    decode_config,
    decode_value,
    encode,
    reject_oversized,
    topic_of,
)
from attribution.contract.schemas import load_schema, schema_names, validator

__all__ = [
    "CONFIG_TOPICS",
    "EVENT_TOPICS",
    "INPUT_TOPICS",
    "MAX_ID",
    "OUTPUT_TOPICS",
    "DeadLetter",
    "config_id",
    "config_key",
    "dead_letter",
    "decode",
    "decode_config",
    "decode_value",
    "encode",
    "load_schema",
    "reject_oversized",
    "schema_names",
    "topic_of",
    "validator",
]
