"""The compacted config topics keep what the running worker shows.

A small model of one config topic: the cache applies each record in offset order and the config
agent acts on the cache's notes by appending records (as `streaming.app` does); compaction keeps
the last record per key. A fresh cache over the compacted topic must show what the first one showed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from attribution.settings import Settings
from attribution.streaming.config_cache import RESTORES_HEADER, ConfigCache
from attribution.web.metrics import Metrics
from helpers import line_item_json, pixel_json

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def px(ident: int, name: str = "p") -> bytes:
    return orjson.dumps(pixel_json(id=ident, advertiser_id=10, name=name))


class Topic:
    """One partition of `pixels` or `line-items`, with the config agent's follow-ups."""

    def __init__(self, cache: ConfigCache, name: str = "pixels") -> None:
        self.cache, self.name = cache, name
        self.log: list[Record] = []
        self.kinds: list[str] = []

    def send(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> None:
        offset = len(self.log)
        self.log.append((key, value, headers or []))
        self.cache.apply(self.name, key, value, 0, offset, headers or [])
        for note in self.cache.take_notes(self.name, 0, offset):  # the config agent
            self.kinds.append(note.kind)
            if note.kind == "restore":
                self.send(note.key, note.value, [(RESTORES_HEADER, str(offset).encode())])

    def compacted(self) -> list[Record]:
        """What compaction leaves once tombstones are past their retention: the last per key."""
        last: dict[bytes | None, Record] = {}
        for record in self.log:
            last.pop(record[0], None)
            last[record[0]] = record
        return [r for r in last.values() if r[1] is not None]


def shown(cache: ConfigCache) -> dict[str, Any]:
    return {"pixels": dict(cache.pixels), "line_items": dict(cache.line_items)}


def restarted(topic: Topic) -> ConfigCache:
    fresh = ConfigCache(Settings())
    for offset, (key, value, headers) in enumerate(topic.compacted()):
        fresh.apply(topic.name, key, value, 0, offset, headers)
    return fresh


@pytest.fixture
def topic() -> Topic:
    t = Topic(ConfigCache(Settings()))
    for ident in (2, 81, 90, 120):
        t.send(str(ident).encode(), px(ident))
    return t


def test_a_record_keyed_2_carrying_pixel_81_changes_nothing_now_or_after_compaction(topic: Topic) -> None:
    before = shown(topic.cache)
    topic.send(b"2", px(81, "impostor"))
    assert shown(topic.cache) == before
    assert topic.kinds == ["restore"]
    assert shown(restarted(topic)) == before


def test_a_record_keyed_zz1_carrying_pixel_120_after_its_delete_does_not_bring_it_back(topic: Topic) -> None:
    topic.send(b"120", None)
    before = shown(topic.cache)
    topic.send(b"zz1", px(120))
    assert 120 not in topic.cache.pixels
    assert topic.kinds == []  # nothing to restore: `zz1` names no id
    assert shown(restarted(topic)) == before


def test_an_invalid_record_on_key_90_keeps_pixel_90_after_compaction(topic: Topic) -> None:
    before = shown(topic.cache)
    topic.send(b"90", b'{"id": 90, "advertiser_id": 10}')  # no name: invalid
    assert shown(topic.cache) == before
    assert shown(restarted(topic)) == before
    assert topic.compacted()[-1][1] == px(90)  # the key's last record is the valid version again


def test_an_invalid_record_on_an_id_without_a_version_needs_no_restore(topic: Topic) -> None:
    topic.send(b"7", b"{")
    assert topic.kinds == []
    assert shown(restarted(topic)) == shown(topic.cache)


def test_a_restore_overtaken_by_a_write_is_not_applied_and_the_write_is_restored_instead(topic: Topic) -> None:
    cache = topic.cache
    cache.apply("pixels", b"90", b"{", 0, 10)  # invalid: the agent will restore the version it saw
    [note] = cache.take_notes("pixels", 0, 10)
    cache.apply("pixels", b"90", px(90, "newer"), 0, 11)  # an operator's write lands first
    cache.apply("pixels", b"90", note.value, 0, 12, [(RESTORES_HEADER, b"10")])  # the stale restore
    assert cache.pixels[90].name == "newer"
    [heal] = cache.take_notes("pixels", 0, 12)
    assert (heal.kind, heal.value) == ("restore", px(90, "newer"))


def test_a_restore_overtaken_by_a_delete_is_healed_by_a_tombstone(topic: Topic) -> None:
    cache = topic.cache
    cache.apply("pixels", b"90", b"{", 0, 10)
    [note] = cache.take_notes("pixels", 0, 10)
    cache.apply("pixels", b"90", None, 0, 11)
    cache.apply("pixels", b"90", note.value, 0, 12, [(RESTORES_HEADER, b"10")])
    assert 90 not in cache.pixels
    [heal] = cache.take_notes("pixels", 0, 12)
    assert (heal.kind, heal.value) == ("restore", None)


def test_a_delete_of_an_unknown_id_and_a_line_item_naming_an_unknown_pixel_are_accepted_with_a_note() -> None:
    cache = ConfigCache(Settings())
    cache.apply("pixels", b"555", None, 0, 0)
    [unknown] = cache.take_notes("pixels", 0, 0)
    assert unknown.kind == "unknown_id"
    item = orjson.dumps({"id": 5, "advertiser_id": 10, "pixels": [{"id": 77}, {"id": 78}]})
    cache.apply("line-items", b"5", item, 0, 0)
    assert 5 in cache.line_items  # accepted
    [note] = cache.take_notes("line-items", 0, 0)
    assert (note.kind, note.detail) == ("unknown_pixel", "line item 5 names unknown pixels 77, 78")


def test_records_loaded_without_offsets_make_no_notes() -> None:
    cache = ConfigCache(Settings())
    cache.apply("pixels", b"555", None)
    assert cache.notes == {}


def test_the_config_agents_counts_reach_the_metrics() -> None:
    metrics = Metrics()
    metrics.set_config_notes({("pixels", "restore"): 2})
    metrics.set_config_notes({("pixels", "restore"): 3, ("line-items", "unknown_pixel"): 1})
    text = metrics.render().decode()
    assert 'attribution_config_records_total{kind="restore",topic="pixels"} 3.0' in text
    assert 'attribution_config_records_total{kind="unknown_pixel",topic="line-items"} 1.0' in text


async def test_a_fetch_applies_its_pixels_before_its_line_items_so_none_is_noted_unknown() -> None:
    settings = Settings()
    cache = ConfigCache(settings)
    pixels = TopicPartition(settings.topic("pixels"), 0)
    line_items = TopicPartition(settings.topic("line-items"), 0)
    item = orjson.dumps(line_item_json(id=5, advertiser_id=10, pixels=[{"id": 7}]))
    # The fetch's mapping lists the line items' partition first.
    fetched = {
        line_items: [SimpleNamespace(key=b"5", value=item, offset=0, headers=[])],
        pixels: [SimpleNamespace(key=b"7", value=px(7), offset=0, headers=[])],
    }

    await cache.apply_fetched(fetched)

    assert set(cache.line_items) == {5}
    assert set(cache.pixels) == {7}
    assert cache.take_notes("line-items", 0, 0) == []  # no "names unknown pixels"
    assert cache.applied == {(line_items.topic, 0): 1, (pixels.topic, 0): 1}
