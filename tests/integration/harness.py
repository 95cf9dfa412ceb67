"""A real pipeline for integration tests: a real broker, real topics, real worker processes.

Each `Pipeline` gets its own topic prefix and app id, so tests never see each other's records.
Workers are `attribution worker` subprocesses (killable with SIGKILL, restartable on the same
data dir). Records are given in the replay file format, so the same list feeds `replay`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from attribution.kafka.follower import TopicFollower
from attribution.replay import replay
from attribution.settings import Settings
from helpers import click_json, impression_json

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("KAFKA_BROKER", "127.0.0.1:9092").split("://")[-1]
OUTPUTS = ("attributed-conversions", "unattributed-conversions", "piggyback-fires", "dead-letters")
ATTRIBUTION = str(Path(sys.executable).with_name("attribution"))


def broker_up() -> bool:
    host, port = BROKER.rsplit(":", 1)
    with closing(socket.socket()) as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def conversion_ids(entries: list[dict[str, Any]]) -> set[str]:
    """The distinct conversions of replay-format entries (the traffic repeats some)."""
    return {e["value"]["event_id"] for e in entries if e["topic"] == "conversions"}


def by_topic(entries: list[dict[str, Any]], *topics: str) -> list[dict[str, Any]]:
    """The entries of these topics, in order."""
    return [e for e in entries if e["topic"] in topics]


def traffic(users: int, events: int, seed: int = 7, conversion_share: float = 0.1) -> list[dict[str, Any]]:
    """Synthetic traffic (config first, events in timestamp order) in the replay file format."""
    from attribution.synth import TrafficSpec, config_records
    from attribution.synth import events as synth_events

    spec = TrafficSpec(
        users=users, events=events, seed=seed, conversion_share=conversion_share, duration_ms=6 * 3_600_000
    )
    entries: list[dict[str, Any]] = [{"topic": t, "key": k, "value": v} for t, k, v in config_records(spec)]
    entries += [{"topic": t, "key": k, "value": v} for t, k, v in synth_events(spec)]
    return entries


def every_page_config(advertiser_id: int, line_items: int = 5) -> list[dict[str, Any]]:
    """Config entries: pixel 1 of the advertiser counting every conversion ("all": no repeat
    limit), carried by `line_items` line items 100, 101, ..."""
    pixel = {"id": 1, "advertiser_id": advertiser_id, "name": "every page", "min_minutes_per_conv": 0}
    items = [{"id": 100 + i, "advertiser_id": advertiser_id, "pixels": [{"id": 1}]} for i in range(line_items)]
    return [{"topic": "pixels", "key": 1, "value": pixel}] + [
        {"topic": "line-items", "key": li["id"], "value": li} for li in items
    ]


def sentinels(partitions: int, timestamp: int = 4_000_000_000_000) -> list[dict[str, Any]]:
    """One far-future impression and click per partition, for a user of no advertiser we use:
    they push every partition's touch watermark past all real conversions, so held ones are
    judged without waiting for the bounded wait (they produce no output themselves)."""
    out = []
    for p in range(partitions):
        for topic in ("impressions", "clicks"):
            user = f"sentinel-{p}"
            build = impression_json if topic == "impressions" else click_json
            value = build(
                event_id=f"{topic}-{user}",
                user_id=user,
                timestamp=timestamp,
                advertiser_id=999_999_999,
                line_item_id=1,
                creative_id=1,
                auction_id="sentinel",
            )
            out.append({"topic": topic, "key": user, "value": value, "partition": p})
    return out


def encode_entry(entry: dict[str, Any]) -> tuple[str, bytes | None, bytes | None]:
    """(topic, key, value) of a replay-format entry; the key defaults to user_id / id."""
    value = entry.get("value")
    raw = value.encode() if isinstance(value, str) else None if value is None else orjson.dumps(value)
    if "key" in entry:
        key = entry["key"]
    elif isinstance(value, dict):
        key = value.get("user_id", value.get("id"))
    else:
        key = None
    return entry["topic"], None if key is None else str(key).encode(), raw


class Pipeline:
    def __init__(
        self, tmp: Path, partitions: int = 3, hold_ms: int = 3000, store: str = "memory://", broker: str = BROKER
    ) -> None:
        self.prefix = f"it-{uuid.uuid4().hex[:8]}-"
        self.tmp = tmp
        self.partitions = partitions
        self.env = {
            **os.environ,
            "KAFKA_BROKER": broker,
            "ATTRIBUTION_TOPIC_PREFIX": self.prefix,
            "ATTRIBUTION_APP_ID": f"{self.prefix}app",
            "ATTRIBUTION_PARTITIONS": str(partitions),
            "ATTRIBUTION_HOLD_MS": str(hold_ms),
            "ATTRIBUTION_STORE": store,
            "ATTRIBUTION_SESSION_TIMEOUT_S": "6",
        }
        self.broker = broker
        self.workers: list[subprocess.Popen[bytes]] = []
        self.web_ports: dict[str, int] = {}
        subprocess.run([ATTRIBUTION, "topics", "create"], env=self.env, check=True, capture_output=True, timeout=60)

    # -- workers ---------------------------------------------------------------------------
    def start_worker(
        self, name: str = "w0", env: dict[str, str] | None = None, command: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        """An `attribution worker` process (or `command` in its place, with the same environment)."""
        data = self.tmp / name
        data.mkdir(parents=True, exist_ok=True)
        self.web_ports[name] = free_port()
        env = {
            **self.env,
            "ATTRIBUTION_DATA_DIR": str(data),
            "ATTRIBUTION_WEB_PORT": str(self.web_ports[name]),
            **(env or {}),
        }
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(command or [ATTRIBUTION, "worker", "-l", "info"], env=env, stdout=log, stderr=log)
        self.workers.append(proc)
        return proc

    def web_url(self, name: str = "w0") -> str:
        """Base URL of a worker's web server (bound to 127.0.0.1)."""
        return f"http://127.0.0.1:{self.web_ports[name]}"

    def wait_web(self, name: str = "w0", timeout: float = 90) -> str:
        """Wait until a worker's web server answers (it starts once the worker has recovered)."""
        url = self.web_url(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/openapi.json", timeout=2) as response:
                    if response.status == 200:
                        return url
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"worker {name}'s web server did not answer within {timeout:g}s:\n{self.log(name)[-3000:]}")

    def stop(self, proc: subprocess.Popen[bytes], kill: bool = False, timeout: float = 30) -> None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                self.stop(proc, kill=True)

    def log(self, name: str = "w0") -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- records ---------------------------------------------------------------------------
    def produce(self, entries: Iterable[dict[str, Any]], compression_type: str | None = None) -> int:
        """Produce entries in order; in batches compressed with `compression_type` if given."""
        return asyncio.run(self._produce(list(entries), compression_type))

    async def _produce(self, entries: list[dict[str, Any]], compression_type: str | None = None) -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker, acks="all", linger_ms=5, compression_type=compression_type
        )
        await producer.start()
        try:
            futures = []
            for entry in entries:
                topic, key, value = encode_entry(entry)
                partition = entry.get("partition")
                futures.append(await producer.send(self.prefix + topic, key=key, value=value, partition=partition))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return len(entries)

    def produce_raw(self, entries: Iterable[dict[str, Any]]) -> int:
        """Produce entries whose `value` is already bytes (or None), keys as given."""
        return asyncio.run(self._produce_raw(list(entries)))

    async def _produce_raw(self, entries: list[dict[str, Any]]) -> int:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker, acks="all", max_request_size=2_000_000)
        await producer.start()
        try:
            for e in entries:
                key = None if e.get("key") is None else str(e["key"]).encode()
                await producer.send_and_wait(self.prefix + e["topic"], key=key, value=e["value"])
        finally:
            await producer.stop()
        return len(entries)

    def read(self, until: Any = None, timeout: float = 60, settle: float = 2.0) -> dict[str, list[bytes]]:
        """Read every output topic from the start until `until(outputs)` holds (then `settle`
        seconds more to catch stragglers) or the timeout passes."""
        return asyncio.run(self._read(until, timeout, settle))

    async def _read(self, until: Any, timeout: float, settle: float) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {t: [] for t in OUTPUTS}
        async with TopicFollower(Settings(broker=self.broker), [self.prefix + t for t in OUTPUTS]) as follower:
            deadline = time.monotonic() + timeout
            done_at: float | None = None
            while time.monotonic() < deadline:
                batch = await follower.fetch(timeout_ms=200)
                for tp, messages in batch.items():
                    out[tp.topic.removeprefix(self.prefix)].extend(m.value for m in messages)
                if done_at is None and until is not None and until(out):
                    done_at = time.monotonic()
                if done_at is not None and time.monotonic() - done_at >= settle:
                    break
        return out


