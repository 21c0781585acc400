"""What the reconciler tells the outside about its syncs: metrics, the `synced` event
readiness waits for, and the problems (objects skipped) logged as they come and go.

Kept apart from the reconciler so that its sync paths read as decisions, with the
bookkeeping of each outcome in one call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from service_loadbalancer.metrics import Metrics
from service_loadbalancer.model import Problem

# The reconciler's logger, as before these lines moved here: log filters keep working.
log = logging.getLogger("service_loadbalancer.reconciler")


class SyncReport:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        #: Every problem now: translation's and those found at run time (the guard's).
        self.problems: frozenset[Problem] = frozenset()
        self._translated: frozenset[Problem] = frozenset()
        self._found: frozenset[Problem] = frozenset()
        #: True once HAProxy runs a config built from a complete store.
        self.synced = asyncio.Event()

    def done(self, started: float, method: str) -> None:
        """HAProxy runs the changes since `started`, applied by `method`."""
        elapsed = time.monotonic() - started
        log.debug("applied by %s %.1f ms after the first change", method, 1000 * elapsed)
        self._metrics.sync_seconds.observe(elapsed)
        self._metrics.apply_seconds.labels(method=method).observe(elapsed)
        self.mark_synced()

    def mark_synced(self) -> None:
        self._metrics.last_sync.set(time.time())
        self.synced.set()

    def report(self, problems: Iterable[Problem]) -> None:
        """Translation's problems, replacing the previous sync's."""
        self._translated = frozenset(problems)
        self._publish()

    def report_found(self, problems: Iterable[Problem]) -> None:
        """Problems found at run time (an external name resolving into a denied
        network), replacing the previous ones; translation's stay."""
        self._found = frozenset(problems)
        self._publish()

    def _publish(self) -> None:
        """Log each problem once when it appears and once when it is gone."""
        current = self._translated | self._found
        for problem in sorted(current - self.problems):
            log.warning("skipped: %s", problem)
        for problem in sorted(self.problems - current):
            log.info("resolved: %s", problem)
        self.problems = current
        self._metrics.problems.set(len(current))
