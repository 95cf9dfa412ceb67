"""Replay in bounded memory gives the order and the outputs of loading everything and sorting it.

The oracle is the in-memory replay the project had before: read every line, apply config records,
dead-letter bad ones, then sort all events by (timestamp, touch before conversion, line) and step
them. Inputs are drawn with few distinct timestamps (so ties are common), touches and conversions
of a few users, config records (writes, tombstones, invalid writes) anywhere, bad lines and blank
lines; they are replayed as one list, as a generator (read once, copied if it must be read again),
sorted or not, split into per-topic files, and through the external sort with runs of a few events
merged in several passes.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
from hypothesis import given
from hypothesis import strategies as st

import attribution.replay_order as replay_order
import attribution.replay_shards as replay_shards
from attribution.contract import INPUT_TOPICS, dead_letter, decode_value, encode, topic_of
from attribution.contract.codec import parse_json
from attribution.domain import EMPTY, Config, Conversion, LineItem, Pixel, Touch, step
from attribution.errors import InvalidLine, RecordError
from attribution.replay import FileSink, MemorySink, ReplayResult, config_id, replay, replay_inputs
from attribution.replay_input import Unordered, _bad_line
from attribution.replay_order import ExternalSort, Streaming, Workspace, sources_of
from attribution.replay_sink import OUTPUT_FILES

T0 = 1_700_000_000_000
MINUTE = 60_000


def oracle(lines: list[bytes]) -> tuple[dict[str, list[bytes]], list[Touch | Conversion]]:
    """The former replay: everything loaded, one sort, then the steps (outputs and event order)."""
    outputs: dict[str, list[bytes]] = {t: [] for t in OUTPUT_FILES}
    pixels: dict[int, Pixel] = {}
    items: dict[int, LineItem] = {}
    events: list[tuple[int, int, int, Touch | Conversion]] = []
    offsets = dict.fromkeys(INPUT_TOPICS, 0)
    for lineno, raw_line in enumerate(x for x in lines if x.strip()):
        topic, raw, entry = "<input>", None, None
        try:
            entry = parse_json(raw_line)
            if not isinstance(entry, dict) or entry.get("topic") not in offsets:
                raise InvalidLine(_bad_line(entry), "topic")
            topic = entry["topic"]
            offset = offsets[topic]
            offsets[topic] = offset + 1
            value = entry.get("value")
            if isinstance(value, str):
                raw = value.encode("utf-8", "surrogateescape")
                value = parse_json(raw)
            if value is None and topic in ("pixels", "line-items"):
                target: dict[int, Any] = pixels if topic == "pixels" else items
                target.pop(config_id(entry.get("key")), None)
                continue
            obj = decode_value(topic, value)
            if isinstance(obj, Pixel):
                pixels[obj.id] = obj
            elif isinstance(obj, LineItem):
                items[obj.id] = obj
            else:
                events.append((obj.timestamp, 1 if isinstance(obj, Conversion) else 0, lineno, obj))
        except RecordError as exc:
            if topic == "<input>":
                outputs["dead-letters"].append(encode(dead_letter(exc, topic, 0, lineno, raw_line)))
            else:
                if raw is None and entry.get("value") is not None:
                    raw = orjson.dumps(entry["value"])
                outputs["dead-letters"].append(encode(dead_letter(exc, topic, 0, offset, raw)))
    config = Config(pixels, items)
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    users: dict[str, Any] = {}
    for _, _, _, event in events:
        state, outs = step(users.get(event.user_id, EMPTY), event, config)
        users[event.user_id] = state
        for out in outs:
            outputs[topic_of(out)].append(encode(out))
    return outputs, [e[3] for e in events]


# --- generated inputs ---------------------------------------------------------------------------

PIXEL_JSON = {"id": 1, "advertiser_id": 10, "name": "p"}
ITEM_JSON = {"id": 100, "advertiser_id": 10, "pixels": [{"id": 1}]}


def _entry(draw: st.DrawFn, n: int) -> dict[str, Any] | bytes:
    ts = T0 + draw(st.sampled_from([0, 0, 1, MINUTE, 2 * MINUTE, 5 * MINUTE]))
    user = draw(st.sampled_from(["a", "b", "c"]))
    kind = draw(st.sampled_from(["impressions", "impressions", "clicks", "conversions", "config", "bad"]))
    if kind == "conversions":
        value = {
            "event_id": f"c{n % 5}",
            "pixel_id": draw(st.sampled_from([1, 1, 2])),
            "user_id": user,
            "timestamp": ts,
        }
        return {"topic": kind, "key": user, "value": value}
    if kind == "config":
        which = draw(st.sampled_from(["pixel", "item", "tombstone", "invalid", "paused"]))
        if which == "pixel":
            return {"topic": "pixels", "key": 1, "value": PIXEL_JSON}
        if which == "paused":
            return {"topic": "pixels", "key": 1, "value": {**PIXEL_JSON, "state": "paused"}}
        if which == "item":
            return {"topic": "line-items", "key": 100, "value": ITEM_JSON}
        if which == "tombstone":
            return {"topic": "pixels", "key": 1, "value": None}
        return {"topic": "line-items", "key": 100, "value": {"id": 100}}
    if kind == "bad":
        return draw(
            st.sampled_from(
                [
                    b"not json",
                    b"",
                    b"   ",
                    b'{"topic": "nowhere", "value": {}}',
                    b'{"topic": "impressions", "value": {"event_id": ""}}',
                    b'{"topic": "clicks", "value": "{\\"broken"}',
                ]
            )
        )
    value = {
        "event_id": f"{kind[0]}{n}",
        "user_id": user,
        "timestamp": ts,
        "advertiser_id": 10,
        "line_item_id": 100,
        "creative_id": 7,
        "auction_id": f"a{n % 3}",
    }
    return {"topic": kind, "key": user, "value": value}


@st.composite
def inputs(draw: st.DrawFn) -> list[bytes]:
    n = draw(st.integers(min_value=0, max_value=40))
    entries = [_entry(draw, i) for i in range(n)]
    return [e if isinstance(e, bytes) else orjson.dumps(e) for e in entries]


def _key(line: bytes) -> tuple[int, int]:
    """(0 for config/bad lines, 1 for events; timestamp, rank) to put an input in topic-dump order."""
    try:
        entry = orjson.loads(line)
        value = entry["value"]
        return (1, value["timestamp"] * 2 + (entry["topic"] == "conversions"))
    except Exception:
        return (0, 0)


def dump_order(lines: list[bytes]) -> list[bytes]:
    """The same records as a topic dump: config and bad lines first, events in time order (stable)."""
    return sorted(lines, key=_key)


def outputs_of(result: ReplayResult) -> dict[str, list[bytes]]:
    return {t: list(v) for t, v in result.outputs.items()}


# --- properties ---------------------------------------------------------------------------------


@given(inputs(), st.integers(min_value=1, max_value=6))
def test_any_input_replays_to_the_outputs_of_the_in_memory_sort(lines: list[bytes], run_events: int) -> None:
    expected, _ = oracle(lines)
    assert outputs_of(replay(lines, run_events=run_events)) == expected
    assert outputs_of(replay(iter(lines), run_events=run_events)) == expected


@given(inputs(), st.integers(min_value=1, max_value=4))
def test_runs_merged_in_several_passes_give_the_same_outputs(lines: list[bytes], run_events: int) -> None:
    expected, _ = oracle(lines)
    with mock.patch.object(replay_order, "FAN_IN", 2):
        assert outputs_of(replay(lines, run_events=run_events)) == expected


@given(inputs(), st.integers(min_value=1, max_value=3), st.integers(min_value=1, max_value=6_000), st.booleans())
def test_a_replay_whose_states_outgrow_their_budget_steps_the_rest_by_user_shard_to_the_same_outputs(
    lines: list[bytes], shards: int, memory: int, sort: bool
) -> None:
    """A budget of a state or a few: the replay stops stepping in time order and steps the rest
    of the rows one shard of users at a time (`replay_shards`), merging the outputs back."""
    expected, _ = oracle(lines)
    run_events = 2 if sort else 10**6
    with mock.patch.object(replay_shards, "SHARDS", shards):
        assert outputs_of(replay(lines, run_events=run_events, memory=memory)) == expected
        assert outputs_of(replay(dump_order(lines), memory=memory)) == oracle(dump_order(lines))[0]


@given(inputs(), st.integers(min_value=1, max_value=5))
def test_the_external_sort_yields_events_in_the_in_memory_order(lines: list[bytes], run_events: int) -> None:
    _, expected = oracle(lines)
    workspace = Workspace()
    try:
        order = ExternalSort(sources_of([lines], workspace), [], workspace, run_events)
        order.prime()
        assert [row[4] for row in order.rows()] == expected
    finally:
        workspace.close()


@given(inputs())
def test_a_topic_dump_streams_in_the_in_memory_order_without_sorting(lines: list[bytes]) -> None:
    dump = dump_order(lines)
    _, expected = oracle(dump)
    order = Streaming(sources_of([dump], Workspace()), [])
    order.prime()
    assert [row[4] for row in order.rows()] == expected


@given(inputs())
def test_one_file_per_topic_replays_like_the_topics_concatenated(lines: list[bytes]) -> None:
    # No bad lines: their offset is their line number, which differs once the file is split.
    records = [x for x in dump_order(lines) if _key(x)[0] == 1 or b'"pixels"' in x or b'"line-items"' in x]
    by_topic: dict[str, list[bytes]] = {}
    for x in records:
        by_topic.setdefault(orjson.loads(x)["topic"], []).append(x)
    ordered_topics = sorted(by_topic, key=lambda t: t not in ("pixels", "line-items"))
    concatenated = [x for t in ordered_topics for x in by_topic[t]]
    expected, _ = oracle(concatenated)
    sink = MemorySink()
    replay_inputs([by_topic[t] for t in ordered_topics], sink)
    assert sink.channels == expected


def test_an_event_older_than_the_one_before_it_stops_the_streaming_merge() -> None:
    older = orjson.dumps({"topic": "clicks", "value": _touch("k", T0)})
    newer = orjson.dumps({"topic": "impressions", "value": _touch("i", T0 + 1)})
    order = Streaming(sources_of([[newer, older]], Workspace()), [])
    order.prime()
    try:
        list(order.rows())
    except Unordered:
        return
    raise AssertionError("the merge accepted an event out of order")


def test_a_config_record_after_an_event_stops_the_streaming_merge() -> None:
    event = orjson.dumps({"topic": "impressions", "value": _touch("i", T0)})
    config = orjson.dumps({"topic": "pixels", "key": 1, "value": PIXEL_JSON})
    order = Streaming(sources_of([[event, config]], Workspace()), [])
    order.prime()
    try:
        list(order.rows())
    except Unordered:
        return
    raise AssertionError("the merge accepted a config record after an event")


def test_the_external_sort_spills_runs_to_disk_and_removes_them(tmp_path: Path) -> None:
    rng = random.Random(7)
    lines = [
        orjson.dumps({"topic": "impressions", "value": _touch(f"i{n}", T0 + rng.randrange(50))}) for n in range(200)
    ]
    _, order_expected = oracle(lines)
    with mock.patch.dict("os.environ", {"TMPDIR": str(tmp_path)}), mock.patch("tempfile.tempdir", None):
        workspace = Workspace()
        order = ExternalSort(sources_of([lines], workspace), [], workspace, 16)
        order.prime()
        spilled = list(tmp_path.glob("attribution-replay-*/run-*"))
        rows = [row[4] for row in order.rows()]
        workspace.close()
    assert len(spilled) == 13  # 200 events in runs of 16
    assert rows == order_expected
    assert not list(tmp_path.iterdir())


def test_files_replay_into_files_with_the_outputs_in_memory(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = [orjson.dumps({"topic": "pixels", "key": 1, "value": PIXEL_JSON})]
    lines.append(orjson.dumps({"topic": "line-items", "key": 100, "value": ITEM_JSON}))
    for n in range(300):
        ts = T0 + rng.randrange(100) * MINUTE
        if n % 10 == 0:
            value = {"event_id": f"c{n}", "pixel_id": 1, "user_id": "u", "timestamp": ts}
            lines.append(orjson.dumps({"topic": "conversions", "value": value}))
        else:
            lines.append(orjson.dumps({"topic": "clicks", "value": _touch(f"k{n}", ts)}))
    (tmp_path / "in.jsonl").write_bytes(b"\r\n".join(lines) + b"\n")
    out = tmp_path / "out"
    out.mkdir()
    sink = FileSink(out)
    result = replay_inputs([tmp_path / "in.jsonl"], sink, run_events=50)
    sink.close()
    expected, _ = oracle(lines)
    assert result.counts == {t: len(v) for t, v in expected.items()}
    assert expected["attributed-conversions"]
    for topic, name in OUTPUT_FILES.items():
        assert (out / name).read_bytes() == b"".join(r + b"\n" for r in expected[topic])


def _touch(event_id: str, ts: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": "u",
        "timestamp": ts,
        "advertiser_id": 10,
        "line_item_id": 100,
        "creative_id": 7,
        "auction_id": "a",
    }