def read_report_rows(pipeline: Pipeline, timeout: float = 30) -> dict[str, dict[str, Any]]:
    """The current rows of `conversion-reports` by key (the last record per key), read to the
    topic's end with the product's own group-less reader."""
    from attribution.app.hourly import latest_rows
    from attribution.kafka.client import read_to_end
    from attribution.settings import Settings

    settings = Settings(broker=pipeline.broker, topic_prefix=pipeline.prefix)
    name = settings.topic("conversion-reports")
    records = asyncio.run(read_to_end(settings, [name], timeout=timeout))[name]
    rows = latest_rows((r.key, r.value) for r in records)
    keys = {r.key for r in records if r.value is not None}
    by_key = {_row_key(row): row for row in rows}
    assert set(by_key) == {k.decode() for k in keys if k is not None}, "a row under another row's key"
    return by_key


def counted(rows: dict[str, dict[str, Any]]) -> int:
    """Conversions the report rows count."""
    return sum(r["post_click"] + r["post_view"] + sum(r["unattributed"].values()) for r in rows.values())


def wait_until_counted(pipeline: Pipeline, n: int, timeout: float = 120) -> dict[str, dict[str, Any]]:
    """The report rows once they count at least `n` conversions. Rows trail the outcomes by two
    hops (outcomes -> `report-updates` -> `conversion-reports`), so a reader polls."""
    deadline = time.monotonic() + timeout
    while counted(rows := read_report_rows(pipeline)) < n:
        assert time.monotonic() < deadline, f"fewer than {n} conversions counted after {timeout:g}s"
        time.sleep(0.2)
    return rows


