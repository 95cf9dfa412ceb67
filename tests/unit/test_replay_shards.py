"""Replay past its memory budget steps the rest of its input one shard of users at a time: the
outputs are those of a replay in memory, each user's state goes to disk about once, and no file
is left behind."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import orjson
import pytest

from attribution.domain import DEFAULT_LIMITS, Touch
from attribution.domain.config import DAY_MS
from attribution.domain.state import compact
from attribution.replay import FileSink, replay, replay_inputs
from attribution.replay_order import Workspace
from attribution.replay_shards import OUTPUT_TOPICS, UserShards
from attribution.replay_states import SpilledStates
from attribution.synth import TrafficSpec, config_records, events

#: Four months: users expire, come back, and their states are compacted on the way.
SPEC = TrafficSpec(users=2_000, events=40_000, seed=5, duration_ms=120 * DAY_MS)
#: About a hundred decoded states.
SMALL = 300_000


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    records = [*config_records(SPEC), *events(SPEC)]
    return [orjson.dumps({"topic": t, "key": k, "value": v}) for t, k, v in records]


def last_timestamp(lines: list[bytes]) -> int:
    return max(orjson.loads(x)["value"]["timestamp"] for x in lines if b'"timestamp"' in x)


def test_a_replay_past_its_budget_gives_the_outputs_and_the_users_of_one_in_memory(lines: list[bytes]) -> None:
    small = replay(lines, memory=SMALL)
    large = replay(lines)

    assert isinstance(small.users, SpilledStates)
    assert small.users.cold, "the budget was never reached"
    assert small.events == large.events == SPEC.events
    assert small.outputs == large.outputs
    assert sum(map(len, large.outputs.values())) > 1_000
    assert set(small.users) == set(large.users)
    # Expiry looks at a user when its shard is stepped, so a state may be compacted at another
    # moment: as of the last event, the states are the same.
    last, retention = last_timestamp(lines), large.config.retention
    for user, state in large.users.items():
        assert compact(small.users[user], last, retention, DEFAULT_LIMITS) == compact(
            state, last, retention, DEFAULT_LIMITS
        )


def test_past_its_budget_a_replay_moves_each_users_state_to_disk_about_once(lines: list[bytes]) -> None:
    small = replay(lines, memory=SMALL)

    # In time order, with a hundred states in memory, nearly every one of the 40,000 events would
    # find its user on disk.
    assert isinstance(small.users, SpilledStates)
    assert 0 < small.users.spilled <= 2 * len(small.users)


def test_a_replay_by_shard_into_files_leaves_no_temporary_file(lines: list[bytes], tmp_path: Path) -> None:
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    out.mkdir()
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines))
    sink = FileSink(out)
    with mock.patch.object(tempfile, "tempdir", str(scratch)):
        result = replay_inputs([tmp_path / "in.jsonl"], sink, memory=SMALL)
        sink.close()
        assert isinstance(result.users, SpilledStates)
        assert result.users.cold
        result.users.close()
    assert list(scratch.iterdir()) == []
    expected = replay(lines).outputs
    for topic in OUTPUT_TOPICS:
        assert (out / f"{topic}.jsonl").read_bytes().splitlines() == expected[topic]


def touch(user: str, ts: int, n: int) -> Touch:
    return Touch("impression", f"e{n}", user, ts, 1, 10, 100, f"a{n}")


def test_shards_give_back_each_users_rows_in_order_and_merge_outputs_by_row_key() -> None:
    workspace = Workspace()
    try:
        shards = UserShards(workspace, 3)
        users = [f"user-{i}" for i in range(12)]
        rows = [(1_000 + n, 0, 0, n, touch(users[n % 12], 1_000 + n, n)) for n in range(120)]
        shards.write(iter(rows))
        assert shards.last_timestamp == 1_119
        assert sum(shards.events) == 120

        outputs: dict[str, list[bytes]] = {t: [] for t in OUTPUT_TOPICS}
        seen = []
        for k in range(3):
            spool = shards.spool(k)
            for row in shards.rows(k):
                assert shards.shard_of(row[4].user_id) == k
                seen.append(row)
                spool.emit(row, [("piggyback-fires", b'{"n":%d}' % row[3]), ("attributed-conversions", b"x y")])
            spool.close()
        assert sorted(seen, key=lambda r: r[3]) == rows  # every row once, equal after the round trip
        for k in range(3):
            mine = [r[3] for r in seen if shards.shard_of(r[4].user_id) == k]
            assert mine == sorted(mine)

        shards.merge_outputs(outputs)
        assert outputs["piggyback-fires"] == [b'{"n":%d}' % n for n in range(120)]
        assert outputs["attributed-conversions"] == [b"x y"] * 120
    finally:
        workspace.close()


def test_parked_expiry_entries_come_back_with_their_users_shard_once() -> None:
    workspace = Workspace()
    try:
        shards = UserShards(workspace, 4)
        entries = [(100 + i, f"user-{i}") for i in range(40)]
        shards.park_entries(entries)
        back = [shards.entries(k) for k in range(4)]
        assert sorted(e for part in back for e in part) == entries
        assert all(shards.shard_of(user) == k for k, part in enumerate(back) for _, user in part)
        assert all(shards.entries(k) == [] for k in range(4))
    finally:
        workspace.close()
