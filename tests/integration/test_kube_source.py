"""KubeSource in-process against the fake API server (real HTTPS, real kubeconfig loading
by kubernetes_asyncio): the store's exact content after relists, expired continue tokens
mid-list, a forbidden kind that is only watched on request (Secrets), namespaces, and the
source as `open_source` gives it (the Source shape)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fake_apiserver import FakeAPIServer
from harness import wait_for
from objects import service, slices

from service_loadbalancer.kube.client import ConfigError, KubeOptions, connect
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.settings import Settings
from service_loadbalancer.sources import Source, open_source
from service_loadbalancer.sources.discovery import served_kinds
from service_loadbalancer.sources.kube import KubeSource
from service_loadbalancer.store import Store


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeAPIServer]:
    server = FakeAPIServer(tmp_path, bookmark_interval=0.2)
    await server.start()
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def run_source(
    api: FakeAPIServer, tmp_path: Path, kinds: list[str], namespaces: tuple[str, ...] = ("",),
    page_size: int = 500,
) -> AsyncIterator[tuple[KubeSource, Store]]:  # fmt: skip
    client = await connect(
        kubeconfig=api.kubeconfig(tmp_path / "kubeconfig"), context=None, in_cluster=True
    )
    async with client:
        served = await served_kinds(client, kinds)
        store = Store(served, namespaces=namespaces)
        source = KubeSource(
            api=client, store=store, kinds=served, namespaces=namespaces, page_size=page_size
        )
        task = asyncio.create_task(source.run(), name="source")
        try:
            yield source, store
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


def api_state(api: FakeAPIServer, kinds: set[str]) -> dict[ObjectKey, str]:
    return {
        ObjectKey(obj["kind"], ns, name): obj["metadata"]["resourceVersion"]
        for (_, ns, name), obj in api.objects.items()
        if obj["kind"] in kinds
    }


def store_state(store: Store) -> dict[ObjectKey, str]:
    return {k: v["metadata"]["resourceVersion"] for k, v in store.snapshot().objects.items()}


async def test_store_equals_the_api_after_changes_gaps_and_410(
    api: FakeAPIServer, tmp_path: Path
) -> None:
    for i in range(7):
        await api.create(service(f"s{i}", 80))
        await api.create(slices(f"s{i}", [("127.0.0.1", 1)])[0])
    async with run_source(api, tmp_path, ["Service", "EndpointSlice"], page_size=3) as (
        _source,
        store,
    ):
        kinds = {"Service", "EndpointSlice"}

        async def same() -> bool:
            return store.ready and store_state(store) == api_state(api, kinds)

        await wait_for(same, what="the first list")
        await api.update(service("s1", 81))
        await api.delete("Service", "default", "s2")
        await wait_for(same, what="watch events applied")
        # A gap with changes, then 410: exactly the API's state, nothing stale or doubled.
        await api.stop()
        await api.delete("Service", "default", "s3")
        await api.create(service("s9", 80))
        await api.update(service("s4", 82))
        await api.expire()
        await api.start()
        await wait_for(same, what="the relist after 410")
        assert sum(1 for k in store.snapshot().objects if k.name == "s9") == 1


async def test_expired_continue_token_restarts_the_list(api: FakeAPIServer, tmp_path: Path) -> None:
    for i in range(10):
        await api.create(service(f"s{i}", 80))
    expired: list[str] = []

    async def expire_on_second_page(request: web.Request) -> None:
        if "continue=" in request.path_qs and not expired:
            expired.append(request.path_qs)
            await api.delete("Service", "default", "s0")  # changes the list meanwhile
            await api.expire()

    api.hooks.append(expire_on_second_page)
    async with run_source(api, tmp_path, ["Service"], page_size=4) as (_source, store):

        async def exact() -> bool:
            return store.ready and store_state(store) == api_state(api, {"Service"})

        await wait_for(exact, what="a complete list after the expired continue token")
    assert expired
    lists = [r for r in api.requests if "limit=4" in r and "continue=" not in r]
    assert len(lists) >= 2  # the list started over


async def test_forbidden_secrets_are_reported_and_the_rest_is_ready(
    api: FakeAPIServer, tmp_path: Path
) -> None:
    """Secrets are watched only when asked; a 403 on them names the permission, holds
    nothing back, and clears when RBAC is fixed."""
    await api.create(service("web", 80))
    api.forbidden.add(("secrets", "*"))
    async with run_source(api, tmp_path, ["Service", "EndpointSlice", "Secret"]) as (source, store):

        async def reported() -> bool:
            return store.ready and any("cannot list secrets" in p for p in source.problems())

        await wait_for(reported, what="the 403 on secrets")
        assert ObjectKey("Service", "default", "web") in store.snapshot().objects
        api.forbidden.clear()
        secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret",
                                  "metadata": {"name": "tls", "namespace": "default"}}  # fmt: skip
        await api.create(secret)

        async def recovered() -> bool:
            return not source.problems() and ObjectKey("Secret", "default", "tls") in (
                store.snapshot().objects
            )

        await wait_for(recovered, what="recovery after RBAC is fixed")
    # Without Secret in the kinds, no request for secrets is ever made.
    api.requests.clear()
    async with run_source(api, tmp_path, ["Service", "EndpointSlice"]) as (source, store):

        async def ready() -> bool:
            return store.ready

        await wait_for(ready, what="ready")
    assert not any("secrets" in r for r in api.requests)


async def test_relist_of_one_namespace_keeps_the_others(api: FakeAPIServer, tmp_path: Path) -> None:
    for ns in ("a", "b"):
        await api.create(service("web", 80, namespace=ns))
    await api.create(service("other", 80, namespace="c"))  # not served
    async with run_source(api, tmp_path, ["Service"], namespaces=("a", "b")) as (_source, store):

        async def both() -> bool:
            keys = set(store.snapshot().objects)
            return store.ready and keys == {
                ObjectKey("Service", "a", "web"), ObjectKey("Service", "b", "web")
            }  # fmt: skip

        await wait_for(both, what="both namespaces")
        api.forbidden.add(("services", "b"))  # b's relist fails: b keeps its cache
        await api.stop()
        await api.delete("Service", "a", "web")
        await api.expire()
        await api.start()

        async def a_relisted() -> bool:
            return set(store.snapshot().objects) == {ObjectKey("Service", "b", "web")}

        await wait_for(a_relisted, what="a relisted, b kept")
        assert not any(r.startswith("GET /api/v1/services?") for r in api.requests)


async def test_open_source_gives_a_kube_source_of_the_source_shape(
    api: FakeAPIServer, tmp_path: Path
) -> None:
    """Without --manifests: the cluster, in the namespaces asked for, with the kinds it
    serves; load_once lists, run follows until stopped, aclose closes the client."""
    await api.create(service("web", 80, namespace="a"))
    await api.create(service("other", 80, namespace="b"))
    options = KubeOptions(kubeconfig=api.kubeconfig(tmp_path / "kubeconfig"), in_cluster=False)
    settings = Settings(namespaces=("a",))
    source = await open_source(settings, options, metrics=Metrics())
    assert isinstance(source, KubeSource) and isinstance(source, Source)
    try:
        assert source.api is not None
        assert source.name == "source:kube"
        assert source.description == (
            "Service, EndpointSlice, Ingress, IngressClass from the Kubernetes API (a)"
        )
        await source.load_once()
        assert source.store.ready
        assert set(source.store.snapshot().objects) == {ObjectKey("Service", "a", "web")}
        assert source.problems() == []

        stop = asyncio.Event()
        task = asyncio.create_task(source.run(stop=stop), name="source")
        await api.create(service("new", 80, namespace="a"))

        async def followed() -> bool:
            return ObjectKey("Service", "a", "new") in source.store.snapshot().objects

        await wait_for(followed, what="the watch after load_once")
        stop.set()
        async with asyncio.timeout(10):
            await task
    finally:
        await source.aclose()


async def test_open_source_lists_once_and_reports_a_forbidden_list(
    api: FakeAPIServer, tmp_path: Path
) -> None:
    """`render` and `check`: a list they cannot make is a ConfigError naming the permission."""
    api.forbidden.add(("services", "*"))
    options = KubeOptions(kubeconfig=api.kubeconfig(tmp_path / "kubeconfig"), in_cluster=False)
    source = await open_source(Settings(), options)
    try:
        with pytest.raises(ConfigError, match="cannot list services"):
            await source.load_once()
    finally:
        await source.aclose()
