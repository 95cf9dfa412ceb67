"""Constants, sizes and the log line of the stream benchmark."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The installed `attribution` command of this interpreter's environment.
ATTRIBUTION = str(Path(sys.executable).with_name("attribution"))
BROKER = os.environ.get("KAFKA_BROKER", "127.0.0.1:9092").split("://")[-1]
PARTITIONS = 4
OUTCOME_TOPICS = ("attributed-conversions", "unattributed-conversions")
#: The advertiser of the sentinel touches: none of the traffic's advertisers.
SENTINEL_ADVERTISER = 999_999_999
#: Users of the sentinel touches are named `bench-sentinel-<n>`.
SENTINEL_PREFIX = "bench-sentinel-"


@dataclass(frozen=True)
class Size:
    """How much a run does. Times in seconds."""

    events: int
    users: int
    latency_s: float
    warmup_s: float
    recovery_users: int
    timeout_s: float


FULL = Size(events=1_000_000, users=100_000, latency_s=60, warmup_s=10, recovery_users=1_000_000, timeout_s=1800)
SMOKE = Size(events=3_000, users=300, latency_s=3, warmup_s=1, recovery_users=5_000, timeout_s=60)


def log(msg: str) -> None:
    """A progress line on stderr (stdout carries the results)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
