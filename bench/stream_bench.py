"""Stream benchmark: throughput, latency, CPU, memory, state size and recovery on a real broker.

    python -m bench.stream_bench                      # full run (1,000,000 events, 100,000 users)
    python -m bench.stream_bench --events 200000      # smaller
    python -m bench.stream_bench --smoke              # tiny, well under a minute (the test suite runs it)
    python -m bench.stream_bench --json               # machine-readable results on stdout
    python -m bench.stream_bench --profile bench/out  # py-spy profiles of the worker and passthroughs

Needs the local broker (`make kafka-up`, 127.0.0.1:9092 or `KAFKA_BROKER`). Every run uses its own
topic prefix, consumer groups and app ids (`sb-<random>-`) and deletes its topics at the end.

What it does, in one run:

1. Produces the synthetic traffic of `attribution.synth` (config, then the events, then one
   sentinel impression and click per partition just after the last event so that no conversion
   waits for the bounded wait at the end) into fresh input topics, and writes the same records as a
   replay file.
2. Runs each contender as a subprocess reading those records from the start, one after the other:
   (1) a raw aiokafka consume -> produce passthrough (`bench.passthrough_raw`), (2) a bare Faust
   agent passthrough (`bench.passthrough_faust`), (3) the attribution worker with the RocksDB store
   and with the memory store (`attribution worker`), at-least-once as shipped, and two memory-store
   worker processes in one consumer group (`memory2`: CPU and memory summed over both); and
   (4) `replay` over the replay file (`bench.stream_replay`).
   Throughput = input records / wall time from the first record consumed to the last output
   acknowledged, both read from the broker: the CreateTime of the first and last record each run
   wrote (outputs, and for the worker its state changelog, whose first record is written while the
   first input is handled and whose last is the sentinels' state). A run is complete when its
   outputs count the inputs (passthroughs) or its consumer group has committed the end of every
   input partition (worker). CPU is utime + stime of the process (from /proc/<pid>/stat, sampled
   every 50 ms and interpolated to the window), peak RSS is VmHWM. The broker's CPU and the
   machine's busy share over the same window are reported too: everything shares 2 cores here.
   Every worker run must give exactly replay's number of distinct conversion outcomes.
3. State: the latest value per key of the memory worker's users changelog (what a recovering worker
   reads), in bytes per active user; and the RocksDB worker's data directory size per user.
4. Latency: with the memory worker still running, new traffic (same users, later timestamps, event
   time advancing with the wall clock) is produced at a steady rate, half the memory worker's
   measured throughput, with touches flowing; each conversion's produce time is kept, and its
   outcome's arrival on a consumer of the outcome topics gives the end-to-end latency, event-time
   holding included. The first seconds are warm-up and not measured; the last second carries
   touches only, so that no measured conversion waits for the bounded wait.
5. Recovery: the encoded states of `--recovery-users` users (sizes drawn from the real states of
   step 3) are written to a fresh app's users changelog, on each user's partition; a worker with
   the memory store, then one with RocksDB (fresh data directory), is started and timed from
   Faust's "Restoring state from changelog topics" to "Done reading from changelog topics", and
   from process start to "Worker ready".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2

from attribution.app import reports
from attribution.contract import OUTPUT_TOPICS
from attribution.settings import Settings
from attribution.streaming.topics import create_topics
from attribution.synth import TrafficSpec, config_records, events, user_id

ROOT = Path(__file__).resolve().parents[1]
ATTRIBUTION = str(Path(sys.executable).with_name("attribution"))
BROKER = os.environ.get("KAFKA_BROKER", "127.0.0.1:9092").split("://")[-1]
PARTITIONS = 4
EVENT_TOPICS = ("impressions", "clicks", "conversions")
OUTCOME_TOPICS = ("attributed-conversions", "unattributed-conversions")
SENTINEL_ADVERTISER = 999_999_999
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Size:
    events: int
    users: int
    latency_s: float
    warmup_s: float
    recovery_users: int
    timeout_s: float


FULL = Size(events=1_000_000, users=100_000, latency_s=60, warmup_s=10, recovery_users=1_000_000, timeout_s=1800)
SMOKE = Size(events=3_000, users=300, latency_s=3, warmup_s=1, recovery_users=5_000, timeout_s=60)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """Kafka's default partitioner (murmur2), as the producers upstream and aiokafka use it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def percentile(sorted_values: Sequence[float], p: int) -> float:
    """`app.reports.percentile` (nearest rank, `p` from 0 to 100); NaN for no values."""
    return reports.percentile(sorted_values, p) if sorted_values else math.nan


# -- /proc ------------------------------------------------------------------------------------
def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def vm_hwm_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine, all cores."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


