"""One benchmark run's state (`Bench`) and the figures of one contender (`RunResult`)."""

from __future__ import annotations

import math
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attribution.settings import Settings
from bench.stream import processes
from bench.stream.common import BROKER, PARTITIONS, Size, log
from bench.stream.kafka import Kafka
from bench.stream.measure import Sampler, broker_pid


@dataclass
class RunResult:
    """A contender's run: `events` input records in `wall_s` seconds (between the CreateTimes of the
    first and last records it wrote), its CPU seconds and peak RSS, and the broker's CPU seconds
    and the machine's busy share over the same window."""

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
    """What the phases of one run share: its sizes, topic prefix (`sb-<random>-`), work directory,
    Kafka clients, CPU sampler, and what earlier phases found (input count, last event time,
    replay's outcomes, the latest user states)."""

    def __init__(self, size: Size, seed: int, workdir: Path, profile_dir: Path | None, only: set[str]) -> None:
        self.size = size
        self.seed = seed
        self.workdir = workdir
        self.profile_dir = profile_dir
        self.only = only
        self.prefix = f"sb-{uuid.uuid4().hex[:8]}-"
        self.settings = Settings(broker=BROKER, topic_prefix=self.prefix, partitions=PARTITIONS)
        self.kafka = Kafka(self.settings)
        self.sampler = Sampler()
        self.broker_pid = broker_pid()
        self.results: dict[str, Any] = {}
        self.inputs = 0
        self.last_ts = 0
        self.expected_outcomes: int | None = None
        self.latest_states: list[bytes] = []
        self.latency_rate: float | None = None  # events/s of the latency phase; default: half the saturation
        self.repeat = 1  # rounds of the throughput contenders; each keeps its median run

    def wants(self, phase: str) -> bool:
        return not self.only or phase in self.only

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def worker_env(self, app_id: str, store: str, data_dir: Path, prefix: str | None = None) -> dict[str, str]:
        """The environment of a worker process of this run (its own data directory and web port)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "KAFKA_BROKER": BROKER,
            "ATTRIBUTION_TOPIC_PREFIX": self.prefix if prefix is None else prefix,
            "ATTRIBUTION_APP_ID": app_id,
            "ATTRIBUTION_PARTITIONS": str(PARTITIONS),
            "ATTRIBUTION_STORE": store,
            "ATTRIBUTION_DATA_DIR": str(data_dir),
            "ATTRIBUTION_WEB_PORT": str(processes.free_port()),
        }

    def result(
        self, name: str, first_ms: int, last_ms: int, rss: int, members: int = 1, label: str | None = None
    ) -> RunResult:
        """The figures of contender `name` (and its `members - 1` other processes, `name#2`...)
        over the window between two CreateTimes (ms); its processes were sampled as `label`
        (`label#2`...), by default `name`."""
        t0, t1 = first_ms / 1000, last_ms / 1000
        wall = max(t1 - t0, 1e-3)
        watched = label or name
        cpu = sum(self.sampler.between(watched if i == 0 else f"{watched}#{i + 1}", t0, t1) for i in range(members))
        broker = self.sampler.between("broker", t0, t1) if self.broker_pid else math.nan
        busy = self.sampler.between("@busy", t0, t1) / max(self.sampler.between("@total", t0, t1), 1e-9)
        result = RunResult(name, self.inputs, wall, cpu, rss, broker, busy)
        log(f"{name}: {result.rate:,.0f} events/s, {result.as_dict()['cpu_ms_per_1k']} ms CPU / 1k events")
        return result

    def profile(self, name: str, pid: int) -> subprocess.Popen[bytes] | None:
        return processes.start_profile(self.profile_dir, name, pid)
