"""The long-running controller (`run`): wires a source, the store, the reconciler, the
supervised HAProxy, the status server and (in a cluster) Events, and stops them all
together.

Every background task is named and runs in one TaskGroup: if one fails the others are
cancelled and HAProxy is stopped, rather than serving on with a dead part.

SIGTERM (or SIGINT) stops the load balancer without losing a request it accepted:
/healthz answers 503 at once, so that the readiness probe takes the node out, while
everything keeps serving (and following changes) for --shutdown-grace seconds; then
HAProxy is soft-stopped (listeners closed, requests in flight finished, at most
--drain-timeout seconds) and the controller exits. A second signal cuts the grace short.

A controller that starts on a run directory where an earlier one left HAProxy serving
(it crashed, or was killed) adopts that master instead of starting another: traffic
never notices that the controller went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from service_loadbalancer.events import EventRecorder
from service_loadbalancer.haproxy.health import HealthWatcher
from service_loadbalancer.haproxy.process import HAProxyProcess
from service_loadbalancer.haproxy.render import RUNTIME_SOCKET
from service_loadbalancer.haproxy.runtime import RuntimeApi
from service_loadbalancer.kube.client import KubeOptions
from service_loadbalancer.livecfg import LiveConfig
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.publish.tasks import publishing_tasks
from service_loadbalancer.reconciler import Reconciler
from service_loadbalancer.remote_clusters import health_detail, remote_sources
from service_loadbalancer.service_load import ServiceLoad
from service_loadbalancer.settings import Settings
from service_loadbalancer.sources import Source, open_source
from service_loadbalancer.status import start_status_server
from service_loadbalancer.store import Store
from service_loadbalancer.waits import cancel_and_wait, wait_event

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

log = logging.getLogger("service_loadbalancer")

#: Seconds the tasks get to end once cancelled at shutdown before they are reported as stuck.
_TASKS_STOP = 10.0


async def run(settings: Settings, kube: KubeOptions, live: LiveConfig | None = None) -> int:
    """Serve until SIGTERM or SIGINT: every task is named and supervised; if one
    fails the others are cancelled and HAProxy is stopped."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.config_path.parent.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    # Remote clusters only add endpoints; their state is detail on /healthz, never a failure.
    remotes = remote_sources(
        settings.remote_clusters,
        namespaces=settings.namespaces,
        stale_after=settings.remote_stale_after,
        metrics=metrics,
    )
    active: Source | None = None
    reconciler: Reconciler | None = None
    # Passive health: HAProxy's messages about servers going DOWN (see haproxy/health.py).
    # The reconciler reads them too, once it exists (its guard follows DNS changes).
    runtime = RuntimeApi(socket_path=settings.run_dir / RUNTIME_SOCKET)
    watcher = HealthWatcher(runtime=runtime, metrics=metrics)
    # Per-Service load on /metrics, read from HAProxy only when scraped.
    service_load = ServiceLoad(runtime=runtime, metrics=metrics)
    line_readers: list[Callable[[str], None]] = [watcher.on_line]

    def on_stderr_line(line: str) -> None:
        for read in line_readers:
            read(line)

    haproxy = HAProxyProcess(
        haproxy_bin=settings.haproxy_bin,
        config_path=settings.config_path,
        run_dir=settings.run_dir,
        env=settings.haproxy_env(),
        on_restart=metrics.haproxy_restarts.inc,
        on_stderr_line=on_stderr_line,
    )

    shutting_down = False

    async def health() -> tuple[bool, str]:
        if shutting_down:
            return False, "shutting down"
        if active is None or reconciler is None:
            return False, "connecting to the Kubernetes API"
        if active.problems():
            return False, "not ready: " + "; ".join(active.problems())
        if not reconciler.synced.is_set():
            return False, "waiting for the first complete sync"
        if not await haproxy.serving():
            return False, "HAProxy is not serving"
        return True, "ok" + health_detail(remotes)

    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    # Up before the source: /healthz answers (503) while the API is still out of reach.
    runner = await start_status_server(
        host=settings.bind_address,
        port=settings.healthz_port,
        health=live.health(health) if live else health,
        registry=metrics.registry,
        refresh=service_load.refresh,
    )
    # Before the source, so that a stop while connecting stops an adopted HAProxy too.
    await haproxy.adopt()
    try:
        active = await _until_stopped(open_source(settings, kube, metrics=metrics), stop)
    finally:
        if active is None:
            with contextlib.suppress(Exception):
                await haproxy.stop(drain=settings.drain_timeout)
            await runner.cleanup()
    if active is None:
        return 0
    store = active.store
    for remote in remotes:
        store.add_remote(remote.name, remote.store)
    reconciler = Reconciler(store=store, settings=settings, haproxy=haproxy, metrics=metrics)
    line_readers.append(reconciler.on_haproxy_line)
    log.info(
        "serving %s: HTTP on :%d, stats on :%d, healthz on :%d",
        active.description,
        settings.http_port,
        settings.stats_port,
        settings.healthz_port,
    )
    graceful = False
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(active.run(), name=active.name),
                group.create_task(reconciler.run(), name="reconciler"),
                group.create_task(_supervise(haproxy, reconciler), name="haproxy-supervisor"),
                group.create_task(watcher.run(), name="haproxy-health"),
                *(group.create_task(r.run(), name=f"remote:{r.name}") for r in remotes),
            ]
            if live is not None:
                run_live = live.run(reconciler.update_settings, metrics)
                tasks.append(group.create_task(run_live, name="live-config"))
            if active.api is not None:
                events = _event_recorder(active.api, reconciler, store)
                tasks.append(group.create_task(events.run(), name="events"))
                publishing = publishing_tasks(
                    api=active.api,
                    settings=settings,
                    reconciler=reconciler,
                    store=store,
                    metrics=metrics,
                    env=os.environ,
                )
                tasks.extend(group.create_task(start(), name=name) for name, start in publishing)
            await stop.wait()
            shutting_down = True
            log.info(
                "stopping: /healthz answers 503, serving on for %g s (--shutdown-grace)",
                settings.shutdown_grace,
            )
            await wait_event(hurry, settings.shutdown_grace)
            # Nothing may start or reload HAProxy behind the soft stop.
            for task in tasks:
                task.cancel()
            graceful = not hurry.is_set()
            await _report_stuck(tasks, within=_TASKS_STOP)
    finally:
        shutting_down = True
        with contextlib.suppress(Exception):
            await haproxy.stop(drain=settings.drain_timeout if graceful else 0.0)
        # Last: /healthz keeps answering 503 while HAProxy finishes its requests.
        await runner.cleanup()
        await active.aclose()
    log.info("stopped")
    return 0


