"""CPU and memory of processes and of the machine, read from /proc, and a description of the machine.

CPU is utime + stime (clock ticks of /proc/<pid>/stat), sampled every 50 ms by `Sampler` and
interpolated to a window; peak memory is VmHWM. Linux only.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import math
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

from bench.stream.common import BROKER, ROOT

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def vm_hwm_bytes(pid: int) -> int:
    """Peak resident memory of a process, in bytes (0 once it is gone)."""
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


async def quiet_machine(busy_below: float = 0.15, window_s: float = 1.0, max_wait_s: float = 60.0) -> float:
    """Wait until the machine's busy share over `window_s` is under `busy_below` (the broker's log
    cleaner compacting an earlier contender's changelog, say), at most `max_wait_s`; returns the
    seconds waited. Each contender then starts on a machine as quiet as the baseline's."""
    start = time.monotonic()
    while True:
        busy0, total0 = machine_cpu_s()
        await asyncio.sleep(window_s)
        busy1, total1 = machine_cpu_s()
        waited = time.monotonic() - start
        if total1 <= total0 or (busy1 - busy0) / (total1 - total0) < busy_below or waited >= max_wait_s:
            return waited


def broker_pid() -> int | None:
    """The local broker's pid, from scripts/kafka.sh's pid file (only read, never signalled)."""
    port = BROKER.rsplit(":", 1)[-1]
    try:
        return int((ROOT / ".kafka" / f"broker-{port}" / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def broker_version() -> str:
    """The running broker's Kafka version, from the Kafka jar of its class path (`scripts/kafka.sh`
    gives it `.kafka/lib-<version>/*`); "unknown" without a local broker."""
    pid = broker_pid()
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if pid else []
    except OSError:
        args = []
    for arg in args:
        for entry in arg.split(":"):
            folder = Path(entry.removesuffix("*"))
            if folder.name.startswith("lib-") and folder.is_dir():
                jars = sorted(folder.glob("kafka_2.13-*.jar"))
                names = [j.name.removeprefix("kafka_2.13-").removesuffix(".jar") for j in jars]
                versions = [n for n in names if n[:1].isdigit() and "-" not in n]
                if versions:
                    return versions[0]
    return "unknown"


def dir_size(path: Path) -> int:
    """Bytes of every file under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Sampler(threading.Thread):
    """Samples the CPU time of watched processes (and of the machine, as `@busy` and `@total`)
    every `interval` seconds, on its own thread."""

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


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, OS and the versions of what is measured."""
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
    kafka = broker_version()

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