def _row_key(row: dict[str, Any]) -> str:
    return f"{row['pixel_id']}:{'none' if row['line_item_id'] is None else row['line_item_id']}:{row['hour']}"


def expected_report_rows(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The report rows of `replay`'s outcomes of the same records (the pixels' advertisers from the
    last pixel record of each id), folded by the product's pure fold."""
    from attribution.contract.report_codec import rows_of
    from attribution.domain.hourly import as_record

    advertisers: dict[int, int] = {}
    for e in (e for e in entries if e["topic"] == "pixels"):
        if isinstance(e["value"], dict):
            advertisers[int(e["value"]["id"])] = e["value"]["advertiser_id"]
        else:  # a delete
            advertisers.pop(int(e["key"]), None)
    out = replay_outputs(entries)
    outcomes = out["attributed-conversions"] + out["unattributed-conversions"]
    return {k: as_record(r) for k, r in rows_of(outcomes, advertisers.get).items()}


def outcome_count(outputs: dict[str, list[bytes]]) -> int:
    """Distinct conversions with an outcome."""
    ids = {orjson.loads(v)["conversion_id"] for t in OUTPUTS[:2] for v in outputs[t]}
    return len(ids)


def normalized(outputs: dict[str, list[bytes]], prefix: str = "") -> dict[str, set[Any]]:
    """Outputs as sets (at-least-once may repeat a record); dead letters without their position."""
    norm: dict[str, set[Any]] = {t: set(outputs[t]) for t in OUTPUTS[:3]}
    norm["dead-letters"] = set()
    for raw in outputs["dead-letters"]:
        d = orjson.loads(raw)
        norm["dead-letters"].add((d["topic"].removeprefix(prefix), d["error"]["code"], d["payload"]))
    return norm


def replay_outputs(entries: list[dict[str, Any]]) -> dict[str, list[bytes]]:
    return replay([orjson.dumps(e) for e in entries]).outputs


def distinct_outcomes(outputs: dict[str, list[bytes]]) -> dict[str, bytes]:
    """conversion_id -> its outcome record; fails on a conversion with two different outcomes."""
    seen: dict[str, bytes] = {}
    for t in OUTPUTS[:2]:
        for v in outputs[t]:
            cid = orjson.loads(v)["conversion_id"]
            assert seen.get(cid, v) == v, f"conflicting outcomes for {cid}: {seen[cid]!r} vs {v!r}"
            seen[cid] = v
    return seen


def conflicts(outputs: dict[str, list[bytes]]) -> list[str]:
    """Conversion ids with more than one distinct outcome record (never allowed)."""
    seen: dict[str, bytes] = {}
    bad = []
    for t in OUTPUTS[:2]:
        for v in outputs[t]:
            cid = orjson.loads(v)["conversion_id"]
            if cid in seen and seen[cid] != v:
                bad.append(cid)
            seen[cid] = v
    return bad
