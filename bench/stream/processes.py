"""Contender processes: launched with their output in a log file, stopped with SIGTERM, and
optionally profiled by py-spy (a raw, collapsed-stack file per contender)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.stream.common import ROOT


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a worker's web server)."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(cmd: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `cmd` in the repository, stdout and stderr appended to `log_path`."""
    out = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(list(cmd), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; nothing if it has exited."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def tail(path: Path, n: int = 3000) -> str:
    """The last `n` characters of a log ('' if unreadable)."""
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def start_profile(profile_dir: Path | None, name: str, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy recording `pid` into `<profile_dir>/<name>.txt`; None without a profile directory."""
    if profile_dir is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = profile_dir / f"{name}.txt"
    cmd = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(profiler: subprocess.Popen[bytes] | None) -> None:
    """Stop a recording (SIGINT makes py-spy write its file)."""
    if profiler is not None and profiler.poll() is None:
        profiler.send_signal(signal.SIGINT)
        try:
            profiler.wait(30)
        except subprocess.TimeoutExpired:
            profiler.kill()
