"""Coalescing store changes into syncs, and timing the full check of fast-path syncs.

After the first change of a batch we wait until the store has been quiet for `quiet`
seconds (or `max_delay` has passed since that first change), so a burst of a thousand
object changes gives a handful of syncs, not a thousand. `quiet` is short (5 ms): an
endpoint change costs HAProxy no reload and its latency is the point.

Kept apart from the reconciler so that its loop reads as what it does with a batch,
not how a batch is cut.
"""

from __future__ import annotations

import asyncio
import time

from service_loadbalancer.waits import wait_event

#: After fast-path syncs, a full sync checks the result once the store has been quiet
#: this long, and at the latest this long after the first unchecked one.
VERIFY_QUIET = 1.0
VERIFY_MAX = 30.0


class ChangeBatches:
    """When the store changed, first and last in the current batch (`on_change` is its
    listener), and the waits that cut batches."""

    def __init__(self, *, quiet: float, max_delay: float) -> None:
        self._quiet = quiet
        self._max_delay = max_delay
        self._changed = asyncio.Event()
        self._first_change: float | None = None
        self._last_change = 0.0

    def on_change(self) -> None:
        self._last_change = time.monotonic()
        if self._first_change is None:
            self._first_change = self._last_change
        self._changed.set()

    def poke(self) -> None:
        """Let the next wait return as if the store had changed (the first sync)."""
        self._changed.set()

    def take_first(self) -> float:
        """When the batch began (now if no change is known); the next change begins
        another."""
        started = self._first_change or time.monotonic()
        self._first_change = None
        return started

    async def wait(self, unverified_since: float | None) -> bool:
        """Wait for a store change (True), or until a full check of the fast-path syncs
        unverified since `unverified_since` is due (False; None: none is to be made)."""
        if unverified_since is None:
            await self._changed.wait()
            return True
        due = min(self._last_change + VERIFY_QUIET, unverified_since + VERIFY_MAX)
        return await wait_event(self._changed, due - time.monotonic())

    async def settle(self) -> None:
        """Wait for a quiet moment: no change for `quiet` s, or `max_delay` s overall."""
        deadline = time.monotonic() + self._max_delay
        while True:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if not await wait_event(self._changed, min(self._quiet, remaining)):
                return
