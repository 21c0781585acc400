"""Scheduling and the two sync paths: store changes in, a validated config running in
HAProxy out.

Changes are coalesced into batches, a handful of syncs for a burst of a thousand
changes (change_batches.py).

**The fast path** (endpoint changes, on the event loop): the store's journal says which
Services' endpoints changed since the running state; only those are translated, their
servers swapped into the running model and their backend sections into the running
config (fastpath.py), and the difference goes to HAProxy as Runtime API operations (add
a server, drain a removed one, make a draining one ready again), checked afterwards with
`show servers state` of those backends. Work in proportion to the change, whatever the
number of Services; the config on disk is rewritten in the background (a reload or a
restart after a crash starts with the same servers), never before the operations.

**The full sync** (anything else, and a check once the fast path has been quiet for
VERIFY_QUIET seconds, at the latest VERIFY_MAX after its first change): translate and
render everything in a worker thread from a snapshot, so it never holds the event loop
(and the fast path) for the second it takes at 10,000 Services. Back on the loop, the
endpoint changes made since the snapshot are swapped in, then the result is applied: by
runtime operations when it differs in servers only, else by a reload (written to a
candidate directory, checked with `haproxy -c`, moved into place, the servers' state
saved for the new worker). When the check fails the last good config keeps serving.

Settings can change while running (`update_settings`): settings_updates.py. What the
outcome of each sync tells the outside (metrics, `synced`, problems): sync_report.py.

A removed server is drained: it gets no new requests, and a background task deletes it
once it has no session in flight, or after `settings.drain_timeout` when its remaining
sessions are cut.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from service_loadbalancer.change_batches import ChangeBatches
from service_loadbalancer.fastpath import (
    Running,
    catch_up,
    server_args,
    swap_endpoints,
)
from service_loadbalancer.fullsync import Prepared, prepare
from service_loadbalancer.haproxy.apply import Applier
from service_loadbalancer.haproxy.drains import Drains
from service_loadbalancer.haproxy.guard import External, ExternalGuard
from service_loadbalancer.haproxy.plan import Reason, ReasonKind, plan_endpoints
from service_loadbalancer.haproxy.process import HAProxyError, HAProxyProcess
from service_loadbalancer.haproxy.render import RUNTIME_SOCKET, TemplateError
from service_loadbalancer.haproxy.runtime import RuntimeApi
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.model import Problem
from service_loadbalancer.settings import Settings
from service_loadbalancer.settings_updates import SettingsUpdates
from service_loadbalancer.store import Store
from service_loadbalancer.sync_report import SyncReport

log = logging.getLogger("service_loadbalancer.reconciler")

#: The config on disk follows fast-path changes this long after the last one.
WRITE_DELAY = 0.05


class Reconciler:
    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        haproxy: HAProxyProcess,
        metrics: Metrics,
        quiet: float = 0.005,
        max_delay: float = 1.0,
    ) -> None:
        self._store = store
        self._settings = SettingsUpdates(settings, want_full=self._want_full)
        #: Why the last full sync could not apply its config (None: it could, or no change).
        self._failure: str | None = None
        self._haproxy = haproxy
        self._metrics = metrics
        self._changes = ChangeBatches(quiet=quiet, max_delay=max_delay)
        #: What runs; replaced as a whole by `_commit`.
        self._running: Running | None = None
        #: A full sync is wanted (since when, for the apply-time metric).
        self._full_wanted = asyncio.Event()
        self._full_since: float | None = None
        self._full_busy = False
        #: Why HAProxy's servers may not be what `_running` says (a failed runtime batch).
        self._suspect: str | None = None
        self._report = SyncReport(metrics)
        runtime = RuntimeApi(socket_path=settings.run_dir / RUNTIME_SOCKET)
        self._drains = Drains(
            runtime,
            drain_timeout=settings.drain_timeout,
            on_delete=metrics.runtime_ops.labels(op="delete").inc,
        )
        #: ExternalName servers resolving into --deny-external-cidrs (None: none denied).
        self._guard = (
            ExternalGuard(
                runtime=runtime,
                cidrs=settings.deny_external_cidrs,
                external=self._external,
                on_problems=self._report.report_found,
            )
            if settings.deny_external_cidrs
            else None
        )
        self._external_of: tuple[object, External] = (None, {})
        self._apply = Applier(
            settings=settings,
            haproxy=haproxy,
            runtime=runtime,
            drains=self._drains,
            metrics=metrics,
        )
        #: Serialises syncs and drain completions: both talk to the Runtime API.
        self._lock = asyncio.Lock()
        #: The config on disk (the Applier's files): reloads and the background writer, one
        #: at a time, from the install to the commit.
        self._disk = asyncio.Lock()
        self._dirty = asyncio.Event()
        #: True once HAProxy runs a config built from a complete store.
        self.synced = self._report.synced
        self._commit_listeners: list[Callable[[], None]] = []
        store.add_listener(self._changes.on_change)

    @property
    def running(self) -> Running | None:
        return self._running

    @property
    def problems(self) -> frozenset[Problem]:
        return self._report.problems

    async def run(self) -> None:
        """Sync whenever the store changes, and finish drains, forever (until cancelled)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._drains.run(self._lock, self._haproxy), name="drains")
            group.create_task(self._full_loop(), name="reconciler:full-sync")
            group.create_task(self._write_loop(), name="reconciler:config-writer")
            if self._guard is not None:
                guard = self._guard.run(self._lock, self._haproxy)
                group.create_task(guard, name="reconciler:external-guard")
            await self._sync_loop()

    def on_haproxy_line(self, line: str) -> None:
        """One line of HAProxy's stderr (the guard follows its DNS changes)."""
        if self._guard is not None:
            self._guard.on_line(line)

    def _external(self) -> External:
        """The running external backends, for the guard; computed again only when the
        running model changes, and only while some name may be denied."""
        model = self._running.model if self._running is not None else None
        if model is not self._external_of[0]:
            backends = model.backends if model is not None else ()
            found = {b.name: (b.service, b.external_name) for b in backends if b.external_name}
            self._external_of = (model, found)
        return self._external_of[1]

    # ------------------------------------------------------------------ scheduling

    async def _sync_loop(self) -> None:
        self._changes.poke()
        while True:
            if not await self._wait_for_change():
                self._want_full(time.monotonic())  # quiet after fast-path syncs: check
                continue
            await self._changes.settle()
            if not self._store.ready:
                continue
            await self._fast_sync(self._changes.take_first())

    async def _wait_for_change(self) -> bool:
        """Wait for a store change (True), or until a full check of fast-path syncs is due
        (False)."""
        running = self._running
        since = running.unverified_since if running is not None else None
        if self._full_wanted.is_set() or self._full_busy:
            since = None  # a full sync comes anyway: no check to schedule
        return await self._changes.wait(since)

    def _want_full(self, started: float) -> None:
        if self._full_since is None:
            self._full_since = started
        self._full_wanted.set()

    async def _full_loop(self) -> None:
        while True:
            await self._full_wanted.wait()
            self._full_wanted.clear()
            self._full_busy = True
            settings = self._settings.current
            try:
                await self.sync()
            except HAProxyError as err:
                log.error("HAProxy did not take the new config: %s", err)
                self._failure = str(err)
            finally:
                self._full_busy = False
            self._settings.settled(settings, self._failure)

    async def update_settings(self, settings: Settings, *, why: str) -> str | None:
        """Render with `settings` from now on: a full sync, which reloads if the config
        changes (`why` is the reason's text). None once they serve (or are kept for the
        first sync); else why HAProxy cannot run them, and the settings before stay."""
        return await self._settings.update(settings, why=why)

    # ------------------------------------------------------------------ fast path

    async def _fast_sync(self, started: float) -> None:
        """Apply the endpoint changes since the running state through the Runtime API;
        leave everything else (and anything it cannot do exactly) to a full sync."""
        async with self._lock:
            running = self._running
            changes = None if running is None else self._store.changes_since(running.version)
            if (
                running is None
                or changes is None
                or self._suspect is not None  # HAProxy may differ from `running`: reload
                or not self._haproxy.running()
            ):
                self._want_full(started)
                return
            if not changes.endpoints_only:
                self._want_full(started)
            version = self._store.version
            services = changes.endpoints - changes.services
            if not services:
                self._running = replace(running, version=version)
                return
            self._metrics.syncs.inc()
            swap, patch = swap_endpoints(running, self._store, services, self._settings.applied)
            if swap.declined:
                self._want_full(started)
            decision = plan_endpoints(swap.pairs.values(), draining=self._drains.names())
            if patch is None or decision.reload:
                self._want_full(started)
                self._running = replace(running, version=version)
                return
            if swap.pairs:
                failure = await self._apply.runtime_batch(decision.ops, patch.args, swap.pairs)
                if failure is not None:
                    self._metrics.runtime_fallbacks.inc()
                    log.warning("endpoint fast path failed, reloading: %s", failure)
                    self._suspect = failure
                    self._want_full(started)
                    return
            self._running = replace(
                running,
                model=swap.model,
                sections=patch.sections,
                version=version,
                touched=running.touched | swap.pairs.keys(),
                unverified_since=running.unverified_since
                or (time.monotonic() if swap.pairs else None),
                written=running.written and not swap.pairs,
            )
            if swap.pairs:
                self._dirty.set()
                log.debug("fast path: %d backend(s) patched", len(swap.pairs))
                self._report.done(started, "runtime")

    # ------------------------------------------------------------------ full sync

    async def sync(self) -> bool:
        """Translate and render everything (in a worker thread), then apply it: runtime
        operations or a reload. Returns whether HAProxy changed."""
        started = self._full_since or time.monotonic()
        self._full_since = None
        self._failure = None
        if not self._store.ready:
            return False
        self._metrics.syncs.inc()
        base, version = self._running, self._store.version
        snapshot = self._store.snapshot()
        settings = self._settings.current
        changed = (
            self._settings.why if base is not None and settings != self._settings.applied else None
        )
        try:
            prepared = await asyncio.to_thread(
                prepare, snapshot, settings, base, settings_changed=changed
            )
        except TemplateError as err:
            log.error("cannot render the config, keeping the running one: %s", err)
            self._metrics.validation_failures.inc()
            self._failure = f"cannot render the config: {err}"
            return False
        if base is None:
            # The first complete view is long-lived: keep the cyclic collector off it from
            # now on (it would walk millions of objects on every full collection).
            gc.freeze()
        async with self._lock:
            self._report.report(prepared.running.problems)
            result = await self._apply_full(prepared, base, version, started, settings)
            if self._failure is None:
                self._settings.applied = settings
            return result

    async def _apply_full(
        self,
        prepared: Prepared,
        base: Running | None,
        version: int,
        started: float,
        settings: Settings,
    ) -> bool:
        caught = catch_up(prepared.running, self._store, version, settings)
        if not caught.complete:
            self._want_full(started)
        new, fresh = caught.running, caught.fresh
        running = self._running
        reasons = list(prepared.reasons)
        if self._suspect is not None:
            reasons.insert(
                0, Reason(ReasonKind.RUNTIME_FAILED, f"runtime update failed: {self._suspect}")
            )
        structural = [r for r in reasons if r.kind is not ReasonKind.ENDPOINTS]
        if running is None or base is None or not self._haproxy.running() or structural:
            return await self._reload(
                new, reasons or [Reason(ReasonKind.TEXT, "config text changed")], started
            )
        # Only servers differ: those the full sync found, the fast path changed since it
        # began, and the catch-up changed.
        names = prepared.server_diff | (running.touched - base.touched) | fresh
        pairs = [
            (old, wanted)
            for name in sorted(names)
            if (old := running.backend(name)) is not None
            and (wanted := new.backend(name)) is not None
        ]
        decision = plan_endpoints(pairs, draining=self._drains.names())
        if decision.reload:
            return await self._reload(new, list(decision.reload), started)
        written = running.written
        if decision.ops:
            if running.unverified_since is not None and base is running and not fresh:
                log.warning("the endpoint fast path left servers the full sync plans otherwise")
            touched = {op.backend for op in decision.ops}
            args = server_args(new.sections, touched)
            failure = await self._apply.runtime_batch(decision.ops, args, touched)
            if failure is not None:
                self._metrics.runtime_fallbacks.inc()
                log.warning("runtime update failed, reloading instead: %s", failure)
                reason = Reason(ReasonKind.RUNTIME_FAILED, f"runtime update failed: {failure}")
                return await self._reload(new, [reason], started)
            written = False
            self._dirty.set()
        self._commit(replace(new, written=written))
        if decision.ops:
            self._report.done(started, "runtime")
        else:
            self._report.mark_synced()
        return bool(decision.ops)

    async def _reload(self, new: Running, reasons: list[Reason], started: float) -> bool:
        rendered = new.rendered()  # joins the whole text: once per reload
        if self._running is None:
            async with self._disk:
                adopted = await self._apply.adopted_runs(rendered)
            if adopted:
                log.info("the adopted HAProxy runs this very config: nothing to reload")
                self._commit(new)
                self._report.mark_synced()
                return False
        # The first start skips `haproxy -c`: starting checks the very same file.
        check = self._haproxy.running() or self._running is not None
        # The background writer must not slip an older config in between the install and
        # the reload (HAProxy reads the file then), nor after them before the commit.
        async with self._disk:
            try:
                if not await self._apply.load(rendered, new.model, check=check, reasons=reasons):
                    self._failure = f"haproxy -c refused the config: {self._apply.last_refusal}"
                    return False
            except HAProxyError as err:
                if check:
                    raise
                self._metrics.validation_failures.inc()
                log.error("HAProxy refused the new config at its first start: %s", err)
                self._failure = f"HAProxy refused the config at its first start: {err}"
                return False
            self._commit(new)
        if self._guard is not None:
            self._guard.poke()  # new workers: judge their external servers at once
        for kind in sorted({reason.kind for reason in reasons}):
            self._metrics.reloads.labels(reason=kind.value).inc()
        self._suspect = None
        self._report.done(started, "reload")
        return True

    def _commit(self, new: Running) -> None:
        """The one place the running state changes after a full sync."""
        self._running = replace(new, touched=frozenset(), unverified_since=None)
        for listener in self._commit_listeners:
            listener()

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Called after every full sync's commit (the status publisher reads the model)."""
        self._commit_listeners.append(listener)

    # ------------------------------------------------------------------ files

    async def _write_loop(self) -> None:
        """Keep the config on disk in step with fast-path changes, in the background."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(WRITE_DELAY)
            self._dirty.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write the running config to disk if fast-path changes are not there yet
        (also before HAProxy is restarted after a crash)."""
        async with self._disk:  # the state read under the lock is the newest committed
            running = self._running
            if running is None or running.written:
                return
            await self._apply.write_config(running.sections.pieces)
            now = self._running
            if now is not None and now.sections is running.sections:
                self._running = replace(now, written=True)
