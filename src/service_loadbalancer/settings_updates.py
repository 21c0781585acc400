"""Settings that change while running (`Reconciler.update_settings`, a --cfg edit).

The next full sync renders with them and reloads, with a "settings or template changed"
reason, only if the config changes; if it cannot be rendered or `haproxy -c` refuses
it, the settings before are restored and the caller is told why. The fast path always
works with the settings the running config was rendered with (`applied`).

Kept apart from the reconciler's scheduling because it is its own small protocol: one
update at a time, each waiting for the outcome of the full sync that rendered with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from service_loadbalancer.settings import Settings


class SettingsUpdates:
    """The settings full syncs render with (`current`), those of the running config
    (`applied`), and the one pending update waiting for a full sync's outcome."""

    def __init__(self, settings: Settings, *, want_full: Callable[[float], None]) -> None:
        #: The settings full syncs render with; `applied`: those of the running config.
        self.current = settings
        self.applied = settings
        #: The reason's text of a reload that the settings cause.
        self.why = "settings or template changed"
        #: A pending `update`: its settings and the future of their outcome.
        self._waiter: tuple[Settings, asyncio.Future[str | None]] | None = None
        self._lock = asyncio.Lock()
        self._want_full = want_full

    def settled(self, settings: Settings, failure: str | None) -> None:
        """A full sync that rendered with `settings` is over (`failure`: why its config
        could not be applied); tell the update waiting for those settings."""
        waiter = self._waiter
        if waiter is not None and waiter[0] is settings and not waiter[1].done():
            waiter[1].set_result(failure)

    async def update(self, settings: Settings, *, why: str) -> str | None:
        """Render with `settings` from now on; see `Reconciler.update_settings`."""
        async with self._lock:
            previous, self.current = self.current, settings
            self.why = why
            done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            self._waiter = (settings, done)
            self._want_full(time.monotonic())
            try:
                failure = await done
            finally:
                self._waiter = None
            if failure is not None:
                self.current = previous
                self._want_full(time.monotonic())  # what ran before, should anything differ
            return failure
