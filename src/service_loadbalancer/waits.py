"""Bounded waits and task cancellation that never lose the caller's own cancellation.

Python 3.11's `asyncio.wait_for` returns normally when the awaited future finished in the
same loop iteration as the waiting task was cancelled: the cancellation is gone. Every
loop of ours that waits for a wake-up *or* a timer (the reconciler's batching, the
health watcher, the publisher, the supervisor's backoff) would then carry on, and the
controller's TaskGroup would wait at SIGTERM for a task that never sees another cancel:
the controller hangs instead of stopping HAProxy. `asyncio.timeout()` counts
cancellations and has no such window, so bounded waits go through `wait_event`, and ruff
bans `asyncio.wait_for` in src/ (pyproject.toml, TID251).

`with suppress(CancelledError): await task` after `task.cancel()` has the same flaw in
another shape: it also swallows a cancellation of the caller that arrives meanwhile.
`cancel_and_wait` waits with `asyncio.wait`, which never raises the task's outcome and
always raises the caller's.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set (True) or `seconds` have passed (False)."""
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished (whatever its outcome)."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: it ended by itself meanwhile, and that is no news here
