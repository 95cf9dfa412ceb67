"""The stream's processor gives replay's outcomes whatever the relative speed of the input topics:
touches read far ahead of the conversions (a backlog, a lagging conversions partition) never cost
a conversion the touch replay credits it to. Synthetic traffic with heavy users, in-process."""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

import orjson
import pytest

from attribution.domain import Config
from attribution.replay import replay
from attribution.settings import Settings
from attribution.streaming.processor import Processor
from attribution.synth import TrafficSpec, config_records, events
from helpers import fold_config

EVENT_TOPICS = ("impressions", "clicks", "conversions")
OUTCOMES = ("attributed-conversions", "unattributed-conversions")
FAR_FUTURE = 4_000_000_000_000


def traffic() -> tuple[list[tuple[str, str, dict[str, Any] | None]], list[tuple[str, str, dict[str, Any]]]]:
    spec = TrafficSpec(users=600, events=12_000, seed=22, conversion_share=0.1, duration_ms=6 * 3_600_000)
    return config_records(spec), list(events(spec))


def replay_outcomes(config: list[Any], evs: list[Any]) -> dict[str, bytes]:
    lines = [orjson.dumps({"topic": t, "key": k, "value": v}) for t, k, v in (*config, *evs)]
    out = replay(lines).outputs
    return {orjson.loads(v)["conversion_id"]: v for t in OUTCOMES for v in out[t]}


class Consumed(NamedTuple):
    key: bytes
    value: bytes
    offset: int
    headers: None = None


def stream_outcomes(cfg: Config, order: list[tuple[str, str, dict[str, Any]]], batch: int = 1) -> dict[str, bytes]:
    """The outcomes of the stream's processor fed `order`, a record at a time (`batch` 1) or, like
    the events agent, in batches of up to `batch` consecutive records of one topic."""
    processor = Processor(Settings(hold_ms=3000), {t: t for t in EVENT_TOPICS}, lambda: cfg, clock=lambda: 0.0)
    table: dict[bytes, bytes] = {}
    offsets: Counter[str] = Counter()
    got: dict[str, bytes] = {}
    sentinels = [
        (t, "sentinel", {**{"event_id": f"s-{t}", "user_id": "sentinel", "timestamp": FAR_FUTURE}, **TOUCH})
        for t in ("impressions", "clicks")
    ]
    fed: list[tuple[str, list[Consumed]]] = []
    for topic, key, value in [*order, *sentinels]:
        record = Consumed(key.encode(), orjson.dumps(value), offsets[topic])
        offsets[topic] += 1
        if fed and fed[-1][0] == topic and len(fed[-1][1]) < batch:
            fed[-1][1].append(record)
        else:
            fed.append((topic, [record]))
    for topic, records in fed:
        if batch == 1:
            [r] = records
            result = processor.handle(topic, r.key, r.value, 0, r.offset, None, table.get)
        else:
            result = processor.handle_batch(topic, 0, records, table.get)
        assert not set(result.writes) & set(result.deletes)
        table.update(result.writes)
        for gone in result.deletes:
            table.pop(gone, None)
        for name, _, raw in result.sends:
            if name in OUTCOMES:
                got[orjson.loads(raw)["conversion_id"]] = raw
    return got


TOUCH = {"advertiser_id": 999_999_999, "line_item_id": 1, "creative_id": 1, "auction_id": "s"}


@pytest.mark.parametrize("batch", [1, 7, 200])
@pytest.mark.parametrize("order", ["in_order", "touches_first", "conversions_first"])
def test_any_relative_speed_of_the_topics_gives_replays_outcomes_for_heavy_users_too(order: str, batch: int) -> None:
    config, evs = traffic()
    per_user = Counter(v["user_id"] for _, _, v in evs)
    assert per_user.most_common(1)[0][1] >= 150  # a heavy user: more touches than the caps hold
    touches = [e for e in evs if e[0] != "conversions"]
    conversions = [e for e in evs if e[0] == "conversions"]
    arranged = {"in_order": evs, "touches_first": touches + conversions, "conversions_first": conversions + touches}
    expected = replay_outcomes(config, evs)
    got = stream_outcomes(fold_config(config), arranged[order], batch)
    wrong = [cid for cid in expected if got.get(cid) != expected[cid]]
    assert not wrong, (
        f"{len(wrong)} of {len(expected)} outcomes differ, e.g. {got.get(wrong[0])!r} vs {expected[wrong[0]]!r}"
    )


