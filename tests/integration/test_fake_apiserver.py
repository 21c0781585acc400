"""The fake API server's writes behave as the real API's do where our clients can tell:
optimistic concurrency (409 on a stale resourceVersion), the status and scale subresources,
patches, cluster-scoped kinds. Other tests trust these answers, so they are checked here."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fake_apiserver import TOKEN, FakeAPIServer


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeAPIServer]:
    server = FakeAPIServer(tmp_path)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http(api: FakeAPIServer, tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    api.kubeconfig(tmp_path / "kubeconfig")
    context = ssl.create_default_context(cafile=str(tmp_path / "fake-apiserver-ca.pem"))
    async with aiohttp.ClientSession(
        base_url=api.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        connector=aiohttp.TCPConnector(ssl=context),
    ) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body)
    async with http.request(method, path, data=data, headers={"Content-Type": content_type}) as r:
        return r.status, await r.json()


LEASES = "/apis/coordination.k8s.io/v1/namespaces/lb/leases"


async def test_a_stale_resource_version_is_a_conflict(http: aiohttp.ClientSession) -> None:
    lease = {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}
    code, created = await call(http, "POST", LEASES, lease)
    assert code == 201 and created["metadata"]["namespace"] == "lb"
    code, again = await call(http, "POST", LEASES, lease)
    assert (code, again["reason"]) == (409, "AlreadyExists")

    mine = {**created, "spec": {"holderIdentity": "b"}}
    code, updated = await call(http, "PUT", f"{LEASES}/leader", mine)
    assert code == 200 and updated["spec"]["holderIdentity"] == "b"
    # The same write again carries the old version now: someone else wrote in between.
    code, conflict = await call(http, "PUT", f"{LEASES}/leader", mine)
    assert (code, conflict["reason"]) == (409, "Conflict")
    assert "the object has been modified" in conflict["message"]
    code, missing = await call(http, "GET", f"{LEASES}/nobody")
    assert (code, missing["reason"]) == (404, "NotFound")


async def test_status_subresource_writes_only_status(
    api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    await api.create(
        {
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "LoadBalancer"},
        }
    )
    path = "/api/v1/namespaces/shop/services/web"
    body = {
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP"},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "Proxy"}]}},
    }
    code, stored = await call(http, "PUT", f"{path}/status", body)
    assert code == 200
    assert stored["spec"]["type"] == "LoadBalancer"  # the spec is not the status's to change
    assert stored["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1"
    # A merge patch through the main resource leaves the status alone.
    code, stored = await call(
        http,
        "PATCH",
        path,
        {"metadata": {"labels": {"a": "b"}}, "status": {}},
        "application/merge-patch+json",
    )
    assert code == 200 and stored["metadata"]["labels"] == {"a": "b"}
    assert stored["status"]["loadBalancer"]["ingress"]
    code, stored = await call(
        http,
        "PATCH",
        f"{path}/status",
        [{"op": "replace", "path": "/status/loadBalancer", "value": {}}],
        "application/json-patch+json",
    )
    assert code == 200 and stored["status"] == {"loadBalancer": {}}
    assert api.get("Service", "shop", "web") == stored


async def test_scale_subresource(api: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    await api.create(
        {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
        }
    )
    path = "/apis/apps/v1/namespaces/shop/deployments/web/scale"
    code, scale = await call(http, "GET", path)
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=web"
    code, scale = await call(http, "PUT", path, {**scale, "spec": {"replicas": 5}})
    assert code == 200 and scale["spec"]["replicas"] == 5
    code, _ = await call(
        http,
        "PUT",
        path,
        {
            **scale,
            "metadata": {**scale["metadata"], "resourceVersion": "1"},
            "spec": {"replicas": 6},
        },
    )
    assert code == 409
    code, scale = await call(
        http, "PATCH", path, {"spec": {"replicas": 3}}, "application/merge-patch+json"
    )
    assert code == 200 and scale["spec"]["replicas"] == 3
    deployment = api.get("Deployment", "shop", "web")
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["generation"] == 3
    code, _ = await call(http, "GET", "/api/v1/namespaces/shop/services/web/scale")
    assert code == 404


async def test_cluster_scoped_kinds(api: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    await api.create(
        {
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.5"}]},
        }
    )
    code, node = await call(http, "GET", "/api/v1/nodes/n1")
    assert code == 200 and "namespace" not in node["metadata"]
    code, listed = await call(http, "GET", "/api/v1/nodes")
    assert code == 200 and [n["metadata"]["name"] for n in listed["items"]] == ["n1"]
    code, _ = await call(http, "GET", "/api/v1/namespaces/default/nodes/n1")
    assert code == 404
    await api.delete("Node", "", "n1")
    assert api.get("Node", "", "n1") is None


async def test_forbidden_write_names_the_verb(
    api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    api.forbidden.add(("leases", "*"))
    code, body = await call(http, "POST", LEASES, {"metadata": {"name": "x"}})
    assert code == 403 and 'cannot create resource "leases"' in body["message"]
