"""The phases after the contenders: state size, end-to-end latency and recovery.

* State: the latest value per key of the memory worker's users changelog (what a recovering worker
  reads), in bytes per active user.
* Latency: with the memory worker still running, new traffic (same users, later timestamps, event
  time advancing with the wall clock) is produced at a steady rate, touches flowing; each
  conversion's produce time is kept, and its outcome's arrival on a reader of the outcome topics
  gives the end-to-end latency, event-time holding included. The first seconds are warm-up and
  not measured; the last second carries touches only, so that no measured conversion waits for
  the bounded wait.
* Recovery: encoded states (sizes drawn from the real states) are written to a fresh app's users
  changelog, on each user's partition; a worker is started on it and timed from Faust's
  "Restoring state from changelog topics" to "Done reading from changelog topics", and from
  process start to "Worker ready".
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from attribution.app.reports import percentile as nearest_rank
from attribution.kafka.client import read_to_end
from attribution.kafka.follower import TopicFollower
from attribution.settings import Settings
from attribution.streaming.topics import create_topics
from attribution.synth import TrafficSpec, events, user_id
from bench.stream.common import ATTRIBUTION, BROKER, OUTCOME_TOPICS, PARTITIONS, SENTINEL_PREFIX, log
from bench.stream.kafka import Bulk, OpenBatches, append_record, bulk_producer, partition_of
from bench.stream.measure import proc_cpu_s, vm_hwm_bytes
from bench.stream.processes import launch, stop, stop_profile, tail
from bench.stream.run import Bench


def percentile(sorted_values: Sequence[float], p: int) -> float:
    """The project's nearest-rank percentile (`p` from 0 to 100); NaN for no values."""
    return nearest_rank(sorted_values, p) if sorted_values else math.nan


async def measure_state(bench: Bench, app_id: str) -> dict[str, Any]:
    """Sizes of the latest user states in the users changelog of `app_id`; keeps them in
    `bench.latest_states` for the recovery phase."""
    changelog = f"{app_id}-users-changelog"
    latest: dict[bytes, bytes] = {}
    for r in (await read_to_end(bench.settings, [changelog], timeout=600))[changelog]:
        if r.key is not None and r.value is not None:
            latest[r.key] = r.value
    real = {k: v for k, v in latest.items() if not k.startswith(SENTINEL_PREFIX.encode())}
    sizes = sorted(len(v) for v in real.values())
    keys = [len(k) for k in real]
    bench.latest_states = list(real.values())
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


