"""The installed programs, run as processes: the `attribution` console script, the replay benchmark
and, where it is installed, `docker compose` on the compose file. (The unit tier imports and calls
the same code; this tier checks what only a real process shows: the entry point, exit codes,
stderr.) None of these needs the broker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unit.test_replay import SCENARIO_ATTRIBUTED, read_outputs, scenario_lines

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.jsonl"
    path.write_bytes(b"\n".join(scenario_lines()) + b"\n")
    return path


def test_the_installed_attribution_command_replays_a_file(scenario_file: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("attribution")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIBUTION_")}

    proc = subprocess.run(
        [str(exe), "replay", str(scenario_file), "--out", str(tmp_path / "out")],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr.decode()
    assert read_outputs(tmp_path / "out")["attributed-conversions.jsonl"] == SCENARIO_ATTRIBUTED
    assert b"replayed 14 events" in proc.stderr
    assert proc.stdout == b""


def test_the_installed_command_exits_2_for_a_missing_file(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("attribution")

    proc = subprocess.run(
        [str(exe), "replay", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 2
    assert b"cannot read" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_the_replay_benchmark_runs_end_to_end_at_its_smoke_size(tmp_path: Path) -> None:
    """The replay benchmark runs end to end on a tiny input and attributes both ways."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.replay_bench", "--smoke", "--json", "--file", str(tmp_path / "t.jsonl")],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )
    report = json.loads(proc.stdout)
    assert report["replay"]["events"] == 2_000
    assert report["replay"]["events_per_s"] > 0
    assert report["outputs"]["post_click"] > 0
    assert report["outputs"]["post_view"] > 0
    assert report["outputs"]["dead_letters"] == 0
    state = report["state"]
    assert state["active_users"] > 0
    assert 0 < state["state_bytes_p50"] <= state["state_bytes_p99"] <= state["state_bytes_max"]
    assert 0 < state["state_bytes_mean"] <= state["state_bytes_max"]
    assert not {k for k in state if k.startswith(("encoded_bytes", "state_codec_bytes"))}
    assert set(report["phases"]) == {"parse", "parse+validate", "parse+validate+decode", "sort", "step", "encode"}
    markdown = subprocess.run(
        [sys.executable, "-m", "bench.replay_bench", "--smoke", "--file", str(tmp_path / "t.jsonl")],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
        timeout=120,
    ).stdout
    assert "events/s" in markdown
    assert "post_click" in markdown
    assert "state bytes per active user (project state codec)" in markdown


def test_docker_compose_accepts_the_file_when_it_is_installed() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "--profile", "simulate", "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
