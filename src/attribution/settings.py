"""Settings, read once from the environment into a frozen object. Nothing is read at import.

Every setting has an environment variable (and most a CLI flag that overrides it):

| variable | default | meaning |
|---|---|---|
| KAFKA_BROKER | kafka://127.0.0.1:9092 | bootstrap broker URL(s), comma-separated |
| ATTRIBUTION_TOPIC_PREFIX | "" | prefix for every topic name |
| ATTRIBUTION_PARTITIONS | 4 | partitions of the input topics (co-partitioned) |
| ATTRIBUTION_STORE | memory:// | table store: memory:// or rocksdb:// |
| ATTRIBUTION_DATA_DIR | ./.attribution-data | where RocksDB tables and Faust data live |
| ATTRIBUTION_APP_ID | attribution | Faust app id (consumer group, changelog topic names) |
| ATTRIBUTION_WEB_HOST | 127.0.0.1 | web server bind address |
| ATTRIBUTION_WEB_PORT | 6066 | web server port |
| ATTRIBUTION_DEDUP_RETENTION_MS | 604800000 | how long conversion ids are remembered (7 days) |
| ATTRIBUTION_TOUCHES_PER_LINE_ITEM | 2 | touches kept per (line item, kind) per user |
| ATTRIBUTION_MAX_TOUCHES | 64 | last-resort cap on touches per user, advertiser and kind |
| ATTRIBUTION_REPEAT_RETENTION_MS | 7776000000 | how long a repeat-rule counter counts (90 days): a "one per user" pixel counts again after it |
| ATTRIBUTION_HOLD_MS | 3000 | how long a conversion waits for a touch stream that is caught up but has not passed it |
| ATTRIBUTION_TOUCHES_AHEAD_BYTES | 300000 | per user, the encoded size (estimate) of touches read ahead of the conversions still to be judged; beyond it the oldest of them are dropped |
| ATTRIBUTION_MAX_HELD | 1000 | held conversions per partition above which fetching its conversions pauses (back-pressure) |
| ATTRIBUTION_GROUP_INSTANCE_ID | "" | static group membership id of this worker (unique per worker); empty: dynamic membership |
| ATTRIBUTION_SESSION_TIMEOUT_S | 15 | consumer group session timeout: how soon a dead worker's partitions move |
| ATTRIBUTION_API_TOKEN | "" | bearer token the HTTP API requires for writes (at least 32 characters); empty: writes are refused |
| ATTRIBUTION_WEB_ALLOWED_HOSTS | "" | host names the web server answers (Host header), comma-separated; empty: localhost, 127.0.0.1, ::1 and ATTRIBUTION_WEB_HOST; `*`: any |
| ATTRIBUTION_PIXEL_HOST | px.example.com | host of the pixel server, used in exported pixel tags |
| ATTRIBUTION_STATS_MAX_RECORDS | 200000 | outcomes kept in memory for /stats and pixel health (the last 24 h) |
| ATTRIBUTION_EVENT_LOOP | uvloop | the worker's event loop: uvloop (faster, BENCHMARKS.md) or asyncio |
| ATTRIBUTION_TOKEN_SECRET | "" | secret (at least 32 bytes) that signs auction tokens of server-side conversions; empty: tokens are refused |
| ATTRIBUTION_TOKEN_KEY_ID | k1 | key id of ATTRIBUTION_TOKEN_SECRET: tokens are minted under it |
| ATTRIBUTION_REPLAY_MEMORY_MB | 128 | `replay`: users' decoded states kept in memory (estimated MiB; the process peaks at about 1.8 times it); past it, replay goes on one shard of users at a time and the other users' states wait in a temporary file (in TMPDIR) |
| ATTRIBUTION_TOKEN_KEYS | "" | more keys tokens are accepted under during a rotation, `kid:secret,kid:secret` (each secret at least 32 bytes) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from attribution.domain import Limits
from attribution.domain.config import DAY_MS
from attribution.errors import UsageError
from attribution.tokens import KEY_ID, MIN_SECRET_BYTES

EVENT_LOOPS = ("uvloop", "asyncio")
#: The shortest API token accepted: a guessable token is worse than none (writes stay off).
MIN_TOKEN_CHARS = 32
#: Host names the web server always answers, whatever ATTRIBUTION_WEB_ALLOWED_HOSTS says (unless `*`).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: int = 4
    store: str = "memory://"
    data_dir: str = "./.attribution-data"
    app_id: str = "attribution"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    dedup_retention_ms: int = 7 * DAY_MS
    touches_per_line_item: int = 2
    max_touches: int = 64
    repeat_retention_ms: int = 90 * DAY_MS
    hold_ms: int = 3000
    max_held: int = 1000
    touches_ahead_bytes: int = 300_000
    group_instance_id: str = ""
    session_timeout_s: int = 15
    api_token: str = field(default="", repr=False)  # a secret: kept out of logs and reprs
    pixel_host: str = "px.example.com"
    stats_max_records: int = 200_000
    event_loop: str = "uvloop"
    web_allowed_hosts: str = ""
    token_secret: str = field(default="", repr=False)  # a secret: kept out of logs and reprs
    token_key_id: str = "k1"
    token_keys: str = field(default="", repr=False)  # secrets too
    replay_memory_mb: int = 128
    state_cache: int = 100_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment (or `env`) once; unusable values raise UsageError naming the variable."""
        env = os.environ if env is None else env
        base = cls()
        values: dict[str, object] = {}
        for name, var in _VARS.items():
            if var not in env or env[var] == "":
                continue
            raw = env[var]
            if isinstance(getattr(base, name), int):
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise UsageError(f"{var}={raw!r}: expected an integer") from None
            else:
                values[name] = raw
        settings = replace(base, **values)  # type: ignore[arg-type]
        if settings.event_loop not in EVENT_LOOPS:
            raise UsageError(
                f"ATTRIBUTION_EVENT_LOOP={settings.event_loop!r}: expected one of {', '.join(EVENT_LOOPS)}"
            )
        if settings.max_held < 1:
            raise UsageError(f"ATTRIBUTION_MAX_HELD={settings.max_held}: expected at least 1")
        if settings.state_cache < 0:
            raise UsageError(f"ATTRIBUTION_STATE_CACHE={settings.state_cache}: expected 0 or more")
        if settings.api_token and len(settings.api_token) < MIN_TOKEN_CHARS:
            raise UsageError(
                f"ATTRIBUTION_API_TOKEN: {len(settings.api_token)} characters, at least {MIN_TOKEN_CHARS} are required "
                "(e.g. `openssl rand -hex 16`); leave it empty to turn writes off"
            )
        check_token_keys(settings)
        return settings

    @property
    def token_key_map(self) -> dict[str, str]:
        """Every key auction tokens are accepted under, key id -> secret: ATTRIBUTION_TOKEN_KEYS,
        then ATTRIBUTION_TOKEN_SECRET under ATTRIBUTION_TOKEN_KEY_ID (it wins on a shared id)."""
        keys: dict[str, str] = {}
        for item in self.token_keys.split(","):
            kid, _, secret = item.strip().partition(":")
            if kid and secret:
                keys[kid] = secret
        if self.token_secret:
            keys[self.token_key_id] = self.token_secret
        return keys

    @property
    def allowed_hosts(self) -> frozenset[str] | None:
        """Host names (lower case, no port) the web server answers; None: any (`*`)."""
        names = [h.strip().lower().strip("[]") for h in self.web_allowed_hosts.split(",") if h.strip()]
        if "*" in names:
            return None
        web_host = self.web_host.strip().lower().strip("[]")
        wildcard = web_host in ("", "0.0.0.0", "::")
        return frozenset((*LOCAL_HOSTS, *names, *(() if wildcard else (web_host,))))

    @property
    def limits(self) -> Limits:
        return Limits(
            dedup_retention_ms=self.dedup_retention_ms,
            per_line_item=self.touches_per_line_item,
            max_touches=self.max_touches,
            repeat_retention_ms=self.repeat_retention_ms,
            ahead_bytes=self.touches_ahead_bytes,
        )

    @property
    def broker_url(self) -> str:
        """The broker as Faust wants it (kafka://host:port), whatever form was given."""
        return ";".join(b if "://" in b else f"kafka://{b}" for b in self.broker.replace(",", ";").split(";"))

    @property
    def bootstrap_servers(self) -> str:
        """The broker as aiokafka wants it (host:port,host:port)."""
        return ",".join(b.split("://", 1)[-1] for b in self.broker.replace(";", ",").split(","))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