def with_a_bot(evs: list[tuple[str, str, dict[str, Any]]], n: int = 400) -> list[tuple[str, str, dict[str, Any]]]:
    """`evs` and `n` more conversions of its heaviest user, spread over the traffic's time, in order."""
    user = Counter(v["user_id"] for _, _, v in evs).most_common(1)[0][0]
    template = next(v for t, _, v in evs if t == "conversions")
    start, end = evs[0][2]["timestamp"], evs[-1][2]["timestamp"]
    bot = [
        (
            "conversions",
            user,
            {**template, "event_id": f"bot-{i}", "user_id": user, "timestamp": start + (end - start) * i // n},
        )
        for i in range(n)
    ]
    return sorted([*evs, *bot], key=lambda e: e[2]["timestamp"])  # stable: touches first at a tie, as replay


def stream_outcomes_with_cuts(cfg: Config, evs: list[tuple[str, str, dict[str, Any]]], batch: int) -> dict[str, bytes]:
    """The outcomes of the processor fed as the events agent and the consumer feed it when the
    conversions are read far ahead of the touches: every conversion first, `batch` records at a
    time, until a batch is cut (a user at its held bound); then that partition is paused and the
    touches are read, a batch at a time, until the cut no longer blocks; then the conversions are
    read again from the cut (a seek back), and so on."""
    processor = Processor(Settings(hold_ms=3000), {t: t for t in EVENT_TOPICS}, lambda: cfg, clock=lambda: 0.0)
    table: dict[bytes, bytes] = {}
    got: dict[str, bytes] = {}
    sentinels = [
        (t, "sentinel", {**{"event_id": f"s-{t}", "user_id": "sentinel", "timestamp": FAR_FUTURE}, **TOUCH})
        for t in ("impressions", "clicks")
    ]
    queues: dict[str, list[Consumed]] = {t: [] for t in EVENT_TOPICS}
    for topic, key, value in [*evs, *sentinels]:
        queues[topic].append(Consumed(key.encode(), orjson.dumps(value), len(queues[topic])))
    position = dict.fromkeys(EVENT_TOPICS, 0)
    cuts = 0

    def feed(topic: str) -> None:
        nonlocal cuts
        records = queues[topic][position[topic] : position[topic] + batch]
        result = processor.handle_batch(topic, 0, records, table.get, cuts=True)
        position[topic] = records[-1].offset + 1 if result.unhandled_from is None else result.unhandled_from
        cuts += result.cut_at is not None
        table.update(result.writes)
        for gone in result.deletes:
            table.pop(gone, None)
        for name, _, raw in result.sends:
            if name in OUTCOMES:
                cid = orjson.loads(raw)["conversion_id"]
                assert cid not in got, f"{cid} judged twice"
                got[cid] = raw

    def left(topic: str) -> bool:
        return position[topic] < len(queues[topic])

    while any(left(t) for t in EVENT_TOPICS):
        if left("conversions") and not processor.time.over_limit(0):
            feed("conversions")
        else:
            for topic in ("impressions", "clicks"):
                if left(topic):
                    feed(topic)
    assert cuts > 0  # the bot went over its bound: the path under test was taken
    return got


@pytest.mark.parametrize("batch", [7, 200])
def test_conversions_read_far_ahead_of_the_touches_and_cut_at_a_users_held_bound_give_replays_outcomes(
    batch: int,
) -> None:
    config, evs = traffic()
    evs = with_a_bot(evs)
    expected = replay_outcomes(config, evs)
    got = stream_outcomes_with_cuts(fold_config(config), evs, batch)
    wrong = [cid for cid in expected if got.get(cid) != expected[cid]]
    assert not wrong, (
        f"{len(wrong)} of {len(expected)} outcomes differ, e.g. {got.get(wrong[0])!r} vs {expected[wrong[0]]!r}"
    )
    assert set(got) == set(expected)
