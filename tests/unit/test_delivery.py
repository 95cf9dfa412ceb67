"""The fast record hand-off (`streaming.delivery`): same outcomes as mode's `wait_first`, fewer tasks."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import faust
import pytest
from mode import Service
from mode.utils.locks import Event

from attribution.streaming.delivery import fast_wait_first, install, resume


class _Consumer(Service):
    """Stands in for Faust's consumer: a mode Service (real `wait_first`) with a flow event."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = Event()
        self.calls = 0

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        self.calls += 1
        return await super().wait_first(*coros, timeout=timeout)


def _patched(consumer: _Consumer) -> Any:
    return fast_wait_first(consumer.wait_first, consumer.suspend_flow, consumer._stopped, consumer._crashed)


async def test_a_callback_that_finishes_inline_wins_without_the_original_wait_first() -> None:
    consumer = _Consumer()
    delivered: list[int] = []

    async def callback(n: int) -> int:
        delivered.append(n)
        return n * 2

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unawaited flow-wait coroutine would warn
        result = await _patched(consumer)(callback(21), consumer.suspend_flow.wait())
    assert delivered == [21]
    assert result.results == [42]
    assert not result.stopped
    assert consumer.calls == 0


async def test_an_error_raised_inline_propagates_like_in_wait_first() -> None:
    consumer = _Consumer()

    async def callback() -> None:
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        await _patched(consumer)(callback(), consumer.suspend_flow.wait())


async def test_a_callback_that_suspends_is_finished_under_the_original_wait_first() -> None:
    consumer = _Consumer()
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def callback() -> str:
        steps.append("before")
        value = await gate
        steps.append(f"after {value}")
        await asyncio.sleep(0)  # a bare yield after the first suspension, too
        return value

    task = asyncio.ensure_future(_patched(consumer)(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    assert steps == ["before"]
    assert not task.done()
    gate.set_result("open")
    result = await asyncio.wait_for(task, 1)
    assert steps == ["before", "after open"]
    assert result.results == ["open"]
    assert consumer.calls == 1


async def test_while_the_flow_is_suspended_the_original_wait_first_decides() -> None:
    consumer = _Consumer()
    consumer.suspend_flow.set()
    ran: list[str] = []

    async def callback() -> None:
        await asyncio.sleep(10)
        ran.append("callback")

    flow_wait = consumer.suspend_flow.wait()
    result = await _patched(consumer)(callback(), flow_wait)
    assert consumer.calls == 1
    assert ran == []  # the flow event won; the callback was cancelled as mode does
    assert result.done == [flow_wait]
    assert result.results == [True]


async def test_cancelling_a_resumed_callback_cancels_the_inner_coroutine() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    cleaned: list[str] = []

    async def inner() -> None:
        try:
            await never
        finally:
            cleaned.append("finally")

    coro = inner()
    yielded = coro.send(None)
    task = asyncio.ensure_future(resume(coro, yielded))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]
    assert never.cancelled()


async def test_resume_returns_the_inner_result_and_passes_errors_thrown_into_it() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()

    async def inner() -> int:
        return (await fut) + 1

    coro = inner()
    task = asyncio.ensure_future(resume(coro, coro.send(None)))
    loop.call_soon(fut.set_result, 41)
    assert await task == 42

    failing: asyncio.Future[int] = loop.create_future()

    async def inner_failing() -> int:
        return await failing

    coro2 = inner_failing()
    task2 = asyncio.ensure_future(resume(coro2, coro2.send(None)))
    loop.call_soon(failing.set_exception, KeyError("gone"))
    with pytest.raises(KeyError):
        await task2


def test_install_patches_a_faust_consumer_once_and_refuses_an_app_without_one() -> None:
    app = faust.App("delivery-test", broker="kafka://127.0.0.1:1", autodiscover=False, web_enabled=False)
    assert install(app) is False  # no consumer yet: nothing to patch
    consumer = app.consumer
    original = consumer.wait_first
    assert install(app) is True
    patched = consumer.wait_first
    assert patched is not original
    assert getattr(patched, "_attribution_fast", False)
    assert install(app) is True
    assert consumer.wait_first is patched  # idempotent: not wrapped twice