def broker_pid() -> int | None:
    """The local broker's pid, from scripts/kafka.sh's pid file (only read, never signalled)."""
    port = BROKER.rsplit(":", 1)[-1]
    try:
        return int((ROOT / ".kafka" / f"broker-{port}" / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


class Sampler(threading.Thread):
    """Samples the CPU time of watched processes (and of the machine) every `interval` seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self.pids[name] = pid
            self.samples[name] = []

    def run(self) -> None:
        while not self._stop_event.is_set():
            now = time.time()
            with self._lock:
                watched = list(self.pids.items())
            for name, pid in watched:
                cpu = proc_cpu_s(pid)
                if cpu is not None:
                    self.samples[name].append((now, cpu))
            busy, total = machine_cpu_s()
            self.samples.setdefault("@busy", []).append((now, busy))
            self.samples.setdefault("@total", []).append((now, total))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()

    def between(self, name: str, t0: float, t1: float) -> float:
        """CPU seconds of `name` between wall-clock times t0 and t1 (linear interpolation)."""
        samples = list(self.samples.get(name, ()))
        if len(samples) < 2:
            return math.nan
        return _interpolate(samples, t1) - _interpolate(samples, t0)


def _interpolate(samples: list[tuple[float, float]], t: float) -> float:
    if t <= samples[0][0]:
        return samples[0][1]
    if t >= samples[-1][0]:
        return samples[-1][1]
    lo, hi = 0, len(samples) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if samples[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (ta, ca), (tb, cb) = samples[lo], samples[hi]
    return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else ca


# -- processes --------------------------------------------------------------------------------
def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(cmd: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(list(cmd), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# -- Kafka helpers ----------------------------------------------------------------------------
class Bulk:
    """A fast bulk producer: records go into one aiokafka batch per (topic, partition)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.batches: dict[tuple[str, int], Any] = {}
        self.inflight: list[asyncio.Future[Any]] = []
        self.count = 0

    async def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        batch = self.batches.get((topic, partition))
        if batch is None:
            batch = self.batches[(topic, partition)] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            await self._send(topic, partition, batch)
            batch = self.batches[(topic, partition)] = self.producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
        self.count += 1

    async def _send(self, topic: str, partition: int, batch: Any) -> None:
        self.inflight.append(await self.producer.send_batch(batch, topic, partition=partition))
        if len(self.inflight) >= 32:
            await asyncio.gather(*self.inflight)
            self.inflight.clear()

    async def flush(self) -> None:
        for (topic, partition), batch in self.batches.items():
            if batch.record_count():
                await self._send(topic, partition, batch)
        self.batches.clear()
        await asyncio.gather(*self.inflight)
        self.inflight.clear()


def bulk_producer() -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=BROKER, acks="all", max_batch_size=1_000_000, max_request_size=8_000_000, linger_ms=20
    )


def group_less_consumer(**kw: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=BROKER, group_id=None, enable_auto_commit=False, **kw)


class Kafka:
    """One admin client and one metadata consumer for the whole run."""

    async def start(self) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=BROKER, request_timeout_ms=30000)
        await self.admin.start()
        self.consumer = group_less_consumer()
        await self.consumer.start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.admin.close()

    async def tps(self, topics: Iterable[str]) -> list[TopicPartition]:
        topics = list(topics)
        for _ in range(100):
            await self.consumer._client.force_metadata_update()
            found = {t: self.consumer.partitions_for_topic(t) for t in topics}
            if all(found.values()):
                return [TopicPartition(t, p) for t in topics for p in sorted(found[t] or ())]
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topics missing: {[t for t, p in found.items() if not p]}")

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self.consumer.end_offsets(list(tps)))

    async def begin_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self.consumer.beginning_offsets(list(tps)))

    async def create(self, names: Iterable[str], partitions: int = PARTITIONS, compacted: bool = False) -> None:
        configs = {"cleanup.policy": "compact"} if compacted else {}
        existing = set(await self.admin.list_topics())
        new = [NewTopic(n, partitions, 1, topic_configs=configs) for n in names if n not in existing]
        if new:
            await self.admin.create_topics(new)

    async def lag(self, group: str, ends: dict[TopicPartition, int]) -> int:
        committed = await self.admin.list_consumer_group_offsets(group)
        total = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            total += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return total

    async def delete_prefix(self, prefix: str) -> int:
        names = [t for t in await self.admin.list_topics() if t.startswith(prefix)]
        if names:
            await self.admin.delete_topics(names)
        return len(names)


async def timestamps_at(wanted: dict[TopicPartition, int], timeout: float = 30) -> dict[TopicPartition, int]:
    """CreateTime (ms) of the record at (or first after) the given offset of each partition."""
    if not wanted:
        return {}
    consumer = group_less_consumer()
    await consumer.start()
    result: dict[TopicPartition, int] = {}
    try:
        consumer.assign(list(wanted))
        for tp, offset in wanted.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while len(result) < len(wanted) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                for m in messages:
                    if tp not in result and m.offset >= wanted[tp]:
                        result[tp] = m.timestamp
                        consumer.pause(tp)
    finally:
        await consumer.stop()
    return result


async def read_all(
    tps_from: dict[TopicPartition, int], ends: dict[TopicPartition, int], timeout: float = 600
) -> list[tuple[TopicPartition, bytes | None, bytes | None, int]]:
    """(tp, key, value, CreateTime) of every record in [from, end) of each partition."""
    pending = {tp for tp in tps_from if ends[tp] > tps_from[tp]}
    out: list[tuple[TopicPartition, bytes | None, bytes | None, int]] = []
    if not pending:
        return out
    consumer = group_less_consumer(max_partition_fetch_bytes=8 * 1_048_576)
    await consumer.start()
    try:
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, tps_from[tp])
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, messages in batches.items():
                end = ends[tp]
                for m in messages:
                    if m.offset < end:
                        out.append((tp, m.key, m.value, m.timestamp))
                if messages and messages[-1].offset >= end - 1:
                    pending.discard(tp)
                    consumer.pause(tp)
        if pending:
            raise TimeoutError(f"read_all: {len(pending)} partitions not read to their end")
    finally:
        await consumer.stop()
    return out


