"""Config use cases, shared by every adapter: put, delete and list pixels and line items.

Each check lives here once, so the CLI (`attribution pixels|line-items ...`) and the HTTP API
(`/pixels`, `/line-items`) accept and refuse the same records with the same messages:

1. the contract (`contract.decode_value`): a record breaking a rule is `Invalid` with the
   contract's code (`invalid_pixel`, `invalid_line_item`) and the field;
2. against the current config (`Conflict`): a line item naming a pixel that does not exist
   (`unknown_pixel`) or one of another advertiser (`advertiser_mismatch`); a pixel moved to another
   advertiser while line items of its old one carry it (`advertiser_mismatch`); a pixel deleted while
   line items carry it (`pixel_in_use`); a create of an id that exists (`already_exists`);
3. a missing id is `NotFound`.

A write of several records is all or nothing: every record is checked (each against the config as
the records before it in the write leave it) before anything is published (`Refused` lists them).

The use cases talk to a `ConfigStore`: read the current config, publish records. The worker's store
publishes and waits until its own config cache has applied the record (`CacheStore`), so a read
that follows sees the write; the CLI's reads the topics to their end (`kafka.client.KafkaConfigStore`);
`MemoryStore` keeps the records in memory, for tests. Writes through one `ConfigService` are
serialized, so their checks see each other.

`ConfigFold` is the one fold from config writes to the domain `Config`, used by the config cache,
replay and the stores.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from attribution.contract import config_id, decode_config, decode_value
from attribution.domain import Config, LineItem, Pixel
from attribution.errors import (
    ConfigError,
    Conflict,
    Invalid,
    NotApplied,
    NotFound,
    RecordError,
    Refused,
    Unavailable,
)

__all__ = [
    "LINE_ITEMS",
    "PIXELS",
    "CacheStore",
    "ConfigFold",
    "ConfigService",
    "ConfigStore",
    "Deleted",
    "Kind",
    "MemoryStore",
    "config_id",
    "fold",
    "kind_of",
]

log = logging.getLogger(__name__)

ConfigObject = Pixel | LineItem


@dataclass(frozen=True)
class Kind:
    """What differs between pixels and line items."""

    topic: str  # default topic name
    what: str  # "pixel" / "line item"
    key: str  # list key ("pixels", "line_items")
    path: str  # URL path of the collection
    invalid: str  # the contract's error code for this record type
    items: Callable[[Config], Mapping[int, Any]]


PIXELS = Kind("pixels", "pixel", "pixels", "/pixels", "invalid_pixel", lambda c: c.pixels)
LINE_ITEMS = Kind("line-items", "line item", "line_items", "/line-items", "invalid_line_item", lambda c: c.line_items)


def kind_of(topic: str) -> Kind:
    """The kind of a config topic (default name)."""
    return PIXELS if topic == "pixels" else LINE_ITEMS


# --- the fold: config writes -> Config --------------------------------------------------------------


class ConfigFold:
    """The pixels and line items after a sequence of writes; the last write per id wins and a
    delete removes it. `config` is a snapshot, rebuilt only after a change (changes are rare)."""

    def __init__(self) -> None:
        self.pixels: dict[int, Pixel] = {}
        self.line_items: dict[int, LineItem] = {}
        self._config: Config | None = Config()

    def apply(self, topic: str, ident: int, obj: ConfigObject | None) -> ConfigObject | None:
        """Apply one write (default topic name; None deletes); returns the version it replaced."""
        target: dict[int, Any] = self.pixels if topic == "pixels" else self.line_items
        previous: ConfigObject | None = target.pop(ident, None) if obj is None else target.get(ident)
        if obj is not None:
            target[ident] = obj
        self._config = None
        return previous

    def apply_record(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        """Apply one record of a compacted config topic (default name) if it is a valid write
        (`contract.decode_config`); False (and nothing changed) otherwise."""
        try:
            ident, obj = decode_config(topic, key, value)
        except RecordError:
            return False
        self.apply(topic, ident, obj)
        return True

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = Config(dict(self.pixels), dict(self.line_items))
        return self._config


def fold(records: Iterable[tuple[str, bytes | None, bytes | None]]) -> Config:
    """The config that records of the compacted topics ((default topic, key, value), in topic
    order) describe: each valid record is a write (`contract.decode_config`), others are skipped."""
    folded = ConfigFold()
    for topic, key, value in records:
        folded.apply_record(topic, key, value)
    return folded.config


def record(obj: ConfigObject) -> dict[str, Any]:
    """A stored pixel or line item as JSON: every field, defaults filled in."""
    rec: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return rec


# --- the store -------------------------------------------------------------------------------------


class ConfigStore(Protocol):
    async def current(self) -> Config:
        """The current config (`Unavailable` if it cannot be read)."""
        ...

    async def publish(self, kind: Kind, records: Sequence[tuple[int, bytes | None]]) -> Config:
        """Publish (id, value or None for a delete) records of one kind and return the config once
        they apply (`Unavailable` if the write was not taken, `NotApplied` if not read back)."""
        ...


class MemoryStore:
    """A store in memory: what the topics would hold, folded (for tests and tools)."""

    def __init__(self, config: Config | None = None) -> None:
        self.folded = ConfigFold()
        for p in (config or Config()).pixels.values():
            self.folded.apply("pixels", p.id, p)
        for li in (config or Config()).line_items.values():
            self.folded.apply("line-items", li.id, li)
        self.published: list[tuple[str, int, bytes | None]] = []

    async def current(self) -> Config:
        return self.folded.config

    async def publish(self, kind: Kind, records: Sequence[tuple[int, bytes | None]]) -> Config:
        for ident, value in records:
            self.published.append((kind.topic, ident, value))
            _, obj = decode_config(kind.topic, str(ident).encode(), value)
            self.folded.apply(kind.topic, ident, obj)
        return self.folded.config


class AppliedView(Protocol):
    """What `CacheStore` needs of a worker's config cache."""

    @property
    def ready(self) -> asyncio.Event: ...

    @property
    def config(self) -> Config: ...

    async def wait_applied(self, topic: str, partition: int, offset: int, timeout: float) -> bool: ...


