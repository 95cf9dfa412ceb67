"""The Docker deployment files (Dockerfile, .dockerignore, docker-compose.yml) stay valid and in
step with the code: the console script, the CLI's commands and options, and the settings' env vars.

Docker does not run on the build machines, so the files are checked by parsing them. Where the
`docker compose` plugin is installed, `docker compose config -q` validates the compose file too
(in the integration tier: `test_installed_commands`).
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from attribution.cli import main as cli
from attribution.settings import _VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

KAFKA_IMAGE = "apache/kafka:4.4.0"
APP_SERVICES = ("topics", "worker", "simulator")
KNOWN_ENV = {*_VARS.values(), "KAFKA_BROKER"}


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text("utf-8"))
    return data


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either compose form (mapping or KEY=VALUE list), as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    # Interpolated as compose does with the variable unset: `${NAME:-default}` is the default.
    return {str(k): "" if v is None else _UNSET.sub(lambda m: m[2] or "", str(v)) for k, v in env.items()}


_UNSET = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text("utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def _args_of(instruction: str) -> list[Any]:
    """The arguments of every occurrence of an instruction (JSON-array form parsed)."""
    found = []
    for word, rest in _dockerfile():
        if word == instruction:
            found.append(json.loads(rest) if rest.startswith("[") else rest)
    return found


def _pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _ignored(path: str) -> bool:
    """Docker's .dockerignore rule for a top-level path: the last matching pattern wins."""
    ignored = False
    for raw in DOCKERIGNORE.read_text("utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if fnmatch.fnmatchcase(path, pattern):
            ignored = not negate
    return ignored


def _resolve(args: list[str]) -> None:
    """Parse a command line of the `attribution` CLI without running it; UsageError if unusable."""
    command: click.Command = cli
    words = list(args)
    while isinstance(command, click.Group):
        assert words, f"{command.name}: a subcommand is missing"
        sub = command.get_command(click.Context(command), words[0])
        assert sub is not None, f"{command.name}: no subcommand {words[0]!r}"
        command, words = sub, words[1:]
    command.make_context(command.name, words)


# --- docker-compose.yml -----------------------------------------------------------------------


def test_the_compose_file_has_the_broker_the_topics_job_the_worker_and_the_simulator() -> None:
    assert set(_compose()["services"]) == {"kafka", *APP_SERVICES}


def test_the_broker_is_the_pinned_apache_kafka_image() -> None:
    assert _service("kafka")["image"] == KAFKA_IMAGE


def test_the_broker_is_a_single_kraft_node_advertised_as_kafka_9092() -> None:
    env = _environment(_service("kafka"))
    assert env["KAFKA_NODE_ID"] == "1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    listeners = env["KAFKA_LISTENERS"].split(",")
    assert "PLAINTEXT://:9092" in listeners
    assert "CONTROLLER://:9093" in listeners
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols["CONTROLLER"] == "PLAINTEXT"
    assert protocols["PLAINTEXT"] == "PLAINTEXT"


def test_the_single_broker_needs_no_replicas_for_its_internal_topics_and_no_rebalance_delay() -> None:
    env = _environment(_service("kafka"))
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    # Kafka 4.x: share-group state would wait forever for 3 replicas on one node.
    assert env["KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"] == "1"


def test_the_broker_image_runs_the_kafka_version_the_local_broker_runs_by_default() -> None:
    script = (ROOT / "scripts" / "kafka.sh").read_text("utf-8")
    default = re.search(r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([0-9.]+)\}"', script)
    assert default is not None
    assert _service("kafka")["image"] == f"apache/kafka:{default[1]}"
    assert default[1].startswith("4.")


def test_the_broker_has_a_healthcheck_that_asks_kafka_itself() -> None:
    check = _service("kafka")["healthcheck"]
    test = check["test"]
    text = test if isinstance(test, str) else " ".join(test)
    assert "kafka-broker-api-versions.sh" in text or "kafka-topics.sh" in text
    assert "localhost:9092" in text
    assert check.get("retries", 0) >= 1


def test_topics_are_created_once_the_broker_is_healthy_by_a_job_that_is_not_restarted() -> None:
    topics = _service("topics")
    assert _command(topics) == ["topics", "create"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics["restart"] == "no"


@pytest.mark.parametrize("name", ["worker", "simulator"])
def test_the_worker_and_the_simulator_start_only_after_the_topics_job_succeeded(name: str) -> None:
    assert _service(name)["depends_on"]["topics"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_app_services_are_built_from_this_repository(name: str) -> None:
    build = _service(name)["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (COMPOSE_FILE.parent / context / "Dockerfile").resolve() == DOCKERFILE


def test_the_simulator_runs_only_in_the_simulate_profile() -> None:
    simulator = _service("simulator")
    assert simulator["profiles"] == ["simulate"]
    assert _command(simulator) == ["simulate", "--events", "100000", "--rate", "2000"]
    for name in ("kafka", "topics", "worker"):
        assert "profiles" not in _service(name), f"{name} would not start by default"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_environment_variable_is_one_the_settings_read(name: str) -> None:
    unknown = set(_environment(_service(name))) - KNOWN_ENV
    assert not unknown, f"{name}: {sorted(unknown)} are not read by attribution.settings"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_service_reaches_the_broker_by_its_advertised_listener(name: str) -> None:
    settings = Settings.from_env(_environment(_service(name)))
    advertised = _environment(_service("kafka"))["KAFKA_ADVERTISED_LISTENERS"].split("://", 1)[1]
    assert settings.bootstrap_servers == advertised


def test_the_worker_keeps_rocksdb_tables_on_a_volume_and_serves_its_web_port() -> None:
    worker = _service("worker")
    settings = Settings.from_env(_environment(worker))
    assert settings.store == "rocksdb://"
    assert settings.data_dir == "/data"
    assert settings.web_host == "0.0.0.0"
    targets = [v.split(":")[1] if isinstance(v, str) else v["target"] for v in worker["volumes"]]
    assert settings.data_dir in targets
    published = [str(p).split(":")[-1] if not isinstance(p, dict) else str(p["target"]) for p in worker["ports"]]
    assert str(settings.web_port) in published
    assert _command(worker) == ["worker", "-l", "info"]


def test_the_worker_publishes_its_web_port_on_the_hosts_loopback_interface_only() -> None:
    worker = _service("worker")
    for port in worker["ports"]:
        host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).rsplit(":", 2)[0]
        assert host_ip == "127.0.0.1", port


def test_named_volumes_used_by_services_are_declared() -> None:
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


@pytest.mark.parametrize("name", ["topics", "worker"])
def test_the_app_service_commands_are_valid_command_lines_of_the_cli(name: str) -> None:
    _resolve(_command(_service(name)))


def test_the_simulator_command_is_a_valid_command_line_of_the_cli() -> None:
    _resolve(_command(_service("simulator")))


# --- Dockerfile and .dockerignore -------------------------------------------------------------


def test_the_image_is_built_on_python_3_11_slim() -> None:
    bases = [args.split()[0] for args in _args_of("FROM")]
    assert bases, "no FROM"
    assert set(bases) == {"python:3.11-slim"}


def test_the_image_installs_the_package_with_pip() -> None:
    runs = " ".join(_args_of("RUN"))
    assert "pip install ." in runs


def test_the_entrypoint_is_the_console_script_declared_in_pyproject() -> None:
    scripts = _pyproject()["project"]["scripts"]
    (entrypoint,) = _args_of("ENTRYPOINT")
    assert isinstance(entrypoint, list), "ENTRYPOINT must be in exec (JSON array) form"
    assert entrypoint == ["attribution"]
    assert entrypoint[0] in scripts


def test_the_default_command_runs_a_worker_at_info_level() -> None:
    (cmd,) = _args_of("CMD")
    assert cmd == ["worker", "-l", "info"]
    _resolve(cmd)


def test_the_image_exposes_the_web_port() -> None:
    exposed = {port.split("/")[0] for args in _args_of("EXPOSE") for port in args.split()}
    assert str(Settings().web_port) in exposed


def test_the_image_runs_as_a_non_root_user() -> None:
    users = _args_of("USER")
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_the_build_context_holds_everything_the_wheel_is_built_from() -> None:
    pyproject = _pyproject()
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", pyproject["project"]["readme"], *wheel["packages"], *wheel["force-include"]}
    copied = [args.split()[:-1] for args in _args_of("COPY") if not args.startswith("--from")]
    sources = {src.rstrip("/") for group in copied for src in group}
    for path in sorted(needed):
        top = path.split("/")[0]
        assert (ROOT / path).exists(), path
        assert not _ignored(top), f"{top} is excluded by .dockerignore"
        assert path in sources or top in sources, f"{path} is not copied into the build stage"


def test_the_build_context_leaves_out_local_state_and_secrets_of_the_checkout() -> None:
    for path in (".git", ".venv", ".kafka", ".attribution-data", "tests", "bench"):
        assert _ignored(path), f"{path} would be sent to the Docker daemon"
