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
        self.problems: frozenset[Problem] = frozenset()
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
        """Log each problem once when it appears and once when it is gone."""
        current = frozenset(problems)
        for problem in sorted(current - self.problems):
            log.warning("skipped: %s", problem)
        for problem in sorted(self.problems - current):
            log.info("resolved: %s", problem)
        self.problems = current
        self._metrics.problems.set(len(current))