#: publish(actual topic, key, value or None) -> (partition, offset) once the broker acknowledged it
Publish = Callable[[str, bytes, bytes | None], Awaitable[tuple[int, int]]]


class CacheStore:
    """The worker's store: reads its config cache, publishes with the worker's producer and waits
    until the cache has applied each record, so a read that follows on this worker sees it."""

    def __init__(self, cache: AppliedView, publish: Publish, topic: Callable[[str], str], timeout: float) -> None:
        self.cache = cache
        self._publish = publish
        self._topic = topic
        self.timeout = timeout

    async def current(self) -> Config:
        """The full config once the cache has caught up with the topics (a worker that has just
        started answers from the full config, never a half-loaded one)."""
        if not self.cache.ready.is_set():
            try:
                await asyncio.wait_for(self.cache.ready.wait(), self.timeout)
            except TimeoutError:
                raise Unavailable("the config is still loading from the topics: retry shortly") from None
        return self.cache.config

    async def publish(self, kind: Kind, records: Sequence[tuple[int, bytes | None]]) -> Config:
        topic = self._topic(kind.topic)
        for ident, value in records:
            try:
                partition, offset = await self._publish(topic, str(ident).encode(), value)
            except Exception as exc:  # whatever the producer raises: the write was not taken
                log.warning("publishing %s %d failed: %s", kind.what, ident, exc)
                raise Unavailable(f"the broker did not take the write: {exc}") from None
            if not await self.cache.wait_applied(topic, partition, offset, self.timeout):
                raise NotApplied(
                    f"{kind.what} {ident} was published ({topic}, partition {partition}, offset {offset}) but not "
                    f"read back within {self.timeout:g} s; it applies as soon as this worker catches up"
                )
        return self.cache.config


# --- the use cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deleted:
    """A delete that was published: the line items that still carry the deleted pixel (only with
    `force`), and the pixels a deleted line item leaves paused."""

    carriers: list[int]
    paused: list[int]
    config: Config


def decode(kind: Kind, value: Any) -> ConfigObject:
    """A record checked against the contract, or `Invalid` naming the field and the rule."""
    try:
        obj = decode_value(kind.topic, value)
    except RecordError as exc:
        code = exc.code if exc.code != "not_an_object" else kind.invalid
        raise Invalid(exc.message, exc.field, code) from None
    assert isinstance(obj, (Pixel, LineItem))
    return obj


def check_references(kind: Kind, obj: ConfigObject, config: Config) -> None:
    """What the contract cannot see, since it needs the other records: a line item's pixels exist
    and belong to its advertiser; a pixel's carriers belong to its advertiser."""
    if kind is LINE_ITEMS:
        assert isinstance(obj, LineItem)
        unknown = [(i, link.id) for i, link in enumerate(obj.pixels) if link.id not in config.pixels]
        if unknown:
            at, pid = unknown[0]
            raise Conflict(
                f"pixels.{at}.id: pixel {pid} does not exist: create it first",
                f"pixels.{at}.id",
                "unknown_pixel",
                pixels=sorted({p for _, p in unknown}),
            )
        foreign = sorted({link.id for link in obj.pixels if config.pixels[link.id].advertiser_id != obj.advertiser_id})
        if foreign:
            raise Conflict(
                f"pixels: pixel {foreign[0]} belongs to advertiser {config.pixels[foreign[0]].advertiser_id}, "
                f"not to the line item's advertiser {obj.advertiser_id}",
                "pixels",
                "advertiser_mismatch",
                pixels=foreign,
            )
    else:
        carriers = [li for li in config.carriers(obj.id) if config.line_items[li].advertiser_id != obj.advertiser_id]
        if carriers:
            raise Conflict(
                f"advertiser_id: line item{'s' if len(carriers) > 1 else ''} {', '.join(map(str, carriers))} of "
                f"another advertiser carry pixel {obj.id}: remove it from them first",
                "advertiser_id",
                "advertiser_mismatch",
                line_items=carriers,
            )