_VARS = {
    "broker": "KAFKA_BROKER",
    "topic_prefix": "ATTRIBUTION_TOPIC_PREFIX",
    "partitions": "ATTRIBUTION_PARTITIONS",
    "store": "ATTRIBUTION_STORE",
    "data_dir": "ATTRIBUTION_DATA_DIR",
    "app_id": "ATTRIBUTION_APP_ID",
    "web_host": "ATTRIBUTION_WEB_HOST",
    "web_port": "ATTRIBUTION_WEB_PORT",
    "dedup_retention_ms": "ATTRIBUTION_DEDUP_RETENTION_MS",
    "touches_per_line_item": "ATTRIBUTION_TOUCHES_PER_LINE_ITEM",
    "max_touches": "ATTRIBUTION_MAX_TOUCHES",
    "repeat_retention_ms": "ATTRIBUTION_REPEAT_RETENTION_MS",
    "hold_ms": "ATTRIBUTION_HOLD_MS",
    "max_held": "ATTRIBUTION_MAX_HELD",
    "touches_ahead_bytes": "ATTRIBUTION_TOUCHES_AHEAD_BYTES",
    "group_instance_id": "ATTRIBUTION_GROUP_INSTANCE_ID",
    "session_timeout_s": "ATTRIBUTION_SESSION_TIMEOUT_S",
    "api_token": "ATTRIBUTION_API_TOKEN",
    "pixel_host": "ATTRIBUTION_PIXEL_HOST",
    "stats_max_records": "ATTRIBUTION_STATS_MAX_RECORDS",
    "event_loop": "ATTRIBUTION_EVENT_LOOP",
    "web_allowed_hosts": "ATTRIBUTION_WEB_ALLOWED_HOSTS",
    "token_secret": "ATTRIBUTION_TOKEN_SECRET",
    "token_key_id": "ATTRIBUTION_TOKEN_KEY_ID",
    "token_keys": "ATTRIBUTION_TOKEN_KEYS",
    "replay_memory_mb": "ATTRIBUTION_REPLAY_MEMORY_MB",
    "state_cache": "ATTRIBUTION_STATE_CACHE",
}


