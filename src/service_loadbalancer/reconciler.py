"""The one sync loop: store changes in, a validated config running in HAProxy out.

Changes are coalesced: after the first change of a batch we wait until the store has
been quiet for `quiet` seconds (or `max_delay` has passed since that first change), so
a burst of a thousand object changes gives a handful of syncs, not a thousand; changes
that arrive while a sync runs make one more sync after it. `quiet` is short (5 ms), as
an endpoint change costs HAProxy no reload and its latency is the point. A sync that
renders exactly what is running does nothing.

Endpoint changes do not reload: `haproxy.plan.plan` turns them into Runtime API
operations (add a server, drain a removed one, make a draining one ready again), which
are sent in one batch; then `show servers state` of the touched backends must show
exactly the planned servers and states, or we fall back to a reload of the rendered
config. The new config is still written to disk (so a reload or a restart after a crash
starts with the same servers), but without `haproxy -c`: it differs from the last
checked config in server lines only (verified below, else we reload), and HAProxy has
just parsed and accepted those very lines through `add server`. That keeps a change on a
10,000-Service config at milliseconds instead of the seconds `haproxy -c` takes.

Everything else is a reload: a new config is written to a candidate directory, checked
with `haproxy -c`, and only then moved into place file by file (atomic renames, the main
file last). Before the reload the servers' state (`show servers state`) is saved to the
server-state file the new worker loads, so a reload keeps drained and failed servers as
they were. When the check fails the last good config stays on disk and keeps serving.

A removed server is drained: it gets no new requests, and a background task deletes it
once it has no session in flight, or after `settings.drain_timeout` when its remaining
sessions are cut.

When only endpoints changed, the fast path (fastpath.py) translates just the Services
concerned and patches their backend sections into the running config text, instead of
a full translate + render; a full sync follows once the store has been quiet for
VERIFY_QUIET seconds (at the latest VERIFY_MAX after the first unchecked change) and
corrects anything the fast path got wrong, with a warning.
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
from types import MappingProxyType

from service_loadbalancer.fastpath import (
    endpoint_changes,
    patch_model,
    replace_sections,
    sub_snapshot,
)
from service_loadbalancer.haproxy.certs import remove_unused, write_certificates
from service_loadbalancer.haproxy.plan import OpKind, ServerOp, plan, reason_kind, reload_reasons
from service_loadbalancer.haproxy.process import HAProxyError, HAProxyProcess, check_config
from service_loadbalancer.haproxy.render import (
    CERTS_DIR,
    CONFIG_FILE,
    RUNTIME_SOCKET,
    SERVER_STATE_FILE,
    Rendered,
    TemplateError,
    render,
)
from service_loadbalancer.haproxy.runtime import RuntimeApi, RuntimeApiError
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.model import LoadBalancer, Problem
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Snapshot, Store
from service_loadbalancer.translate import translate

log = logging.getLogger("service_loadbalancer.reconciler")

#: How often draining servers are looked at (sessions in flight, drain deadline).
DRAIN_POLL = 0.2
#: After endpoint fast-path syncs, a full sync checks the result once the store has been
#: quiet this long, and at the latest this long after the first unchecked one.
VERIFY_QUIET = 1.0
VERIFY_MAX = 30.0


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


def split_servers(text: str) -> tuple[str, dict[tuple[str, str], str]]:
    """The config without its server lines, and (backend, server) -> the server's
    arguments as rendered (`127.0.0.1:80 cookie x`), so a runtime `add server` gets
    exactly what the config on disk says."""
    rest: list[str] = []
    servers: dict[tuple[str, str], str] = {}
    backend = ""
    for line in text.splitlines():
        if line.startswith("backend "):
            backend = line.split()[1]
        elif line.startswith(("frontend ", "listen ", "defaults", "global")):
            backend = ""
        stripped = line.lstrip()
        if backend and stripped.startswith("server "):
            _, name, args = [*stripped.split(None, 2), ""][:3]
            servers[(backend, name)] = args
            continue
        rest.append(line)
    return "\n".join(rest), servers


def filter_server_state(text: str, keep: set[tuple[str, str]]) -> str:
    """`show servers state` reduced to the servers in `keep` (backend, server): a server
    that was draining and comes back later must not come back drained from an old file."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split()
        if line.startswith("#") or len(fields) < 4 or (fields[1], fields[3]) in keep:
            out.append(line)
    return "\n".join(out) + "\n"


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
        self._settings = settings
        self._haproxy = haproxy
        self._metrics = metrics
        self._quiet = quiet
        self._max_delay = max_delay
        self._changed = asyncio.Event()
        self._first_change: float | None = None
        self._last_change = 0.0
        #: The snapshot the running model was built from (fast path: what changed since).
        self._snapshot: Snapshot | None = None
        #: When the first fast-path sync not yet checked by a full sync happened.
        self._unverified_since: float | None = None
        #: id(rendered) -> (rendered, split_servers of it); holding `rendered` keeps the id.
        self._splits: dict[int, tuple[Rendered, tuple[str, dict[tuple[str, str], str]]]] = {}
        self._applied: Rendered | None = None
        self._model: LoadBalancer | None = None
        self._problems: frozenset[Problem] = frozenset()
        self._runtime = RuntimeApi(socket_path=settings.run_dir / RUNTIME_SOCKET)
        #: Servers removed from the model but still in HAProxy, draining:
        #: backend -> server -> monotonic deadline.
        self._draining: dict[str, dict[str, float]] = {}
        self._draining_changed = asyncio.Event()
        #: Serialises syncs and drain completions: both talk to the Runtime API and
        #: both change what runs.
        self._lock = asyncio.Lock()
        #: True once HAProxy runs a config built from a complete store.
        self.synced = asyncio.Event()
        store.add_listener(self._on_change)

    def _on_change(self) -> None:
        self._last_change = time.monotonic()
        if self._first_change is None:
            self._first_change = self._last_change
        self._changed.set()

    async def run(self) -> None:
        """Sync whenever the store changes, and finish drains, forever (until cancelled)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._drain_loop(), name="reconciler:drain")
            await self._sync_loop()

    async def _sync_loop(self) -> None:
        self._changed.set()
        while True:
            if not await self._wait_for_change():
                try:  # quiet after fast-path syncs: check them with a full one
                    await self.sync()
                except HAProxyError as err:
                    log.error("HAProxy did not take the new config: %s", err)
                continue
            await self._settle()
            if not self._store.ready:
                continue
            started = self._first_change or time.monotonic()
            self._first_change = None
            try:
                if not await self._fast_sync(started):
                    await self.sync(started=started)
            except HAProxyError as err:
                log.error("HAProxy did not take the new config: %s", err)

    async def _wait_for_change(self) -> bool:
        """Wait for a store change (True), or until a full check of fast-path syncs is due
        (False)."""
        if self._unverified_since is None:
            await self._changed.wait()
            return True
        due = min(self._last_change + VERIFY_QUIET, self._unverified_since + VERIFY_MAX)
        try:
            await asyncio.wait_for(self._changed.wait(), max(due - time.monotonic(), 0.0))
        except TimeoutError:
            return False
        return True

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
        """Translate, render and apply (runtime or reload). Returns whether HAProxy changed."""
        started = started if started is not None else time.monotonic()
        async with self._lock:
            return await self._sync(started)

    async def _sync(self, started: float) -> bool:
        begun = time.monotonic()
        self._metrics.syncs.inc()
        snapshot = self._store.snapshot()
        unverified, self._unverified_since = self._unverified_since is not None, None
        # What runs was built from this snapshot, if the fast path's last one is this one.
        fast_version = self._snapshot.version if unverified and self._snapshot else None
        # Until this sync succeeds, the fast path has no trustworthy base.
        self._snapshot = None
        try:
            with gc_paused():
                translation = translate(snapshot, self._settings)
                rendered = render(translation.model, self._settings)
        except TemplateError as err:
            log.error("cannot render the config, keeping the running one: %s", err)
            self._metrics.validation_failures.inc()
            return False
        self._report(translation.problems)
        model = translation.model
        log.debug(
            "sync: %.1f ms after the first change, translated and rendered in %.1f ms",
            1000 * (time.monotonic() - started),
            1000 * (time.monotonic() - begun),
        )
        if rendered == self._applied and self._haproxy.running():
            self._snapshot = snapshot
            self._mark_synced()
            return False
        if fast_version == snapshot.version:
            log.warning("the endpoint fast path left a config the full sync renders otherwise")
        if self._haproxy.running() and self._model is not None and self._applied is not None:
            decision = plan(self._model, model, draining=self._draining_names())
            if not decision.reload:
                failure = await self._apply_runtime(decision.ops, rendered)
                if failure is None:
                    self._applied = rendered
                    self._model = model
                    self._snapshot = snapshot
                    self._done(started, "runtime")
                    return True
                self._metrics.runtime_fallbacks.inc()
                log.warning("runtime update failed, reloading instead: %s", failure)
                reasons = [f"runtime update failed: {failure}"]
            else:
                reasons = list(decision.reload)
        else:
            reasons = reload_reasons(self._model, model)
        if not await self._check_and_install(rendered):
            return False
        await self._save_server_state(model)
        if self._haproxy.running():
            log.info("reloading HAProxy: %s", "; ".join(reasons))
            await self._haproxy.reload()
        else:
            log.info("starting HAProxy: %s", "; ".join(reasons))
            await self._haproxy.start()
        # The new worker has exactly the servers of the config: nothing drains any more
        # (the old worker finishes the connections of the removed ones).
        self._draining.clear()
        for kind in sorted({reason_kind(reason) for reason in reasons}):
            self._metrics.reloads.labels(reason=kind).inc()
        self._applied = rendered
        # Only now: the worker that used an old certificate file has loaded the new set.
        remove_unused(self._settings.run_dir / CERTS_DIR, rendered.certificates)
        self._model = model
        self._snapshot = snapshot
        self._done(started, "reload")
        return True

    async def _fast_sync(self, started: float) -> bool:
        """Apply an endpoints-only change without a full translate and render (see
        fastpath.py). False when it does not apply; the caller then does a full sync."""
        async with self._lock:
            previous, model, applied = self._snapshot, self._model, self._applied
            if previous is None or model is None or applied is None:
                return False
            if not self._haproxy.running():
                return False
            snapshot = self._store.snapshot()
            services = endpoint_changes(previous, snapshot)
            if services is None:
                return False
            self._metrics.syncs.inc()
            try:
                with gc_paused():
                    partial = translate(sub_snapshot(snapshot, services), self._settings)
                    patch = patch_model(
                        model, partial.model, partial.problems, services, self._problems
                    )
                    if patch is None:
                        return False
                    tiny = render(LoadBalancer(backends=patch.backends), self._settings)
                    patched = replace_sections(
                        applied.config, {b.name: tiny.config for b in patch.backends}
                    )
            except TemplateError:
                return False
            if patched is None:
                return False
            if not patch.backends:
                self._snapshot = snapshot
                return True
            text, sections = patched
            # The rest of the text is untouched; within the sections only server lines
            # may differ (else a reload is needed: the full sync decides).
            args: dict[tuple[str, str], str] = {}
            for old_section, new_section in sections.values():
                old_rest = split_servers(old_section)[0]
                new_rest, new_args = split_servers(new_section)
                if old_rest != new_rest:
                    return False
                args.update(new_args)
            rendered = Rendered(
                files=MappingProxyType({**applied.files, CONFIG_FILE: text}),
                certificates=applied.certificates,
            )
            log.debug(
                "fast path: %d backend(s) patched %.1f ms after the first change",
                len(patch.backends),
                1000 * (time.monotonic() - started),
            )
            decision = plan(model, patch.model, draining=self._draining_names())
            if decision.reload:
                return False
            failure = await self._apply_runtime(decision.ops, rendered, checked=args)
            if failure is not None:
                log.warning("endpoint fast path failed, doing a full sync: %s", failure)
                return False
            self._applied = rendered
            self._model = patch.model
            self._snapshot = snapshot
            if self._unverified_since is None:
                self._unverified_since = time.monotonic()
            self._done(started, "runtime")
            return True

    def _done(self, started: float, method: str) -> None:
        elapsed = time.monotonic() - started
        log.debug("applied by %s %.1f ms after the first change", method, 1000 * elapsed)
        self._metrics.sync_seconds.observe(elapsed)
        self._metrics.apply_seconds.labels(method=method).observe(elapsed)
        self._mark_synced()

    def _draining_names(self) -> dict[str, frozenset[str]]:
        return {b: frozenset(servers) for b, servers in self._draining.items()}

    async def _apply_runtime(
        self,
        ops: tuple[ServerOp, ...],
        rendered: Rendered,
        *,
        checked: dict[tuple[str, str], str] | None = None,
    ) -> str | None:
        """Apply `ops` through the Runtime API and check the result; None when HAProxy
        now runs exactly the model, else why not (the caller reloads). `checked`: the
        server arguments of the touched backends, when the caller has already made sure
        that `rendered` differs from what runs in server lines only."""
        assert self._applied is not None
        if checked is None:
            old_rest = self._split(self._applied)[0]
            new_rest, args = self._split(rendered)
            if old_rest != new_rest or {
                k: v for k, v in rendered.files.items() if k != CONFIG_FILE
            } != {k: v for k, v in self._applied.files.items() if k != CONFIG_FILE}:
                return "the rendered config changes more than server lines"
        else:
            args = checked
        commands: list[str] = []
        expected: list[str] = []
        for op in ops:
            target = f"{op.backend}/{op.server.name}"
            if op.kind is OpKind.ADD:
                server_args = args.get((op.backend, op.server.name))
                if server_args is None:
                    return f"server {target} is not in the rendered config"
                commands.append(f"add server {target} {server_args}")
                expected.append("New server registered.")
            if op.kind in (OpKind.ADD, OpKind.READY):
                commands.append(f"set server {target} state ready")
            else:
                commands.append(f"set server {target} state drain")
            expected.append("")
        try:
            answers = await self._runtime.execute(commands)
            for command, want, answer in zip(commands, expected, answers, strict=True):
                if answer.strip() != want:
                    return f"{command!r}: {answer.strip()!r}"
            deadline = time.monotonic() + self._settings.drain_timeout
            for op in ops:
                self._metrics.runtime_ops.labels(op=op.kind.value).inc()
                servers = self._draining.setdefault(op.backend, {})
                if op.kind is OpKind.DRAIN:
                    servers[op.server.name] = deadline
                else:
                    servers.pop(op.server.name, None)
                if not servers:
                    del self._draining[op.backend]
            if self._draining:
                self._draining_changed.set()
            mismatch = await self._verify({op.backend for op in ops}, args)
        except RuntimeApiError as err:
            return str(err)
        if mismatch:
            return mismatch
        self._write_config(rendered)
        return None

    def _split(self, rendered: Rendered) -> tuple[str, dict[tuple[str, str], str]]:
        """split_servers, remembered for the last config or two (a scan of the whole text)."""
        key = id(rendered)
        if key not in self._splits:
            if len(self._splits) >= 2:
                self._splits.pop(next(iter(self._splits)))
            self._splits[key] = (rendered, split_servers(rendered.config))
        return self._splits[key][1]

    async def _verify(self, backends: set[str], args: dict[tuple[str, str], str]) -> str | None:
        """`show servers state` of `backends` must list every server of the config (`args`:
        (backend, server) -> arguments) as ready with its address, every draining one as
        draining (or gone), nothing else."""
        rows = await self._runtime.servers_state(backends)
        seen = {(r.backend, r.name): r for r in rows}
        for (backend, name), server_args in args.items():
            if backend not in backends:
                continue
            row = seen.pop((backend, name), None)
            if row is None:
                return f"server {backend}/{name} is missing"
            if not row.ready:
                return f"server {backend}/{name} is not ready (admin state {row.admin_state})"
            endpoint = server_args.split()[0] if server_args else ""
            host = f"[{row.address}]" if ":" in row.address else row.address
            if f"{host}:{row.port}" != endpoint:
                return f"server {backend}/{name} has {host}:{row.port}, not {endpoint}"
        for (backend, name), row in seen.items():
            if name not in self._draining.get(backend, {}):
                return f"server {backend}/{name} should not be there"
            if not (row.drain or row.maint):
                return f"server {backend}/{name} should be draining"
        return None

    def _write_config(self, rendered: Rendered) -> None:
        """Put a config that differs in server lines only in place (atomic rename)."""
        path = self._settings.config_path
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(rendered.config, encoding="utf-8")
        os.replace(tmp, path)

    async def _save_server_state(self, model: LoadBalancer) -> None:
        """Save the servers' state for the next worker (only servers it will have)."""
        path = self._settings.run_dir / SERVER_STATE_FILE
        text = "1\n"
        if self._haproxy.running():
            try:
                text = (await self._runtime.execute(["show servers state"]))[0]
            except RuntimeApiError as err:
                log.warning("cannot save the servers' state before the reload: %s", err)
                if path.exists():
                    return
        keep = {(b.name, s.name) for b in model.backends for s in b.servers}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(filter_server_state(text, keep), encoding="utf-8")
        os.replace(tmp, path)

    async def _drain_loop(self) -> None:
        """Delete draining servers once idle (or cut them after the drain timeout)."""
        while True:
            if not self._draining:
                self._draining_changed.clear()
                await self._draining_changed.wait()
            await asyncio.sleep(DRAIN_POLL)
            async with self._lock:
                if self._draining and self._haproxy.running():
                    try:
                        await self._finish_drains()
                    except RuntimeApiError as err:
                        log.debug("drain check failed (next try soon): %s", err)

    async def _finish_drains(self) -> None:
        busy = await self._runtime.sessions(self._draining)
        now = time.monotonic()
        commands: list[str] = []
        targets: list[tuple[str, str]] = []
        for backend, servers in self._draining.items():
            for name, deadline in servers.items():
                sessions = busy.get((backend, name))
                if sessions is None:
                    targets.append((backend, name))  # already gone
                    continue
                if sessions and now < deadline:
                    continue
                target = f"{backend}/{name}"
                if sessions:
                    log.warning("drain timeout: cutting %d session(s) of %s", sessions, target)
                    commands.append(f"shutdown sessions server {target}")
                commands += [f"set server {target} state maint", f"del server {target}"]
                targets.append((backend, name))
        answers = await self._runtime.execute(commands) if commands else []
        deleted = {
            tuple(c.split()[2].split("/", 1))
            for c, a in zip(commands, answers, strict=True)
            if c.startswith("del server") and a.strip() == "Server deleted."
        }
        for backend, name in targets:
            gone = (backend, name) in deleted or (backend, name) not in busy
            if gone:
                if (backend, name) in deleted:
                    self._metrics.runtime_ops.labels(op="delete").inc()
                servers = self._draining.get(backend, {})
                servers.pop(name, None)
                if not servers:
                    self._draining.pop(backend, None)

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