# -- the run ----------------------------------------------------------------------------------
@dataclass
class RunResult:
    name: str
    events: int
    wall_s: float
    cpu_s: float
    rss_bytes: int
    broker_cpu_s: float
    machine_busy: float  # share of all cores busy over the window
    outcomes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "events": self.events,
            "wall_s": round(self.wall_s, 3),
            "events_per_s": round(self.rate, 1),
            "cpu_s": round(self.cpu_s, 3),
            "cpu_ms_per_1k": round(1000 * self.cpu_s / self.events * 1000, 2) if self.events else None,
            "rss_mib": round(self.rss_bytes / 2**20, 1),
            "broker_cpu_ms_per_1k": round(1000 * self.broker_cpu_s / self.events * 1000, 2) if self.events else None,
            "machine_busy_pct": round(100 * self.machine_busy, 1),
            "outcomes": self.outcomes,
            **self.extra,
        }


class Bench:
    def __init__(self, size: Size, seed: int, workdir: Path, profile_dir: Path | None, only: set[str]) -> None:
        self.size = size
        self.seed = seed
        self.workdir = workdir
        self.profile_dir = profile_dir
        self.only = only
        self.prefix = f"sb-{uuid.uuid4().hex[:8]}-"
        self.settings = Settings(broker=BROKER, topic_prefix=self.prefix, partitions=PARTITIONS)
        self.kafka = Kafka()
        self.sampler = Sampler()
        self.broker_pid = broker_pid()
        self.results: dict[str, Any] = {}
        self.inputs = 0
        self.last_ts = 0
        self.expected_outcomes: int | None = None
        self.latest_states: list[bytes] = []
        self.latency_rate: float | None = None  # events/s of the latency phase; default: half the saturation

    def wants(self, phase: str) -> bool:
        return not self.only or phase in self.only

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    # -- 1. inputs ----------------------------------------------------------------------------
    async def produce_inputs(self) -> Path:
        spec = TrafficSpec(users=self.size.users, events=self.size.events, seed=self.seed)
        await create_topics(self.settings)
        await self.kafka.tps(self.topic(t) for t in (*EVENT_TOPICS, "pixels", "line-items"))
        replay_file = self.workdir / "inputs.jsonl"
        t0 = time.monotonic()
        producer = bulk_producer()
        await producer.start()
        counts: Counter[str] = Counter()
        try:
            bulk = Bulk(producer)
            with open(replay_file, "wb") as f:
                write = f.write
                dumps = orjson.dumps
                nl = orjson.OPT_APPEND_NEWLINE
                for topic, key, value in config_records(spec):
                    write(dumps({"topic": topic, "key": key, "value": value}, option=nl))
                    await bulk.add(self.topic(topic), 0, key.encode(), None if value is None else dumps(value))
                await bulk.flush()  # config before events (the worker waits for it anyway)
                last_ts = spec.start_ms
                for topic, key, value in events(spec):
                    raw_key = key.encode()
                    write(dumps({"topic": topic, "key": key, "value": value}, option=nl))
                    await bulk.add(self.topic(topic), partition_of(raw_key), raw_key, dumps(value))
                    counts[topic] += 1
                    last_ts = value["timestamp"]
                for topic, key, value, partition in sentinels(last_ts + 1):
                    write(dumps({"topic": topic, "key": key, "value": value}, option=nl))
                    await bulk.add(self.topic(topic), partition, key.encode(), dumps(value))
                    counts[topic] += 1
            await bulk.flush()
        finally:
            await producer.stop()
        self.inputs = sum(counts.values())
        self.last_ts = last_ts + 1
        elapsed = time.monotonic() - t0
        log(f"produced {self.inputs} input records ({dict(counts)}) in {elapsed:.1f}s, prefix {self.prefix}")
        self.results["inputs"] = {
            "records": self.inputs,
            "by_topic": dict(counts),
            "users": self.size.users,
            "partitions": PARTITIONS,
            "produce_s": round(elapsed, 1),
        }
        return replay_file

    # -- 2. contenders ------------------------------------------------------------------------
    def run_replay(self, replay_file: Path) -> RunResult:
        log("replay ...")
        proc = subprocess.run(
            [sys.executable, "-m", "bench.stream_replay", str(replay_file)],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=self.size.timeout_s,
        )
        data = orjson.loads(proc.stdout.splitlines()[-1])
        self.expected_outcomes = data["outcomes"]
        result = RunResult(
            "replay", data["events"], data["wall_s"], data["cpu_s"], data["rss_bytes"], 0.0, math.nan, data["outcomes"]
        )
        log(f"replay: {result.rate:,.0f} events/s, {data['outcomes']} outcomes")
        return result

    async def run_passthrough(self, kind: str) -> RunResult:
        out = self.topic(f"pt-{kind}")
        await self.kafka.create([out])
        inputs = [self.topic(t) for t in EVENT_TOPICS]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if kind == "raw":
            cmd = [sys.executable, "-m", "bench.passthrough_raw", "--broker", BROKER]
            cmd += ["--group", f"{self.prefix}pt-raw", "--out", out, *inputs]
        else:
            data_dir = self.workdir / "pt-faust"
            cmd = [sys.executable, "-m", "bench.passthrough_faust", "--broker", BROKER]
            cmd += ["--app-id", f"{self.prefix}pt-faust", "--data-dir", str(data_dir), "--out", out, *inputs]
        name = f"passthrough-{kind}"
        log(f"{name} ...")
        out_tps = await self.kafka.tps([out])
        log_path = self.workdir / f"{name}.log"
        proc = launch(cmd, env, log_path)
        self.sampler.watch(name, proc.pid)
        profiler = self._profile(name, proc.pid)
        try:
            deadline = time.monotonic() + self.size.timeout_s
            while True:
                ends = await self.kafka.end_offsets(out_tps)
                if sum(ends.values()) >= self.inputs:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not finish ({sum(ends.values())}/{self.inputs}):\n{tail(log_path)}")
                await asyncio.sleep(0.2)
            rss = vm_hwm_bytes(proc.pid)
        finally:
            self._stop_profile(profiler)
            stop(proc)
        begins = await self.kafka.begin_offsets(out_tps)
        firsts = await timestamps_at({tp: begins[tp] for tp in out_tps if ends[tp] > begins[tp]})
        lasts = await timestamps_at({tp: ends[tp] - 1 for tp in out_tps if ends[tp] > begins[tp]})
        return self._result(name, min(firsts.values()), max(lasts.values()), rss)

    async def run_worker(
        self, store: str, keep: bool = False, workers: int = 1
    ) -> tuple[RunResult, subprocess.Popen[bytes]]:
        """One run of `workers` worker processes in one consumer group over the whole input;
        CPU and peak memory are summed over the processes."""
        name = f"worker-{store.split(':')[0]}" + (f"-x{workers}" if workers > 1 else "")
        app_id = f"{self.prefix}{name}"
        log(f"{name} ...")
        input_tps = await self.kafka.tps(self.topic(t) for t in EVENT_TOPICS)
        input_ends = await self.kafka.end_offsets(input_tps)
        out_tps = await self.kafka.tps(self.topic(t) for t in OUTPUT_TOPICS)
        out_before = await self.kafka.end_offsets(out_tps)
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        for i in range(workers):
            member = name if i == 0 else f"{name}#{i + 1}"
            env = self.worker_env(app_id, store, self.workdir / member.replace("#", "-"))
            logs.append(self.workdir / f"{member.replace('#', '-')}.log")
            procs.append(launch([ATTRIBUTION, "worker", "-l", "info"], env, logs[-1]))
            log(f"{member}: pid {procs[-1].pid}, log {logs[-1]}")
            self.sampler.watch(member, procs[-1].pid)
        proc, log_path, data_dir = procs[0], logs[0], self.workdir / name
        profiler = self._profile(name, proc.pid)
        try:
            deadline = time.monotonic() + self.size.timeout_s
            while True:
                await asyncio.sleep(0.5)
                if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not finish:\n{tail(log_path)}")
                with contextlib.suppress(Exception):
                    if await self.kafka.lag(app_id, input_ends) == 0:
                        break
            rss = sum(vm_hwm_bytes(p.pid) for p in procs)
            # The outcomes are acknowledged before the offsets are committed: all there by now.
            out_after = await self.kafka.end_offsets(out_tps)
            records = await read_all(out_before, out_after)
            outcome_ids = {
                orjson.loads(v)["conversion_id"]
                for tp, _, v, _ in records
                if v is not None and tp.topic in {self.topic(t) for t in OUTCOME_TOPICS}
            }
            changelog = await self.kafka.tps([f"{app_id}-users-changelog"])
            cl_begin = await self.kafka.begin_offsets(changelog)
            cl_end = await self.kafka.end_offsets(changelog)
            firsts = await timestamps_at({tp: cl_begin[tp] for tp in changelog if cl_end[tp] > cl_begin[tp]})
            last_offsets = {tp: cl_end[tp] - 1 for tp in changelog if cl_end[tp] > cl_begin[tp]}
            last_offsets.update({tp: out_after[tp] - 1 for tp in out_tps if out_after[tp] > out_before[tp]})
            lasts = await timestamps_at(last_offsets)
        except BaseException:
            self._stop_profile(profiler)
            for p in procs:
                stop(p)
            raise
        self._stop_profile(profiler)
        result = self._result(name, min(firsts.values()), max(lasts.values()), rss, members=workers)
        result.outcomes = len(outcome_ids)
        result.extra["output_records"] = len(records)
        result.extra["changelog_records"] = sum(cl_end[tp] - cl_begin[tp] for tp in changelog)
        if self.expected_outcomes is not None and result.outcomes != self.expected_outcomes:
            log(f"WARNING: {name} gave {result.outcomes} outcomes, replay {self.expected_outcomes}")
        if store.startswith("rocksdb"):
            result.extra["rocksdb_dir_bytes"] = dir_size(data_dir)
        for p in procs[1:]:
            stop(p)
        if not keep:
            stop(proc)
        return result, proc

    def worker_env(self, app_id: str, store: str, data_dir: Path, prefix: str | None = None) -> dict[str, str]:
        data_dir.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "KAFKA_BROKER": BROKER,
            "ATTRIBUTION_TOPIC_PREFIX": self.prefix if prefix is None else prefix,
            "ATTRIBUTION_APP_ID": app_id,
            "ATTRIBUTION_PARTITIONS": str(PARTITIONS),
            "ATTRIBUTION_STORE": store,
            "ATTRIBUTION_DATA_DIR": str(data_dir),
            "ATTRIBUTION_WEB_PORT": str(free_port()),
        }

    def _result(self, name: str, first_ms: int, last_ms: int, rss: int, members: int = 1) -> RunResult:
        t0, t1 = first_ms / 1000, last_ms / 1000
        wall = max(t1 - t0, 1e-3)
        cpu = sum(self.sampler.between(name if i == 0 else f"{name}#{i + 1}", t0, t1) for i in range(members))
        broker = self.sampler.between("broker", t0, t1) if self.broker_pid else math.nan
        busy = self.sampler.between("@busy", t0, t1) / max(self.sampler.between("@total", t0, t1), 1e-9)
        result = RunResult(name, self.inputs, wall, cpu, rss, broker, busy)
        log(f"{name}: {result.rate:,.0f} events/s, {result.as_dict()['cpu_ms_per_1k']} ms CPU / 1k events")
        return result

    def _profile(self, name: str, pid: int) -> subprocess.Popen[bytes] | None:
        if self.profile_dir is None:
            return None
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out = self.profile_dir / f"{name}.txt"
        cmd = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking", "-o", str(out)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _stop_profile(self, profiler: subprocess.Popen[bytes] | None) -> None:
        if profiler is not None and profiler.poll() is None:
            profiler.send_signal(signal.SIGINT)
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.kill()

    # -- 3. state -----------------------------------------------------------------------------
    async def measure_state(self, app_id: str) -> dict[str, Any]:
        changelog = await self.kafka.tps([f"{app_id}-users-changelog"])
        begin = await self.kafka.begin_offsets(changelog)
        end = await self.kafka.end_offsets(changelog)
        latest: dict[bytes, bytes] = {}
        for _, key, value, _ in await read_all(begin, end):
            if key is not None and value is not None:
                latest[key] = value
        real = {k: v for k, v in latest.items() if not k.startswith(b"bench-sentinel-")}
        sizes = sorted(len(v) for v in real.values())
        keys = [len(k) for k in real]
        self.latest_states = list(real.values())
        in_memory = [sys.getsizeof(k) + sys.getsizeof(v) for k, v in real.items()]
        return {
            "active_users": len(real),
            "value_bytes_mean": round(statistics.fmean(sizes), 1) if sizes else None,
            "value_bytes_p50": percentile(sizes, 50),
            "value_bytes_p99": percentile(sizes, 99),
            "value_bytes_max": sizes[-1] if sizes else None,
            "key_bytes_mean": round(statistics.fmean(keys), 1) if keys else None,
            # bytes objects of key and value + a dict slot (3 words, at 2/3 load)
            "memory_store_bytes_mean": round(statistics.fmean(in_memory) + 36, 1) if in_memory else None,
        }

    # -- 4. latency ---------------------------------------------------------------------------
    async def measure_latency(self, rate: float, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
        size = self.size
        total_s = size.warmup_s + size.latency_s + 1.0  # + 1 s of touches only
        n = max(1, int(rate * total_s))
        start_ms = self.last_ts + 2
        spec = TrafficSpec(
            users=size.users, events=n, seed=self.seed + 1, start_ms=start_ms, duration_ms=int(total_s * 1000)
        )
        tail_from_ms = start_ms + int((size.warmup_s + size.latency_s) * 1000)
        warm_until_ms = start_ms + int(size.warmup_s * 1000)
        plan: list[tuple[str, bytes, bytes, int, str | None, bool]] = []
        for topic, key, value in events(spec):
            ts = value["timestamp"]
            conversion = topic == "conversions"
            if conversion and ts >= tail_from_ms:
                continue  # the tail: touches only
            raw_key = key.encode()
            eid = value["event_id"] if conversion else None
            plan.append(
                (self.topic(topic), raw_key, orjson.dumps(value), partition_of(raw_key), eid, ts >= warm_until_ms)
            )
        outcome_tps = await self.kafka.tps(self.topic(t) for t in OUTCOME_TOPICS)
        begin = await self.kafka.end_offsets(outcome_tps)
        seen: dict[str, tuple[float, int]] = {}
        produced: dict[str, float] = {}
        measured: set[str] = set()
        consumer = group_less_consumer(fetch_max_wait_ms=100)
        await consumer.start()
        consumer.assign(outcome_tps)
        for tp, off in begin.items():
            consumer.seek(tp, off)
        stop_reading = asyncio.Event()

        async def read_outcomes() -> None:
            while not stop_reading.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for messages in batches.values():
                    for m in messages:
                        cid = orjson.loads(m.value)["conversion_id"]
                        if cid not in seen:
                            seen[cid] = (now, m.timestamp)

        reader = asyncio.ensure_future(read_outcomes())
        profiler = self._profile("latency-worker", worker.pid)
        producer = AIOKafkaProducer(bootstrap_servers=BROKER, acks="all")
        await producer.start()
        log(f"latency: {len(plan)} events at {rate:,.0f}/s for {total_s:.0f}s ...")
        cpu0 = proc_cpu_s(worker.pid) or 0.0
        wall0 = time.time()
        try:
            t0 = time.monotonic()
            interval = 1.0 / rate
            futures = []
            for i, (topic, key, value, partition, eid, in_window) in enumerate(plan):
                due = t0 + i * interval
                delay = due - time.monotonic()
                if delay > 0.001:
                    await asyncio.sleep(delay)
                if eid is not None and eid not in produced:
                    produced[eid] = time.time()
                    if in_window:
                        measured.add(eid)
                futures.append(await producer.send(topic, value, key, partition=partition))
                if len(futures) >= 1000:
                    futures = [f for f in futures if not f.done()]
            await asyncio.gather(*futures)
            produce_s = time.monotonic() - t0
            deadline = time.monotonic() + 15 + 3  # the bounded wait (3 s) + slack
            while time.monotonic() < deadline and not measured <= seen.keys():
                await asyncio.sleep(0.1)
        finally:
            self._stop_profile(profiler)
            stop_reading.set()
            await reader
            await consumer.stop()
            await producer.stop()
        cpu = (proc_cpu_s(worker.pid) or 0.0) - cpu0
        wall = time.time() - wall0
        got = sorted(1000 * (seen[e][0] - produced[e]) for e in measured if e in seen)
        worker_side = sorted(seen[e][1] - 1000 * produced[e] for e in measured if e in seen)
        return {
            "rate_events_per_s": round(rate, 1),
            "achieved_events_per_s": round(len(plan) / produce_s, 1),
            "measured_s": size.latency_s,
            "conversions_measured": len(measured),
            "conversions_without_outcome": len(measured - seen.keys()),
            "p50_ms": round(percentile(got, 50), 1),
            "p90_ms": round(percentile(got, 90), 1),
            "p99_ms": round(percentile(got, 99), 1),
            "max_ms": round(got[-1], 1) if got else None,
            "p50_to_outcome_sent_ms": round(percentile(worker_side, 50), 1),
            "p99_to_outcome_sent_ms": round(percentile(worker_side, 99), 1),
            "worker_cpu_share": round(cpu / wall, 3),
        }

    # -- 5. recovery --------------------------------------------------------------------------
    async def measure_recovery(self, users: int, stores: Sequence[str]) -> dict[str, Any]:
        prefix = f"{self.prefix}rec-"
        settings = Settings(broker=BROKER, topic_prefix=prefix, partitions=PARTITIONS)
        await create_topics(settings)
        app_id = f"{prefix}app"
        changelog = f"{app_id}-users-changelog"
        await self.kafka.create([changelog], compacted=True)
        states = self.latest_states or [b"[1,0,[],[],[],[]]"]
        t0 = time.monotonic()
        producer = bulk_producer()
        await producer.start()
        total_bytes = 0
        try:
            bulk = Bulk(producer)
            for i in range(users):
                key = user_id(i).encode()
                value = states[i % len(states)]
                total_bytes += len(value)
                await bulk.add(changelog, partition_of(key), key, value)
            await bulk.flush()
        finally:
            await producer.stop()
        write_s = time.monotonic() - t0
        log(f"recovery: wrote {users} states ({total_bytes / 2**20:.0f} MiB) in {write_s:.1f}s")
        result: dict[str, Any] = {
            "users": users,
            "changelog_mib": round(total_bytes / 2**20, 1),
            "write_s": round(write_s, 1),
        }
        for store in stores:
            name = store.split(":")[0]
            result[name] = await self._recover(app_id, prefix, store, name)
        return result

    async def _recover(self, app_id: str, prefix: str, store: str, name: str) -> dict[str, Any]:
        data_dir = self.workdir / f"recovery-{name}"
        log_path = self.workdir / f"recovery-{name}.log"
        env = self.worker_env(app_id, store, data_dir, prefix=prefix)
        markers = {
            "restoring": "Restoring state from changelog topics",
            "done_reading": "Done reading from changelog topics",
            "ready": "Worker ready",
        }
        seen: dict[str, float] = {}
        t0 = time.time()
        proc = launch([ATTRIBUTION, "worker", "-l", "info"], env, log_path)
        self.sampler.watch(f"recovery-{name}", proc.pid)
        profiler = self._profile(f"recovery-{name}", proc.pid)
        pos = 0
        text = ""
        try:
            deadline = time.monotonic() + self.size.timeout_s
            while "ready" not in seen:
                await asyncio.sleep(0.05)
                if proc.poll() is not None or time.monotonic() > deadline:
                    return {"error": f"not ready within {self.size.timeout_s:.0f}s", "log": tail(log_path, 800)}
                with open(log_path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                pos += len(chunk)
                text += chunk.decode(errors="replace")
                now = time.time()
                for mark, needle in markers.items():
                    if mark not in seen and needle in text:
                        seen[mark] = now
            rss = vm_hwm_bytes(proc.pid)
            cpu = self.sampler.between(f"recovery-{name}", seen.get("restoring", t0), seen.get("done_reading", t0))
        finally:
            self._stop_profile(profiler)
            stop(proc)
        restoring, done = seen.get("restoring"), seen.get("done_reading")
        out = {
            "recovery_s": round(done - restoring, 2) if restoring and done else None,
            "start_to_ready_s": round(seen["ready"] - t0, 2),
            "cpu_s": round(cpu, 2),
            "rss_mib": round(rss / 2**20, 1),
        }
        log(f"recovery {name}: {out}")
        return out

    # -- driver -------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        await self.kafka.start()
        if self.broker_pid:
            self.sampler.watch("broker", self.broker_pid)
        self.sampler.start()
        runs: list[RunResult] = []
        worker: subprocess.Popen[bytes] | None = None
        try:
            replay_file = await self.produce_inputs()
            if self.wants("replay"):
                runs.append(self.run_replay(replay_file))
            if self.wants("raw"):
                runs.append(await self.run_passthrough("raw"))
            if self.wants("faust"):
                runs.append(await self.run_passthrough("faust"))
            if self.wants("rocksdb"):
                runs.append((await self.run_worker("rocksdb://"))[0])
            if self.wants("memory2"):
                runs.append((await self.run_worker("memory://", workers=2))[0])
            memory: RunResult | None = None
            if self.wants("memory") or self.wants("latency") or self.wants("recovery"):
                memory, worker = await self.run_worker("memory://", keep=True)
                runs.append(memory)
                self.results["state"] = await self.measure_state(f"{self.prefix}worker-memory")
                log(f"state: {self.results['state']}")
            if self.wants("latency") and memory is not None and worker is not None:
                rate = self.latency_rate or memory.rate / 2
                self.results["latency"] = await self.measure_latency(rate, worker)
                log(f"latency: {self.results['latency']}")
            if worker is not None:
                stop(worker)
                worker = None
            if self.wants("recovery"):
                stores = ["memory://", "rocksdb://"]
                self.results["recovery"] = await self.measure_recovery(self.size.recovery_users, stores)
        finally:
            if worker is not None:
                stop(worker)
            self.sampler.stop()
        raw = next((r for r in runs if r.name == "passthrough-raw"), None)
        self.results["runs"] = [
            {**r.as_dict(), "ratio_to_raw": round(r.rate / raw.rate, 3) if raw else None} for r in runs
        ]
        self.results["expected_outcomes"] = self.expected_outcomes
        self.results["machine"] = machine()
        return self.results


def sentinels(timestamp: int) -> list[tuple[str, str, dict[str, Any], int]]:
    """An impression and a click per partition, for users of no real advertiser, at `timestamp`:
    they move every partition's touch watermarks past the last real conversion."""
    out = []
    for p in range(PARTITIONS):
        i = 0
        while partition_of(f"bench-sentinel-{i}".encode()) != p:
            i += 1
        user = f"bench-sentinel-{i}"
        for topic in ("impressions", "clicks"):
            value = {
                "event_id": f"{topic}-{user}-{timestamp}",
                "user_id": user,
                "timestamp": timestamp,
                "advertiser_id": SENTINEL_ADVERTISER,
                "line_item_id": 1,
                "creative_id": 1,
                "auction_id": "sentinel",
            }
            out.append((topic, user, value, p))
    return out


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    jars = sorted((ROOT / ".kafka" / "lib").glob("kafka_2.13-*.jar"))
    kafka = jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "unknown"

    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_gib": round(mem / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": kafka,
        "faust_streaming": version("faust-streaming"),
        "aiokafka": version("aiokafka"),
        "orjson": version("orjson"),
        "broker_on_this_machine": broker_pid() is not None,
    }


def markdown(results: dict[str, Any], command: str) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB, {m['os']}; Python {m['python']}, "
        f"Kafka {m['kafka']} (single local broker on the same machine), faust-streaming {m['faust_streaming']}, "
        f"aiokafka {m['aiokafka']}, orjson {m['orjson']}.",
        "",
        f"Command: `{command}`",
        "",
        f"Inputs: {results['inputs']['records']:,} records ({results['inputs']['by_topic']}), "
        f"{results['inputs']['users']:,} users, {results['inputs']['partitions']} partitions.",
        "",
        "| contender | events/s | ratio to raw | wall s | CPU ms / 1k events | peak RSS MiB | broker CPU ms / 1k | machine busy | outcomes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['name']} | {r['events_per_s']:,.0f} | {_num(r['ratio_to_raw'], '.2f')} | {r['wall_s']:.1f} "
            f"| {_num(r['cpu_ms_per_1k'], '.1f')} | {r['rss_mib']:.0f} | {_num(r['broker_cpu_ms_per_1k'], '.1f')} "
            f"| {_num(r['machine_busy_pct'], '.0f', '%')} | {_num(r['outcomes'], 'd')} |"
        )
    lines.append(f"\nReplay's distinct conversion outcomes: {results['expected_outcomes']}.")
    by_name = {r["name"]: r for r in results["runs"]}
    one, two = by_name.get("worker-memory"), by_name.get("worker-memory-x2")
    if one and two:
        lines.append(
            f"\nTwo worker processes (one group) against one: {two['events_per_s'] / one['events_per_s']:.2f}x."
        )
    if "latency" in results:
        la = results["latency"]
        lines += [
            "",
            "| latency (produce -> outcome readable) | value |",
            "|---|---:|",
            f"| rate (default: half the memory worker's throughput) | {la['rate_events_per_s']:,.0f} events/s "
            f"(achieved {la['achieved_events_per_s']:,.0f}) |",
            f"| conversions measured ({la['measured_s']} s after warm-up) | {la['conversions_measured']} "
            f"({la['conversions_without_outcome']} without outcome) |",
            f"| p50 / p90 / p99 / max | {la['p50_ms']} / {la['p90_ms']} / {la['p99_ms']} / {la['max_ms']} ms |",
            f"| p50 / p99 to the outcome's send (its CreateTime) | {la['p50_to_outcome_sent_ms']} / "
            f"{la['p99_to_outcome_sent_ms']} ms |",
            f"| worker CPU at this rate | {100 * la['worker_cpu_share']:.0f}% of one core |",
        ]
    if "state" in results:
        st = results["state"]
        rocks = next((r for r in results["runs"] if r["name"] == "worker-rocksdb"), None)
        lines += [
            "",
            "| state per active user | bytes |",
            "|---|---:|",
            f"| encoded value, mean ({st['active_users']:,} users) | {st['value_bytes_mean']} |",
            f"| encoded value p50 / p99 / max | {st['value_bytes_p50']} / {st['value_bytes_p99']} / "
            f"{st['value_bytes_max']} |",
            f"| memory store (key + value objects + dict slot), mean | {st['memory_store_bytes_mean']} |",
        ]
        if rocks and rocks.get("rocksdb_dir_bytes"):
            lines.append(f"| RocksDB data dir / user | {rocks['rocksdb_dir_bytes'] / st['active_users']:.0f} |")
    if "recovery" in results:
        rc = results["recovery"]
        lines += [
            "",
            f"Recovery of {rc['users']:,} users' state ({rc['changelog_mib']} MiB of changelog, written in "
            f"{rc['write_s']} s):",
            "",
            "| store | changelog read (s) | process start -> worker ready (s) | CPU s | peak RSS MiB |",
            "|---|---:|---:|---:|---:|",
        ]
        for store in ("memory", "rocksdb"):
            r = rc.get(store)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {store} | {r['error']} | | | |")
            else:
                lines.append(
                    f"| {store} | {r['recovery_s']} | {r['start_to_ready_s']} | {r['cpu_s']} | {r['rss_mib']:.0f} |"
                )
    return "\n".join(lines)


