"""Remote clusters (`--remote-cluster`): each one read by its own `KubeSource` into a store
of its own, which the local store journals as endpoint changes (store.add_remote).

Why it looks like this:

- **The same source, another instance.** A remote cluster is read exactly as the local
  one (list+watch, 410, backoff, 403 reported), with its own kubeconfig and credentials,
  only fewer kinds: Services, EndpointSlices (or Endpoints on old clusters) and, where the
  cluster serves the Multi-Cluster Services API, ServiceExports. Translation reads from
  them only what global Services need (global_services.py).
- **A remote cluster never holds back the local one.** Its store is ready from the start
  (nothing waits for its first list), its failures are not /healthz failures (they are
  shown there as detail, and in metrics labelled `cluster`), and every error of it is
  caught here, logged, and retried: no exception of a remote cluster reaches the
  controller's task group.
- **An outage keeps the last endpoints for a while.** While its API is out of reach the
  cluster's endpoints are most likely still serving (an API server outage is not a pod
  outage; passive health and retries skip the dead ones), so they are kept for
  `--remote-stale-after` seconds. A cluster that answers but refuses us wholly (401: a
  revoked token; or 403 on every request for its EndpointSlices) is the same: its
  endpoints cannot be refreshed while its pods' addresses go to new pods. A 403 on
  another kind only (ServiceExports) is not: the endpoints stay fresh. After that time
  they are removed (a plain store change: the fast path drains those servers) and the
  source starts over, so they come back with the next successful list, not with a watch
  from a version the cluster may have forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import aiohttp

from service_loadbalancer.kube.client import ConfigError, connect
from service_loadbalancer.kube.watch import RESOURCES
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.settings import RemoteCluster
from service_loadbalancer.sources.discovery import served, served_kinds
from service_loadbalancer.sources.kube import KubeSource
from service_loadbalancer.store import Store
from service_loadbalancer.waits import cancel_and_wait

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

#: What a remote cluster contributes (EndpointSlice becomes Endpoints where not served).
REMOTE_KINDS = ("Service", "EndpointSlice")
#: The kinds its endpoints come from: 403 on every request for them starts the stale clock.
ENDPOINT_KINDS = ("EndpointSlice", "Endpoints")
EXPORT = RESOURCES["ServiceExport"]
#: The longest watch request to a remote cluster (see RemoteClusterSource).
MAX_WATCH_TIMEOUT = 60
#: Wait before connecting again when the kubeconfig itself is unusable.
CONFIG_RETRY = 30.0


async def remote_kinds(api: ApiClient, log: logging.Logger) -> list[str]:
    """The kinds to read from a remote cluster: REMOTE_KINDS as served, plus ServiceExport
    where the cluster serves it (a list of one answers 404 where the CRD is not
    installed). Retries until the cluster answers."""
    kinds = await served_kinds(api, REMOTE_KINDS)
    if await served(api, EXPORT.path(""), limit=True):
        return [*kinds, "ServiceExport"]  # 401/403: reported by the list that follows
    log.info("no %s served: only lb.global marks Services as shared", EXPORT.group_version)
    return kinds


class RemoteClusterSource:
    """One remote cluster: its store (attach it to the local one), `run()` (never raises
    but CancelledError) and `state()` for /healthz."""

    def __init__(
        self,
        cluster: RemoteCluster,
        *,
        namespaces: Sequence[str] = (),
        stale_after: float = 300.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.name = cluster.name
        #: Ready from the start: nothing waits for a remote cluster's first list.
        self.store = Store(())
        self._namespaces = tuple(namespaces)
        self._stale_after = stale_after
        self._metrics = metrics
        self._clock = clock
        self._log = logging.getLogger(f"service_loadbalancer.cluster.{cluster.name}")
        self._source: KubeSource | None = None
        self._kinds: list[str] = []
        #: Why the cluster cannot be read at all (a kubeconfig problem), else "".
        self._error = ""
        #: True once its endpoints were removed for staleness, until a list brings them back.
        self._expired = False
        self._check_every = max(min(1.0, stale_after / 10), 0.05)
        #: Watches end (and resume) at least this often: a watch cut by a partition
        #: without a reset then fails within about 2.5 times this, well inside the
        #: default stale time, instead of hanging for up to 10 minutes.
        self._watch_timeout = int(min(MAX_WATCH_TIMEOUT, max(10, stale_after / 5)))

    # ------------------------------------------------------------------ state

    def unreachable_for(self) -> float | None:
        """Seconds its API has been failing, None while it answers (or before a source)."""
        since = self._source.failing_since() if self._source is not None else None
        return None if since is None else max(self._clock() - since, 0.0)

    def unauthorized_for(self) -> float | None:
        """Seconds it has been refusing us wholly (a 401, or a 403 on every request for
        its endpoints: a revoked token, a removed RoleBinding), None otherwise. Its
        endpoints can no longer be refreshed, as in an outage, while its pods' addresses
        may go to other pods: the same stale clock runs."""
        source = self._source
        kinds = [k for k in self._kinds if k in ENDPOINT_KINDS]
        since = source.refused_since(kinds) if source is not None else None
        return None if since is None else max(self._clock() - since, 0.0)

    def stale_for(self) -> float | None:
        """Seconds its endpoints have not been refreshable (unreachable or unauthorized,
        the longer), None while they are."""
        times = [t for t in (self.unreachable_for(), self.unauthorized_for()) if t is not None]
        return max(times) if times else None

    @property
    def up(self) -> bool:
        """Listed (but what it may not list), answering, and not refusing us wholly."""
        source = self._source
        if source is None or source.failing_since() is not None:
            return False
        if self.unauthorized_for() is not None:
            return False
        return source.listed or bool(source.problems())

    @property
    def expired(self) -> bool:
        return self._expired

    def state(self) -> str:
        """One line for /healthz."""
        down = self.unreachable_for()
        if self._error:
            return f"cannot be read: {self._error}"
        if down is not None and self._expired:
            return (
                f"unreachable for {down:.0f} s: its endpoints were removed "
                "(back with the next successful list)"
            )
        if down is not None:
            return (
                f"unreachable for {down:.0f} s: keeping its last endpoints for "
                f"{self._stale_after:g} s (--remote-stale-after)"
            )
        refused = self.unauthorized_for()
        if refused is not None:
            why = "; ".join(self._source.problems() if self._source is not None else [])
            kept = (
                "its endpoints were removed (back with the next successful list)"
                if self._expired
                else f"keeping its last endpoints for {self._stale_after:g} s "
                "(--remote-stale-after)"
            )
            return f"unauthorized for {refused:.0f} s ({why}): {kept}"
        if not self.up:
            return "connecting"
        problems = self._source.problems() if self._source is not None else []
        return "ok" if not problems else "incomplete: " + "; ".join(problems)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Read the cluster until cancelled; every failure is logged and retried."""
        while True:
            try:
                await self._connect_and_follow()
            except asyncio.CancelledError:
                raise
            except ConfigError as err:
                self._error = str(err)
                self._log.error("remote cluster %s: %s; retrying", self.name, err)
            except Exception as err:  # never take the controller down: log, retry
                self._error = f"{type(err).__name__}: {err}"
                self._log.exception("remote cluster %s failed; retrying", self.name)
            self._report()
            await asyncio.sleep(CONFIG_RETRY * random.uniform(0.5, 1.0))

    async def _connect_and_follow(self) -> None:
        units = (len(REMOTE_KINDS) + 2) * max(len(self._namespaces), 1)
        api = await connect(
            kubeconfig=self.cluster.kubeconfig,
            context=self.cluster.context,
            in_cluster=False,
            watches=units,
        )
        try:
            self._kinds = await remote_kinds(api, self._log)
            self._error = ""
            self._log.info("remote cluster %s: reading %s", self.name, ", ".join(self._kinds))
            while True:
                self._source = KubeSource(
                    api=api,
                    kinds=self._kinds,
                    store=self.store,
                    namespaces=self._namespaces,
                    logger=self._log,
                    on_restart=self._count_restart,
                    name=f"source:cluster:{self.name}",
                    watch_timeout=self._watch_timeout,
                )
                await self._follow(self._source)
        finally:
            await api.close()

    async def _follow(self, source: KubeSource) -> None:
        """Run `source` until its endpoints go stale: then remove them and return (the
        caller starts a fresh source, which lists)."""
        task = asyncio.create_task(source.run(), name=f"informers:cluster:{self.name}")
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self._check_every)
                if self._expired and self.up:
                    self._expired = False
                    self._log.info("remote cluster %s: reachable again, endpoints back", self.name)
                self._report()
                down = self.stale_for()
                if down is not None and down >= self._stale_after and not self._expired:
                    self._expire(down)
                    return
            task.result()  # a source that ended by itself: raise what it raised
        finally:
            await cancel_and_wait(task)

    def _expire(self, down: float) -> None:
        self._expired = True
        self._log.warning(
            "remote cluster %s %s for %.0f s (--remote-stale-after %g): removing "
            "its endpoints until it answers a list again",
            self.name,
            "unreachable" if self.unreachable_for() is not None else "unauthorized",
            down,
            self._stale_after,
        )
        self.store.replace_many({kind: [] for kind in self._kinds})
        self._report()

    def _count_restart(self, action: str) -> None:
        if self._metrics is not None:
            self._metrics.remote_watch_restarts.labels(cluster=self.name, action=action).inc()

    def _report(self) -> None:
        if self._metrics is None:
            return
        self._metrics.remote_up.labels(cluster=self.name).set(1 if self.up else 0)
        self._metrics.remote_unreachable.labels(cluster=self.name).set(
            self.unreachable_for() or 0.0
        )
        self._metrics.remote_expired.labels(cluster=self.name).set(1 if self._expired else 0)


