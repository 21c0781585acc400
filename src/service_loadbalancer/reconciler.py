"""The one sync loop: store changes in, a validated config running in HAProxy out.

Changes are coalesced: after the first change of a batch we wait until the store has
been quiet for `quiet` seconds (or `max_delay` has passed since that first change), so
a burst of a thousand object changes gives a handful of syncs, not a thousand. A sync
that renders exactly what is running does nothing.

A new config is written to a candidate directory, checked with `haproxy -c`, and only
then moved into place file by file (atomic renames, the main file last) and loaded.
When the check fails the last good config stays on disk and keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from service_loadbalancer.haproxy.certs import remove_unused, write_certificates
from service_loadbalancer.haproxy.plan import reason_kind, reload_reasons
from service_loadbalancer.haproxy.process import HAProxyError, HAProxyProcess, check_config
from service_loadbalancer.haproxy.render import (
    CERTS_DIR,
    CONFIG_FILE,
    Rendered,
    TemplateError,
    render,
)
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.model import LoadBalancer, Problem
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Store
from service_loadbalancer.translate import translate

log = logging.getLogger("service_loadbalancer.reconciler")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around translate + render.

    They allocate hundreds of thousands of small acyclic objects for a large cluster;
    the collector, triggered by the allocation count, then walks the whole (large,
    long-lived) store again and again: half the time of a 10,000-Service sync.
    Reference counting still frees everything; the collector resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_files(rendered: Rendered, directory: Path, config_name: str) -> Path:
    """Write every file of `rendered` into `directory`; returns the main config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.files.items():
        target = directory / (config_name if name == CONFIG_FILE else name)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    return directory / config_name


def install(candidate: Path, rendered: Rendered, config_path: Path) -> None:
    """Move a checked candidate into place: support files first, the config last, so
    a reload (or restart) at any moment reads a consistent set."""
    for name in sorted(rendered.files, key=lambda n: n == CONFIG_FILE):
        source = candidate / (config_path.name if name == CONFIG_FILE else name)
        target = config_path if name == CONFIG_FILE else config_path.parent / name
        os.replace(source, target)


class Reconciler:
    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        haproxy: HAProxyProcess,
        metrics: Metrics,
        quiet: float = 0.05,
        max_delay: float = 1.0,
    ) -> None:
        self._store = store
        self._settings = settings
        self._haproxy = haproxy
        self._metrics = metrics
        self._quiet = quiet
        self._max_delay = max_delay
        self._changed = asyncio.Event()
        self._first_change: float | None = None
        self._applied: Rendered | None = None
        self._model: LoadBalancer | None = None
        self._problems: frozenset[Problem] = frozenset()
        #: True once HAProxy runs a config built from a complete store.
        self.synced = asyncio.Event()
        store.add_listener(self._on_change)

    def _on_change(self) -> None:
        if self._first_change is None:
            self._first_change = time.monotonic()
        self._changed.set()

    async def run(self) -> None:
        """Sync whenever the store changes, forever (until cancelled)."""
        self._changed.set()
        while True:
            await self._changed.wait()
            await self._settle()
            if not self._store.ready:
                continue
            started = self._first_change or time.monotonic()
            self._first_change = None
            try:
                await self.sync(started=started)
            except HAProxyError as err:
                log.error("HAProxy did not take the new config: %s", err)

    async def _settle(self) -> None:
        """Wait for a quiet moment: no change for `quiet` s, or `max_delay` s overall."""
        deadline = time.monotonic() + self._max_delay
        while True:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), min(self._quiet, remaining))
            except TimeoutError:
                return

    async def sync(self, *, started: float | None = None) -> bool:
        """Translate, render, check and apply. Returns whether HAProxy was changed."""
        started = started if started is not None else time.monotonic()
        self._metrics.syncs.inc()
        try:
            with gc_paused():
                translation = translate(self._store.snapshot(), self._settings)
                rendered = render(translation.model, self._settings)
        except TemplateError as err:
            log.error("cannot render the config, keeping the running one: %s", err)
            self._metrics.validation_failures.inc()
            return False
        self._report(translation.problems)
        if rendered == self._applied and self._haproxy.running():
            self._mark_synced()
            return False
        reasons = reload_reasons(self._model, translation.model)
        if not await self._check_and_install(rendered):
            return False
        if self._haproxy.running():
            log.info("reloading HAProxy: %s", "; ".join(reasons))
            await self._haproxy.reload()
        else:
            log.info("starting HAProxy: %s", "; ".join(reasons))
            await self._haproxy.start()
        for kind in sorted({reason_kind(reason) for reason in reasons}):
            self._metrics.reloads.labels(reason=kind).inc()
        self._applied = rendered
        # Only now: the worker that used an old certificate file has loaded the new set.
        remove_unused(self._settings.run_dir / CERTS_DIR, rendered.certificates)
        self._model = translation.model
        self._metrics.sync_seconds.observe(time.monotonic() - started)
        self._mark_synced()
        return True

    def _mark_synced(self) -> None:
        self._metrics.last_sync.set(time.time())
        self.synced.set()

    async def _check_and_install(self, rendered: Rendered) -> bool:
        config_path = self._settings.config_path
        candidate = config_path.parent / ".candidate"
        shutil.rmtree(candidate, ignore_errors=True)
        # Content-addressed names: writing new certificates never touches the running set.
        write_certificates(self._settings.run_dir / CERTS_DIR, rendered.certificates)
        path = write_files(rendered, candidate, config_path.name)
        result = await check_config(
            self._settings.haproxy_bin, path, env=self._settings.haproxy_env()
        )
        if not result.ok:
            self._metrics.validation_failures.inc()
            log.error(
                "haproxy -c refused the new config; the last good one keeps serving: %s",
                result.output,
            )
            return False
        install(candidate, rendered, config_path)
        return True

    def _report(self, problems: tuple[Problem, ...]) -> None:
        """Log each problem once when it appears and once when it is gone."""
        current = frozenset(problems)
        for problem in sorted(current - self._problems):
            log.warning("skipped: %s", problem)
        for problem in sorted(self._problems - current):
            log.info("resolved: %s", problem)
        self._problems = current
        self._metrics.problems.set(len(current))

    @property
    def problems(self) -> frozenset[Problem]:
        return self._problems