def _num(value: Any, fmt: str, suffix: str = "") -> str:
    """A figure for the table; '-' for a missing one (None, or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{fmt}}{suffix}"


def summarize_profile(path: Path, top: int = 25) -> str:
    """Top functions of a py-spy raw (collapsed) profile: self and inclusive share of samples."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"{path.name}: {total} samples", "self%  incl%  function"]
    for f, n in own.most_common(top):
        lines.append(f"{100 * n / total:5.1f}  {100 * incl[f] / total:5.1f}  {f}")
    return "\n".join(lines)


def _frame(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{name} ({file})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, help=f"input events (default {FULL.events:,})")
    parser.add_argument("--users", type=int, help=f"distinct users (default {FULL.users:,})")
    parser.add_argument(
        "--recovery-users", type=int, help=f"users in the recovery test (default {FULL.recovery_users:,})"
    )
    parser.add_argument(
        "--latency-s", type=float, help=f"measured seconds of the latency phase (default {FULL.latency_s:g})"
    )
    parser.add_argument(
        "--latency-rate", type=float, help="events/s of the latency phase (default: half the saturation)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a check that the harness works")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--profile", type=Path, help="write py-spy profiles of the contenders into this directory")
    parser.add_argument(
        "--only", default="", help="comma-separated phases: replay,raw,faust,rocksdb,memory,memory2,latency,recovery"
    )
    parser.add_argument("--keep", action="store_true", help="keep the topics and the work directory")
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else FULL
    size = Size(
        events=args.events or base.events,
        users=args.users or base.users,
        latency_s=args.latency_s or base.latency_s,
        warmup_s=base.warmup_s,
        recovery_users=args.recovery_users or base.recovery_users,
        timeout_s=base.timeout_s if args.smoke else FULL.timeout_s,
    )
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # leader elections of new topics: retried
    workdir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    only = {p for p in args.only.split(",") if p}
    bench = Bench(size, args.seed, workdir, args.profile, only)
    bench.latency_rate = args.latency_rate
    command = "python -m bench.stream_bench " + " ".join(argv if argv is not None else sys.argv[1:])

    async def go() -> dict[str, Any]:
        try:
            return await bench.run()
        finally:
            if not args.keep:
                with contextlib.suppress(Exception):
                    n = await bench.kafka.delete_prefix(bench.prefix)
                    log(f"deleted {n} topics of {bench.prefix}")
            await bench.kafka.close()

    try:
        results = asyncio.run(go())
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work directory kept: {workdir}")
    results["command"] = command
    results["size"] = size.__dict__
    if args.profile:
        results["profiles"] = {p.stem: summarize_profile(p) for p in sorted(args.profile.glob("*.txt"))}
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    else:
        print(markdown(results, command))
        for text in results.get("profiles", {}).values():
            print("\n```\n" + text + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