async def measure_latency(bench: Bench, rate: float, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
    """End-to-end latency at `rate` events/s through the running `worker` (ms, wall clock)."""
    size = bench.size
    total_s = size.warmup_s + size.latency_s + 1.0  # + 1 s of touches only
    n = max(1, int(rate * total_s))
    start_ms = bench.last_ts + 2
    # As many events per user as the run's inputs have (the backlog the saturation rate is measured
    # on): users seen every second or so would hold states many times the backlog's, and every
    # event's cost grows with its user's state.
    users = max(size.users, n * size.users // size.events)
    spec = TrafficSpec(users=users, events=n, seed=bench.seed + 1, start_ms=start_ms, duration_ms=int(total_s * 1000))
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
        plan.append((bench.topic(topic), raw_key, orjson.dumps(value), partition_of(raw_key), eid, ts >= warm_until_ms))
    seen: dict[str, tuple[float, int]] = {}
    produced: dict[str, float] = {}
    measured: set[str] = set()
    topics = [bench.topic(t) for t in OUTCOME_TOPICS]
    async with TopicFollower(bench.settings, topics, fetch_max_wait_ms=100) as outcomes:
        for tp in outcomes.partitions:  # only the outcomes of this phase: from the current ends
            outcomes.consumer.seek(tp, outcomes.ends[tp])
        stop_reading = asyncio.Event()

        async def read_outcomes() -> None:
            while not stop_reading.is_set():
                batches = await outcomes.fetch(timeout_ms=100, max_records=1_000_000)
                now = time.time()
                for messages in batches.values():
                    for m in messages:
                        cid = orjson.loads(m.value)["conversion_id"]
                        if cid not in seen:
                            seen[cid] = (now, m.timestamp)

        reader = asyncio.ensure_future(read_outcomes())
        profiler = bench.profile("latency-worker", worker.pid)
        producer = AIOKafkaProducer(bootstrap_servers=bench.settings.bootstrap_servers, acks="all")
        await producer.start()
        log(f"latency: {len(plan)} events at {rate:,.0f}/s for {total_s:.0f}s ...")
        cpu0 = proc_cpu_s(worker.pid) or 0.0
        own0 = time.process_time()
        wall0 = time.time()
        try:
            t0 = time.monotonic()
            futures = await paced(producer, plan, rate, produced, measured)
            await asyncio.gather(*futures)
            produce_s = time.monotonic() - t0
            deadline = time.monotonic() + 15 + 3  # the bounded wait (3 s) + slack
            while time.monotonic() < deadline and not measured <= seen.keys():
                await asyncio.sleep(0.1)
        finally:
            stop_profile(profiler)
            stop_reading.set()
            await reader
            await producer.stop()
    cpu = (proc_cpu_s(worker.pid) or 0.0) - cpu0
    rss = vm_hwm_bytes(worker.pid)
    own = time.process_time() - own0
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
        "worker_peak_rss_mib": round(rss / 2**20, 1),
        # this process: the generator and the reader of the outcomes
        "generator_cpu_share": round(own / wall, 3),
    }


#: Seconds between the latency generator's rounds.
ROUND_S = 0.005


async def paced(
    producer: AIOKafkaProducer,
    plan: Sequence[tuple[str, bytes, bytes, int, str | None, bool]],
    rate: float,
    produced: dict[str, float],
    measured: set[str],
) -> list[asyncio.Future[Any]]:
    """Produce `plan` at `rate` events/s: every `ROUND_S`, the events due by then, one aiokafka
    batch per topic and partition (in plan order within each). A conversion's produce time is its
    round's. Sent a record at a time (`producer.send`), a generator took 0.24 of a core at 12,000
    events/s, on the two cores the worker and the broker share; in batches 0.11.
    Returns the sends' futures (acknowledgements are not awaited between rounds)."""
    futures: list[asyncio.Future[Any]] = []
    t0 = time.monotonic()
    i = 0
    while i < len(plan):
        due = min(len(plan), int((time.monotonic() - t0) * rate) + 1)
        stamp = time.time()
        batches: OpenBatches = {}
        for topic, key, value, partition, eid, in_window in plan[i:due]:
            full = append_record(producer, batches, topic, partition, key, value)
            if full is not None:
                futures.append(await producer.send_batch(full, topic, partition=partition))
            if eid is not None and eid not in produced:
                produced[eid] = stamp
                if in_window:
                    measured.add(eid)
        for (topic, partition), batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        if len(futures) >= 1000:
            futures = [f for f in futures if not f.done()]
        i = due
        await asyncio.sleep(ROUND_S)
    return futures


async def measure_recovery(bench: Bench, users: int, stores: Sequence[str]) -> dict[str, Any]:
    """Write `users` states to a fresh app's changelog, then time a worker of each store on it."""
    prefix = f"{bench.prefix}rec-"
    settings = Settings(broker=BROKER, topic_prefix=prefix, partitions=PARTITIONS)
    await create_topics(settings)
    app_id = f"{prefix}app"
    changelog = f"{app_id}-users-changelog"
    await bench.kafka.create([changelog], compacted=True)
    states = bench.latest_states or [b"[1,0,[],[],[],[]]"]
    t0 = time.monotonic()
    producer = bulk_producer(settings)
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
        result[name] = await _recover(bench, app_id, prefix, store, name)
    return result


#: Log lines of a starting worker, in order.
MARKERS = {
    "restoring": "Restoring state from changelog topics",
    "done_reading": "Done reading from changelog topics",
    "ready": "Worker ready",
}


async def _recover(bench: Bench, app_id: str, prefix: str, store: str, name: str) -> dict[str, Any]:
    data_dir = bench.workdir / f"recovery-{name}"
    log_path = bench.workdir / f"recovery-{name}.log"
    env = bench.worker_env(app_id, store, data_dir, prefix=prefix)
    seen: dict[str, float] = {}
    t0 = time.time()
    proc = launch([ATTRIBUTION, "worker", "-l", "info"], env, log_path)
    bench.sampler.watch(f"recovery-{name}", proc.pid)
    profiler = bench.profile(f"recovery-{name}", proc.pid)
    pos = 0
    text = ""
    try:
        deadline = time.monotonic() + bench.size.timeout_s
        while "ready" not in seen:
            await asyncio.sleep(0.05)
            if proc.poll() is not None or time.monotonic() > deadline:
                return {"error": f"not ready within {bench.size.timeout_s:.0f}s", "log": tail(log_path, 800)}
            with open(log_path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
            pos += len(chunk)
            text += chunk.decode(errors="replace")
            now = time.time()
            for mark, needle in MARKERS.items():
                if mark not in seen and needle in text:
                    seen[mark] = now
        rss = vm_hwm_bytes(proc.pid)
        cpu = bench.sampler.between(f"recovery-{name}", seen.get("restoring", t0), seen.get("done_reading", t0))
    finally:
        stop_profile(profiler)
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