def check_token_keys(settings: Settings) -> None:
    """Refuse unusable token keys, naming the variable and the rule, never a secret."""
    if not KEY_ID.fullmatch(settings.token_key_id):
        raise UsageError(
            f"ATTRIBUTION_TOKEN_KEY_ID={settings.token_key_id!r}: 1 to 16 characters of A-Z, a-z, 0-9, _ and -"
        )
    if settings.token_secret and len(settings.token_secret.encode()) < MIN_SECRET_BYTES:
        raise UsageError(
            f"ATTRIBUTION_TOKEN_SECRET: shorter than {MIN_SECRET_BYTES} bytes "
            "(e.g. `openssl rand -hex 32`); leave it empty to refuse tokens"
        )
    for n, item in enumerate(i.strip() for i in settings.token_keys.split(",")):
        if not item:
            continue
        kid, colon, secret = item.partition(":")
        if not colon or not KEY_ID.fullmatch(kid):
            raise UsageError(
                f"ATTRIBUTION_TOKEN_KEYS: entry {n + 1} is not `kid:secret` with a key id of 1 to 16 "
                "characters of A-Z, a-z, 0-9, _ and -"
            )
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise UsageError(
                f"ATTRIBUTION_TOKEN_KEYS: the secret of key {kid!r} is shorter than {MIN_SECRET_BYTES} bytes"
            )