def label(kind: Kind, value: Any, position: int) -> str:
    """How a refusal names a record: `<what> <id>`, or `<what> #<position>` without a usable id."""
    ident = value.get("id") if isinstance(value, dict) else None
    return (
        f"{kind.what} {ident}" if isinstance(ident, int) and not isinstance(ident, bool) else f"{kind.what} #{position}"
    )


def with_config(config: Config, kind: Kind, ident: int, obj: ConfigObject | None) -> Config:
    """`config` after one write."""
    pixels, line_items = dict(config.pixels), dict(config.line_items)
    target: dict[int, Any] = pixels if kind is PIXELS else line_items
    if obj is None:
        target.pop(ident, None)
    else:
        target[ident] = obj
    return Config(pixels, line_items)


class ConfigService:
    """The config use cases over one store; writes are serialized."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self._writes = asyncio.Lock()

    async def config(self) -> Config:
        return await self.store.current()

    async def list_items(self, kind: Kind, advertiser: int | None = None) -> tuple[list[Any], Config]:
        """The records of one kind by id (only `advertiser`'s if given), and the config read."""
        config = await self.store.current()
        items = [
            v for _, v in sorted(kind.items(config).items()) if advertiser is None or v.advertiser_id == advertiser
        ]
        return items, config

    async def get(self, kind: Kind, ident: int) -> tuple[Any, Config]:
        """One record (`NotFound` if there is none), and the config read."""
        config = await self.store.current()
        return existing(kind, config, ident), config

    def check(self, kind: Kind, values: Sequence[Any]) -> list[ConfigObject]:
        """Every record checked against the contract; `Refused` listing each refused one."""
        decoded: list[ConfigObject] = []
        errors: list[tuple[str, ConfigError]] = []
        for n, value in enumerate(values, 1):
            try:
                decoded.append(decode(kind, value))
            except Invalid as exc:
                errors.append((label(kind, value, n), exc))
        refuse(errors, len(values))
        return decoded

    async def put(
        self,
        kind: Kind,
        values: Sequence[Any],
        mode: Literal["upsert", "create", "replace"] = "upsert",
        ident: int | None = None,
    ) -> tuple[list[Any], Config]:
        """Create or replace records (parsed JSON values), all or none; the stored versions and the
        config after. `create` refuses an existing id; `replace` needs `ident` to exist and to be
        the record's id. The values are published as given (the contract fills defaults on read)."""
        decoded = self.check(kind, values)
        if mode == "replace":
            for obj in decoded:
                if obj.id != ident:
                    raise Invalid(f"id: {obj.id} does not match the id in the path ({ident})", "id", kind.invalid)
        async with self._writes:
            config = await self.store.current()
            errors: list[tuple[str, ConfigError]] = []
            after = config
            for n, (obj, value) in enumerate(zip(decoded, values, strict=True), 1):
                try:
                    if mode == "create" and obj.id in kind.items(after):
                        raise Conflict(
                            f"{kind.what} {obj.id} already exists: PUT {kind.path}/{obj.id} replaces it",
                            code="already_exists",
                        )
                    if mode == "replace":
                        existing(kind, after, obj.id)
                    check_references(kind, obj, after)
                except ConfigError as exc:
                    errors.append((label(kind, value, n), exc))
                    continue
                after = with_config(after, kind, obj.id, obj)
            refuse(errors, len(values))
            config = await self.store.publish(
                kind, [(o.id, orjson.dumps(v)) for o, v in zip(decoded, values, strict=True)]
            )
        return [kind.items(config).get(o.id, o) for o in decoded], config

    async def delete(self, kind: Kind, ident: int, force: bool = False) -> Deleted:
        """Delete one record. A pixel still carried by line items is refused (`pixel_in_use`)
        unless `force`; a deleted line item names the pixels it leaves paused."""
        async with self._writes:
            config = await self.store.current()
            existing(kind, config, ident)
            carriers = config.carriers(ident) if kind is PIXELS else []
            if carriers and not force:
                raise Conflict(
                    f"pixel {ident} is still carried by line item{'s' if len(carriers) > 1 else ''} "
                    f"{', '.join(map(str, carriers))}: remove it from them first",
                    code="pixel_in_use",
                    line_items=carriers,
                )
            after = await self.store.publish(kind, [(ident, None)])
        paused: list[int] = []
        if kind is LINE_ITEMS:
            gone = with_config(config, kind, ident, None)
            paused = [
                pid
                for pid in dict.fromkeys(link.id for link in config.line_items[ident].pixels)
                if config.status(pid) == "active" and gone.status(pid) == "paused"
            ]
        return Deleted(carriers, paused, after)


def refuse(errors: list[tuple[str, ConfigError]], count: int) -> None:
    """Raise the refusal of a write of `count` records: its error for one, `Refused` for several."""
    if errors:
        raise errors[0][1] if count == 1 else Refused(errors)


def existing(kind: Kind, config: Config, ident: int) -> Any:
    obj = kind.items(config).get(ident)
    if obj is None:
        raise NotFound(f"{kind.what} {ident} not found")
    return obj
