"""Applying a decision to HAProxy: a batch of Runtime API operations checked afterwards,
or a config written, checked with `haproxy -c`, installed and loaded.

The reconciler decides what to do; this is how it is done, with the files on disk kept
in step: a runtime batch is followed (in the background) by the config rewritten with
the same servers, so a reload or a restart after a crash starts with them; a reload
first saves the servers' state for the new worker.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from service_loadbalancer.haproxy.certs import remove_unused, write_certificates
from service_loadbalancer.haproxy.check import check_config
from service_loadbalancer.haproxy.drains import Drains
from service_loadbalancer.haproxy.files import (
    atomic_write,
    filter_server_state,
    install,
    write_files,
)
from service_loadbalancer.haproxy.loaded import LOADED_FILE, record_config, record_loaded, runs
from service_loadbalancer.haproxy.plan import Reason, ServerOp
from service_loadbalancer.haproxy.process import HAProxyProcess
from service_loadbalancer.haproxy.render import CERTS_DIR, SERVER_STATE_FILE, Rendered
from service_loadbalancer.haproxy.runtime import (
    RuntimeApi,
    RuntimeApiError,
    check_servers,
    server_commands,
)
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.model import LoadBalancer
from service_loadbalancer.settings import Settings

log = logging.getLogger("service_loadbalancer.apply")


class Applier:
    """Runtime batches, config installs and reloads of one HAProxy. The files on disk are
    written by one caller at a time: the reconciler holds its disk lock around each use,
    from an install to the commit that follows the reload."""

    def __init__(
        self,
        *,
        settings: Settings,
        haproxy: HAProxyProcess,
        runtime: RuntimeApi,
        drains: Drains,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._haproxy = haproxy
        self._runtime = runtime
        self._drains = drains
        self._metrics = metrics
        #: What `haproxy -c` said when it last refused a config.
        self.last_refusal = ""

    async def runtime_batch(
        self,
        ops: tuple[ServerOp, ...],
        args: Mapping[tuple[str, str], str],
        backends: Iterable[str],
    ) -> str | None:
        """Send `ops` in one batch, then check the touched backends with `show servers
        state`; None when HAProxy runs exactly what was planned, else why not."""
        made = server_commands(ops, args)
        if isinstance(made, str):
            return made
        commands, expected = made
        names = set(backends)
        try:
            answers = await self._runtime.execute(commands)
            for command, want, answer in zip(commands, expected, answers, strict=True):
                if answer.strip() != want:
                    return f"{command!r}: {answer.strip()!r}"
            self._drains.applied(ops)
            for op in ops:
                self._metrics.runtime_ops.labels(op=op.kind.value).inc()
            rows = await self._runtime.servers_state(names)
        except RuntimeApiError as err:
            return str(err)
        return check_servers(rows, args, names, self._drains.names())

    async def write_config(self, pieces: Sequence[str]) -> None:
        """Replace the config on disk (pieces joined), off the event loop."""
        await asyncio.to_thread(atomic_write, self._settings.config_path, pieces)
        # HAProxy runs these servers already (the runtime batch came first).
        await asyncio.to_thread(record_config, self._loaded, pieces)

    @property
    def _loaded(self) -> Path:
        return self._settings.run_dir / LOADED_FILE

    async def adopted_runs(self, rendered: Rendered) -> bool:
        """Whether the HAProxy we adopted runs `rendered` already (and the files on disk
        are the same): then the first sync has nothing to reload."""
        if not self._haproxy.adopted:
            return False
        return await asyncio.to_thread(
            runs,
            self._loaded,
            rendered,
            config_path=self._settings.config_path,
            certs_dir=self._settings.run_dir / CERTS_DIR,
        )

    async def load(
        self, rendered: Rendered, model: LoadBalancer, *, check: bool, reasons: Sequence[Reason]
    ) -> bool:
        """Install `rendered` (checked with `haproxy -c` first when `check`) and reload
        HAProxy, or start it, logging why. False when the check refused it: the last good
        config stays on disk and keeps serving."""
        if not await self._install(rendered, check=check):
            return False
        await self._save_server_state(model)
        why = "; ".join(map(str, reasons))
        if self._haproxy.running():
            log.info("reloading HAProxy: %s", why)
            await self._haproxy.reload()
        else:
            log.info("starting HAProxy: %s", why)
            await self._haproxy.start()
        record_loaded(self._loaded, rendered.files)
        self._drains.clear()
        # Only now: the worker that used an old certificate file has loaded the new set.
        remove_unused(self._settings.run_dir / CERTS_DIR, rendered.certificates)
        return True

    async def _install(self, rendered: Rendered, *, check: bool) -> bool:
        config_path = self._settings.config_path
        candidate = config_path.parent / ".candidate"
        shutil.rmtree(candidate, ignore_errors=True)
        # Content-addressed names: writing new certificates never touches the running set.
        write_certificates(self._settings.run_dir / CERTS_DIR, rendered.certificates)
        path = await asyncio.to_thread(write_files, rendered, candidate, config_path.name)
        if check:
            result = await check_config(
                self._settings.haproxy_bin, path, env=self._settings.haproxy_env()
            )
            if not result.ok:
                self.last_refusal = result.output
                self._metrics.validation_failures.inc()
                log.error(
                    "haproxy -c refused the new config; the last good one keeps serving: %s",
                    result.output,
                )
                return False
        install(candidate, rendered, config_path)
        return True

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
        if text.strip() == "1":  # no server yet (the first start): nothing to filter
            atomic_write(path, text)
            return
        await asyncio.to_thread(_write_server_state, path, text, model)


def _write_server_state(path: Path, text: str, model: LoadBalancer) -> None:
    """Filter and write the state file: O(servers), so in a worker thread."""
    keep = {(b.name, s.name) for b in model.backends for s in b.servers}
    atomic_write(path, filter_server_state(text, keep))
