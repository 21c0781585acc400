"""The Kubernetes API source: list+watch each (kind, namespace) into the store.

Why it looks like this:

- **The transport is `kube/client.py`'s** (kubeconfig, auth, raw requests); objects stay the
  plain JSON dicts (`RawObject`), exactly as the file source gives them.
- **The decisions are data.** What a 410, a 403 or a dropped stream means, and how long to
  wait, is decided by the pure functions in `kube/watch.py`; this module only moves bytes.
- **A failed list never empties anything.** Pages are collected first and handed to the
  store in one `replace` only when the last page has arrived; a failure midway leaves the
  cache (and HAProxy) as they were. The same holds for a relist after 410: objects gone in
  the gap are deleted and the rest updated, in one step, so no snapshot is half old.
- **One watch per namespace** with `--namespace a,b` (RBAC may grant only those), one
  cluster-wide watch otherwise. The store waits for each before the first render.
- **401/403 is not fatal.** It is logged once per state change with the permission that is
  missing, shown on /healthz, and retried slowly; a unit that has never listed stops
  holding back the first render (it has no objects to lose), so the rest is served.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import orjson

from service_loadbalancer.kube.client import (
    CONNECT_TIMEOUT,
    ConfigError,
    KubeOptions,
    connect,
    request,
    request_json,
)
from service_loadbalancer.kube.objects import CLUSTER_SCOPED_KINDS, RawObject, key_of, slim
from service_loadbalancer.kube.watch import (
    RESOURCES,
    Action,
    Backoff,
    EventType,
    Failure,
    Resource,
    classify,
    forbidden_message,
    parse_event,
    resource_version,
)
from service_loadbalancer.sources.discovery import served_kinds
from service_loadbalancer.store import Store

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

# DEFAULT_KINDS, ConfigError and KubeOptions live in kube/client.py. Which kinds a cluster
# serves: discovery.py.
__all__ = ["KubeSource"]

_LOG = logging.getLogger(__name__)

PAGE_SIZE: Final = 500
#: The server ends each watch after timeoutSeconds; like client-go we pick it at random in
#: [WATCH_TIMEOUT, 2 * WATCH_TIMEOUT] so that many watchers do not reconnect together.
WATCH_TIMEOUT: Final = 300


class _Failed(Exception):
    def __init__(self, failure: Failure, verb: str) -> None:
        super().__init__(failure.reason)
        self.failure = failure
        self.verb = verb


@dataclass
class _Unit:
    """One informer: one kind in one namespace ("" = all)."""

    resource: Resource
    namespace: str
    version: str = ""
    attempt: int = 0
    listed: bool = False
    forbidden: str = ""
    #: When its requests began to fail (monotonic), None while the server answers.
    failing_since: float | None = None
    #: When the server began to answer its requests 401/403 (monotonic), None while
    #: they are allowed; and whether the last such answer was a 401 (credentials refused).
    refused_since: float | None = None
    unauthenticated: bool = False
    rng: random.Random = field(default_factory=random.Random)

    def __str__(self) -> str:
        return f"{self.resource.plural} in {self.namespace or 'all namespaces'}"

    def answered(self) -> None:
        """The server answered a request, and allowed it: no failure clock runs."""
        self.failing_since = self.refused_since = None
        self.unauthenticated = False


class KubeSource:
    """Keeps the store equal to what the API server has, for the given kinds and namespaces.

    `problems()` names every permission that is missing right now (for /healthz). The source
    owns `api`: `aclose()` closes it. Without a `store` it makes its own, which is ready once
    every kind has been listed in every namespace.
    """

    def __init__(
        self,
        *,
        api: ApiClient,
        kinds: Sequence[str],
        store: Store | None = None,
        namespaces: Sequence[str] = (),
        backoff: Backoff | None = None,
        page_size: int = PAGE_SIZE,
        watch_timeout: int = WATCH_TIMEOUT,
        logger: logging.Logger | None = None,
        on_restart: Callable[[str], None] | None = None,
        name: str = "source:kube",
    ) -> None:
        self.name = name
        #: The cluster's client: the source reads through it, and Events about the objects
        #: read go through it too.
        self.api: ApiClient = api
        #: Called with the failure's action (relist, retry, forbidden) whenever a unit
        #: has to list or watch again; the controller counts these in its metrics.
        self._on_restart = on_restart
        self._kinds = tuple(kinds)
        self._namespaces = tuple(namespaces) or ("",)
        self._store = store if store is not None else Store(kinds, namespaces=self._namespaces)
        # A cluster-scoped kind (IngressClass) is one cluster-wide unit in every case.
        self._units = [
            _Unit(RESOURCES[kind], namespace)
            for kind in kinds
            for namespace in (("",) if kind in CLUSTER_SCOPED_KINDS else self._namespaces)
        ]
        self._backoff = backoff or Backoff()
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._log = logger or _LOG

    @classmethod
    async def open(
        cls,
        options: KubeOptions,
        *,
        namespaces: Sequence[str] = (),
        on_restart: Callable[[str], None] | None = None,
    ) -> KubeSource:
        """A source for the cluster `options` point to, reading the kinds it serves of
        `options.kinds` (see `served_kinds`); ConfigError if there is no usable cluster
        configuration."""
        api = await connect(
            kubeconfig=options.kubeconfig,
            context=options.context,
            in_cluster=options.in_cluster,
            watches=(len(options.kinds) + 1) * len(tuple(namespaces) or ("",)),
        )
        try:
            kinds = await served_kinds(api, options.kinds)
        except BaseException:  # cancelled while the API is out of reach: close the pool
            await api.close()
            raise
        return cls(api=api, kinds=kinds, namespaces=namespaces, on_restart=on_restart)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def description(self) -> str:
        where = ", ".join(namespace for namespace in self._namespaces if namespace)
        return f"{', '.join(self._kinds)} from the Kubernetes API ({where or 'all namespaces'})"

    async def load_once(self) -> None:
        """List every unit once (for `render` and `check`); the first failure raises
        ConfigError with its reason."""
        for unit in self._units:
            try:
                await self._list(unit)
            except _Failed as failed:
                message = forbidden_message(
                    verb="list", resource=unit.resource, namespace=unit.namespace,
                    failure=failed.failure,
                )  # fmt: skip
                raise ConfigError(message) from None
            except (aiohttp.ClientError, TimeoutError) as err:
                raise ConfigError(f"cannot list {unit}: {err}") from None

    def problems(self) -> list[str]:
        return [unit.forbidden for unit in self._units if unit.forbidden]

    def failing_since(self) -> float | None:
        """Since when (time.monotonic()) some list or watch has been failing (no answer,
        a 5xx, a 429) without the server answering it since; None while every one is
        answered (a 401/403 is an answer: problems() reports it). A remote cluster keeps
        its endpoints for a while on this (remote_clusters.py)."""
        times = [unit.failing_since for unit in self._units if unit.failing_since is not None]
        return min(times) if times else None

    def refused_since(self, kinds: Collection[str]) -> float | None:
        """Since when (time.monotonic()) the server has refused us wholly: a 401 on some
        request (our credentials are not accepted, so nothing can be read; since the
        first), or a 403 on every unit of `kinds` (since the last of them began); None
        otherwise. A 403 on other kinds only (ServiceExports not allowed) is never
        counted: what `kinds` holds is still kept up to date."""
        refused = [
            u.refused_since
            for u in self._units
            if u.unauthenticated and u.refused_since is not None
        ]
        if refused:
            return min(refused)
        times = [u.refused_since for u in self._units if u.resource.kind in kinds]
        if not times or None in times:
            return None
        return max(t for t in times if t is not None)

    @property
    def listed(self) -> bool:
        """Whether every kind has been listed at least once."""
        return all(unit.listed for unit in self._units)

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        """Inform every unit until `stop` is set (or forever, until cancelled)."""
        async with asyncio.TaskGroup() as group:
            informers = [
                group.create_task(
                    self._inform(unit),
                    name=f"informer:{unit.resource.plural}:{unit.namespace or '*'}",
                )
                for unit in self._units
            ]
            if stop is not None:
                await stop.wait()
                for informer in informers:
                    informer.cancel()

    async def aclose(self) -> None:
        await self.api.close()

    async def _inform(self, unit: _Unit) -> None:
        while True:
            try:
                if not unit.version:
                    await self._list(unit)
                if await self._watch(unit):
                    continue  # the server ended the watch (timeoutSeconds): resume at once
                # Ended without a single event (not even a bookmark): something between
                # us and the server cuts streams; do not spin, back off as for a drop.
                failure, verb = classify(0, error="watch ended without events"), "watch"
            except _Failed as failed:
                failure, verb = failed.failure, failed.verb
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                failure = classify(0, error=str(err) or type(err).__name__)
                verb = "watch" if unit.version else "list"
            unit.attempt += 1
            self._failed(unit, failure, verb)
            delay = self._backoff.delay(unit.attempt, failure.action, unit.rng)
            await asyncio.sleep(max(delay, min(failure.retry_after, self._backoff.forbidden_cap)))

    def _failed(self, unit: _Unit, failure: Failure, verb: str) -> None:
        if failure.action is Action.FORBIDDEN:
            unit.failing_since = None  # the server answered: reachable, if not allowed
            if unit.refused_since is None:
                unit.refused_since = time.monotonic()
            unit.unauthenticated = failure.code == 401
        elif unit.failing_since is None:
            unit.failing_since = time.monotonic()
        if self._on_restart is not None:
            self._on_restart(failure.action.value)
        if failure.action is Action.RELIST:
            self._log.info(
                "%s: resourceVersion %s expired (%s), listing again",
                unit,
                unit.version or "(list)",
                failure.reason,
            )
            unit.version = ""
        elif failure.action is Action.FORBIDDEN:
            message = forbidden_message(
                verb=verb, resource=unit.resource, namespace=unit.namespace, failure=failure
            )
            if message != unit.forbidden:
                self._log.error("%s; keeping what was listed, retrying", message)
            unit.forbidden = message
            unit.version = ""  # permissions changed: start over with a list
            # Never listed: it has nothing to lose, so it stops holding back the others.
            self._store.mark_listed(unit.resource.kind, namespace=unit.namespace)
        elif unit.attempt == 1 or unit.attempt % 10 == 0:
            self._log.warning(
                "%s: %s %s (attempt %d), keeping the cache and retrying",
                unit,
                verb,
                failure.reason or failure.code,
                unit.attempt,
            )

    async def _list(self, unit: _Unit) -> None:
        """All pages, then one atomic replace. A continue token that expired (410) makes
        the whole list start over, through RELIST."""
        items: list[RawObject] = []
        token = ""
        version = ""
        kind, api_version = unit.resource.kind, unit.resource.group_version
        while True:
            query = [("limit", str(self._page_size))]
            if token:
                query.append(("continue", token))
            status, body = await request_json(
                self.api, "GET", unit.resource.path(unit.namespace), query=query
            )
            if not 200 <= status < 300 or not isinstance(body, dict):
                raise _Failed(classify(status, body if isinstance(body, dict) else None), "list")
            for item in body.get("items") or []:
                # Items of a typed list carry neither kind nor apiVersion.
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", api_version)
                items.append(slim(item))
            meta = body.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            token = str(meta.get("continue") or "")
            if not token:
                break
        self._store.replace(kind, items, namespace=unit.namespace)
        if unit.forbidden:
            self._log.info("%s: allowed again", unit)
        if not unit.listed or unit.forbidden:
            self._log.info("%s: listed %d objects at version %s", unit, len(items), version)
        unit.forbidden = ""
        unit.listed = True
        unit.attempt = 0
        unit.answered()
        unit.version = version

    async def _watch(self, unit: _Unit) -> int:
        """One watch request, from unit.version, applying events until the server ends it;
        how many events it brought."""
        timeout = self._watch_timeout + unit.rng.randint(0, self._watch_timeout)
        query = [
            ("watch", "true"),
            ("resourceVersion", unit.version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout)),
        ]
        # The server answers a watch with its headers at once, then streams; a request
        # that gets no headers in time (a connection the server dropped without closing,
        # as around an API server restart) is a failure to retry, not a 5-minute wait.
        async with asyncio.timeout(CONNECT_TIMEOUT):
            response = await request(
                self.api,
                "GET",
                unit.resource.path(unit.namespace),
                query=query,
                limits=aiohttp.ClientTimeout(
                    total=timeout + 30, connect=CONNECT_TIMEOUT, sock_connect=CONNECT_TIMEOUT
                ),
            )
        async with response:
            if response.status != 200:
                try:
                    body = orjson.loads(await response.read())
                except ValueError:
                    body = None
                raise _Failed(
                    classify(
                        response.status,
                        body if isinstance(body, dict) else None,
                        retry_after=response.headers.get("Retry-After", ""),
                    ),
                    "watch",
                )
            unit.answered()
            buffer = b""
            events = 0
            # Not readline(): aiohttp limits a line to 64 kB, and an object can be larger.
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        events += 1
                        self._apply(unit, orjson.loads(line))
            return events

    def _apply(self, unit: _Unit, data: Any) -> None:
        if not isinstance(data, dict):
            return
        event = parse_event(data, kind=unit.resource.kind, api_version=unit.resource.group_version)
        if event is None:
            self._log.warning("%s: ignoring a watch line that is not an event", unit)
            return
        if event.type is EventType.ERROR:
            raise _Failed(classify(200, event.object), "watch")
        unit.attempt = 0
        version = resource_version(event.object)
        if event.type is EventType.DELETED:
            self._store.delete(key_of(event.object))
        elif event.type is not EventType.BOOKMARK:
            self._store.upsert(slim(event.object))
        if version:
            unit.version = version