async def _report_stuck(tasks: list[asyncio.Task[Any]], *, within: float) -> None:
    """Log each task that is still running `within` seconds after it was cancelled, and
    where it waits: the TaskGroup waits for it, so HAProxy is not stopped and the
    controller does not exit. That is a bug (see waits.py), and this says where."""
    _, pending = await asyncio.wait(tasks, timeout=within)
    for task in pending:
        where = io.StringIO()
        task.print_stack(file=where)
        log.error(
            "task %s still runs %g s after it was cancelled; stopping waits for it:\n%s",
            task.get_name(),
            within,
            where.getvalue().rstrip(),
        )


async def _until_stopped(work: Coroutine[Any, Any, Source], stop: asyncio.Event) -> Source | None:
    """`work`'s result, or None if `stop` is set first (SIGTERM while connecting)."""
    task = asyncio.create_task(work, name="source:connect")
    stopped = asyncio.create_task(stop.wait(), name="stop")
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not task.done():
        await cancel_and_wait(task)
        return None
    return task.result()


def _event_recorder(api: ApiClient, reconciler: Reconciler, store: Store) -> EventRecorder:
    """Events on the objects the reconciler reports problems for (it knows nothing of it)."""
    return EventRecorder(
        api=api,
        problems=lambda: reconciler.problems,
        lookup=store.get,
        host=os.environ.get("NODE_NAME") or socket.gethostname(),
    )


async def _supervise(haproxy: HAProxyProcess, reconciler: Reconciler) -> None:
    """Restart HAProxy if it dies, once it has been started by the first sync."""
    await reconciler.synced.wait()
    await haproxy.supervise(before_restart=reconciler.flush)
