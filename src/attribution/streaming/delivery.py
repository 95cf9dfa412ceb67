"""A cheaper hand-off of each fetched record from Faust's consumer to its topic's queue.

faust-streaming 0.15.3's `Consumer._drain_messages` delivers every record with
`await self.wait_first(callback(record), self.suspend_flow.wait())`, and mode's `wait_first` makes
four tasks (the callback, the flow event, the service's stopped and crashed events), waits with
`asyncio.wait` and cancels three of them: per record, in the stream path and in changelog recovery
alike. Yet the callback (`Conductor.on_message`: decode, put on the topic's queue) almost always
finishes without suspending.

`install` gives the app's consumer a `wait_first` with a fast path for that call: when none of the
three events is set, the callback is run one step inline; if it finishes there it has won the race,
exactly as it would have in `wait_first`, which only returns once the first awaitable is done. If
it suspends (a full queue, a full producer buffer, the rebalance lock), it is resumed under the
original `wait_first`, which then races it against the events as before. Exceptions propagate as
in `wait_first`. Measured effect: BENCHMARKS.md ("Optimizations").

The patch sets an attribute on the consumer instance; `install` returns False and changes nothing
if the pinned versions' internals it relies on are not there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from mode.services import WaitResults


class _Reyield:
    """Yield, to the task that awaits this, what the inner coroutine yielded to its own driver."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, None]:
        yield self.value


async def resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Drive `coro`, which has already run until it yielded `yielded`, to its end.

    What it yields (a future it awaits, or None for a bare yield) is passed up to the task that
    runs `resume`, which wakes it as it would have woken `coro`; an exception thrown in (such as a
    cancellation) is thrown into `coro`.
    """
    while True:
        try:
            await _Reyield(yielded)
        except BaseException as exc:  # cancellation or an error thrown in by the task: pass it on
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


def fast_wait_first(
    original: Callable[..., Awaitable[WaitResults]], *events: Any
) -> Callable[..., Coroutine[Any, Any, WaitResults]]:
    """`original` (a bound `Service.wait_first`) with an inline fast path while no event is set."""

    async def wait_first(*coros: Any, timeout: Any = None) -> WaitResults:
        first = coros[0] if coros else None
        if (
            len(coros) != 2
            or timeout is not None
            or not isinstance(first, Coroutine)
            or any(event.is_set() for event in events)
        ):
            return await original(*coros, timeout=timeout)
        try:
            yielded = first.send(None)
        except StopIteration as stop:
            _close(coros[1])
            return WaitResults([first], [stop.value], False)
        except BaseException:
            _close(coros[1])
            raise
        return await original(resume(first, yielded), coros[1])

    return wait_first


def _close(awaitable: Any) -> None:
    if isinstance(awaitable, Coroutine):
        awaitable.close()  # never started: closing it spares a "never awaited" warning


def install(app: Any) -> bool:
    """Give the app's started consumer the fast `wait_first`; idempotent. False if not possible."""
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return False
    if getattr(consumer.wait_first, "_attribution_fast", False):
        return True
    events = [getattr(consumer, name, None) for name in ("suspend_flow", "_stopped", "_crashed")]
    if not all(callable(getattr(event, "is_set", None)) for event in events):
        return False
    patched = fast_wait_first(consumer.wait_first, *events)
    patched._attribution_fast = True  # type: ignore[attr-defined]
    consumer.wait_first = patched
    return True
