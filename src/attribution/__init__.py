"""Streaming conversion attribution for ad tech.

`attribution.domain` is the pure engine, `attribution.contract` the record contract (JSON Schema,
decode, encode), `attribution.replay` the offline engine over a file, `attribution.streaming` the
Faust glue. Importing this package has no side effects.
"""

__version__ = "0.1.0"
