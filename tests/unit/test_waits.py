"""Bounded waits keep the caller's cancellation (waits.py): the controller's shutdown
cancels every task at once, and a task that loses that cancel keeps its TaskGroup, and
so the controller, from ever stopping."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest

from service_loadbalancer.change_batches import ChangeBatches
from service_loadbalancer.controller import _report_stuck
from service_loadbalancer.waits import cancel_and_wait, wait_event


async def test_wait_event_says_whether_it_was_set() -> None:
    event = asyncio.Event()
    assert not await wait_event(event, 0.01)
    assert not await wait_event(event, -1.0)  # a deadline already past is a timeout
    event.set()
    assert await wait_event(event, 0.0)
    later = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, later.set)
    assert await wait_event(later, 5.0)


async def _wake_up_loop(wake: asyncio.Event, wait: object) -> None:
    """A wake-up-or-timer loop, as the health watcher and the publisher run."""
    while True:
        await wait(wake)  # type: ignore[operator]
        wake.clear()


async def _set_and_cancel_together(wake: asyncio.Event, task: asyncio.Task[None]) -> None:
    await asyncio.sleep(0.01)  # the loop waits
    wake.set()
    task.cancel()  # in the same loop iteration: what SIGTERM may meet
    await asyncio.wait({task}, timeout=1.0)


async def test_a_cancel_that_meets_a_wake_up_ends_the_loop() -> None:
    wake = asyncio.Event()
    task = asyncio.create_task(_wake_up_loop(wake, lambda e: wait_event(e, 10.0)))
    await _set_and_cancel_together(wake, task)
    assert task.cancelled()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps the cancel since 3.12")
async def test_asyncio_wait_for_loses_that_cancel() -> None:
    """Why waits.py exists: the scenario above is real, and wait_for fails it."""
    wake = asyncio.Event()
    task = asyncio.create_task(_wake_up_loop(wake, lambda e: asyncio.wait_for(e.wait(), 10.0)))
    await _set_and_cancel_together(wake, task)
    assert not task.done()  # still looping: a TaskGroup would wait for it for ever
    task.cancel()
    await asyncio.wait({task})


async def test_change_batches_end_on_a_cancel_that_meets_a_change() -> None:
    batches = ChangeBatches(quiet=10.0, max_delay=60.0)
    waiting = asyncio.create_task(batches.settle())  # the reconciler's wait for quiet
    await asyncio.sleep(0.01)
    batches.on_change()
    waiting.cancel()
    await asyncio.wait({waiting}, timeout=1.0)
    assert waiting.cancelled()


async def _slow_to_stop() -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0.05)  # cleans up before it goes
        raise


async def test_cancel_and_wait_waits_for_the_task() -> None:
    task = asyncio.create_task(_slow_to_stop())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled()
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait(done)  # a finished task: nothing to do
    assert done.done()
    assert not done.cancelled()


async def test_cancel_and_wait_keeps_the_callers_own_cancel() -> None:
    async def caller(task: asyncio.Task[None]) -> str:
        await cancel_and_wait(task)
        return "went on as if not cancelled"

    inner = asyncio.create_task(_slow_to_stop())
    await asyncio.sleep(0)
    outer = asyncio.create_task(caller(inner))
    await asyncio.sleep(0.01)  # the caller waits for the inner task's clean-up
    outer.cancel()
    await asyncio.wait({outer}, timeout=1.0)
    assert outer.cancelled()
    with contextlib.suppress(asyncio.CancelledError):
        await inner


async def test_a_task_stuck_at_shutdown_is_named_with_where_it_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def deaf_to_cancel() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    stuck = asyncio.create_task(deaf_to_cancel(), name="deaf")
    fine = asyncio.create_task(asyncio.sleep(10), name="fine")
    await asyncio.sleep(0)
    for task in (stuck, fine):
        task.cancel()
    await _report_stuck([stuck, fine], within=0.05)
    assert fine.cancelled()
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "task deaf still runs 0.05 s after it was cancelled" in record.getMessage()
    assert "in deaf_to_cancel" in record.getMessage()  # the stack: where it waits
    release.set()
    stuck.cancel()
    await asyncio.wait({stuck})