#: `render` and `check` wait this long for a remote cluster, then go on without it.
ONCE_TIMEOUT = 10.0


async def load_remote_once(cluster: RemoteCluster, *, namespaces: Sequence[str]) -> Store | None:
    """One list of a remote cluster (for `render` and `check`), or None, with a warning,
    when it cannot be read: a remote cluster never fails the local config."""
    log = logging.getLogger(f"service_loadbalancer.cluster.{cluster.name}")
    store = Store(())
    try:
        async with asyncio.timeout(ONCE_TIMEOUT):
            api = await connect(
                kubeconfig=cluster.kubeconfig, context=cluster.context, in_cluster=False
            )
            try:
                kinds = await remote_kinds(api, log)
                source = KubeSource(api=api, kinds=kinds, store=store, namespaces=namespaces)
                await source.load_once()
            finally:
                await api.close()
    except (ConfigError, TimeoutError, aiohttp.ClientError) as err:
        log.warning("remote cluster %s left out: %s", cluster.name, err or type(err).__name__)
        return None
    return store


def remote_sources(
    clusters: Sequence[RemoteCluster],
    *,
    namespaces: Sequence[str],
    stale_after: float,
    metrics: Metrics | None,
) -> list[RemoteClusterSource]:
    return [
        RemoteClusterSource(c, namespaces=namespaces, stale_after=stale_after, metrics=metrics)
        for c in clusters
    ]


def health_detail(remotes: Sequence[RemoteClusterSource]) -> str:
    """The remote clusters' states, one line each, for the /healthz body (never its code)."""
    return "".join(f"\nremote cluster {r.name}: {r.state()}" for r in remotes)
