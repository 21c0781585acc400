"""Several clusters end to end: the real controller reading two fake API servers (the
local cluster and a remote one, `--remote-cluster east=...`, each its own store), the
real HAProxy, and real backends on 127.0.13.0/24 standing for both clusters' pods.

Fail-over is per request in HAProxy (remote endpoints are backup servers), so a client
running through it sees no failed request; and no change here may reload HAProxy."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fake_apiserver import FakeAPIServer
from harness import (
    Backends,
    Controller,
    backend_names,
    request,
    running,
    served_by,
    until_served,
    wait_for,
)
from objects import service, service_export, slices

P = "serviceloadbalancer/"
GLOBAL = {P + "lb.global": "true"}


async def _api(directory: Path) -> FakeAPIServer:
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    server = FakeAPIServer(directory, bookmark_interval=0.5)
    await server.start()
    return server


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[FakeAPIServer]:
    server = await _api(tmp_path / "local-api")
    yield server
    await server.stop()


@pytest.fixture
async def east(tmp_path: Path) -> AsyncIterator[FakeAPIServer]:
    server = await _api(tmp_path / "east-api")
    yield server
    await server.stop()


def two_clusters(
    tmp_path: Path, local: FakeAPIServer, east: FakeAPIServer, *extra: str
) -> Controller:
    local_config = local.kubeconfig(tmp_path / "local-api" / "kubeconfig")
    east_config = east.kubeconfig(tmp_path / "east-api" / "kubeconfig")
    return Controller(
        tmp_path,
        use_manifests=False,
        extra_args=[
            "--kubeconfig", str(local_config),
            "--remote-cluster", f"east={east_config}",
            *extra,
        ],
    )  # fmt: skip


@pytest.fixture
def controller(tmp_path: Path, local: FakeAPIServer, east: FakeAPIServer) -> Iterator[Controller]:
    with running(two_clusters(tmp_path, local, east)) as c:
        yield c


async def reloads(c: Controller) -> int:
    """HAProxy reloads so far (the log says each once, with its reasons)."""
    await asyncio.sleep(0)
    return c.log().count("reloading HAProxy: ")


async def healthz_body(c: Controller) -> tuple[int, str]:
    answer = await request(c.healthz_port, "/healthz")
    return answer.status, answer.body


@dataclass
class Client:
    """Requests back to back, each on a new connection, recording who answered."""

    port: int
    path: str
    answered: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="client")

    async def stop(self) -> None:
        self.done.set()
        assert self.task is not None
        await self.task

    async def _run(self) -> None:
        while not self.done.is_set() and len(self.answered) < 200_000:
            try:
                answer = await request(self.port, self.path)
            except (OSError, ValueError, TimeoutError) as err:
                self.failures.append(repr(err))
                continue
            if answer.status == 200:
                self.answered.append(backend_names([answer.body])[0])
            else:
                self.failures.append(f"{answer.status} {answer.body[:80]!r}")
            await asyncio.sleep(0.002)

    async def answered_by(self, prefix: str, after: int) -> bool:
        return any(name.startswith(prefix) for name in self.answered[after:])


async def global_web(
    local: FakeAPIServer,
    east: FakeAPIServer,
    backends: Backends,
    annotations: dict[str, str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """web in both clusters (global in both); two pods each. Returns both clusters' slices."""
    pods_local = [await backends.http(f"local-{i}", f"127.0.13.{i}") for i in (1, 2)]
    pods_east = [await backends.http(f"east-{i}", f"127.0.13.{10 + i}") for i in (1, 2)]
    await local.create(service("web", 80, annotations=annotations))
    await east.create(service("web", 80, annotations=GLOBAL))
    local_slices = slices("web", pods_local)
    east_slices = slices("web", pods_east)
    for obj in local_slices:
        await local.create(obj)
    for obj in east_slices:
        await east.create(obj)
    return local_slices, east_slices


async def test_local_affinity_fails_over_per_request_and_back_without_a_lost_request(
    local: FakeAPIServer, east: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    local_slices, _ = await global_web(local, east, backends, GLOBAL)
    await controller.wait_healthy()
    await until_served(controller, "/web", {"local-1", "local-2"}, n=12)

    async def east_listed() -> bool:  # the remote endpoints are in, as backups
        return "remote cluster east: ok" in (await healthz_body(controller))[1]

    await wait_for(east_listed, what=f"east listed; log:\n{controller.log()}")
    assert await served_by(controller, "/web", 24) == {"local-1", "local-2"}
    before = await reloads(controller)

    client = Client(controller.http_port, "/web")
    client.start()
    try:
        # Every local endpoint goes (a whole rollout gone wrong, a node pool down).
        mark = len(client.answered)
        for obj in local_slices:
            await local.delete("EndpointSlice", "default", obj["metadata"]["name"])
        await wait_for(lambda: client.answered_by("east-", mark), what="failed over to east")
        await until_served(controller, "/web", {"east-1", "east-2"}, n=12)
        # And back when they return.
        mark = len(client.answered)
        for obj in local_slices:
            obj.get("metadata", {}).pop("resourceVersion", None)
            await local.create(obj)
        await wait_for(lambda: client.answered_by("local-", mark), what="failed back")
        await until_served(controller, "/web", {"local-1", "local-2"}, n=12)
    finally:
        await client.stop()
    assert client.failures == []
    assert len(client.answered) > 20
    assert await reloads(controller) == before, controller.log()


async def test_none_affinity_reaches_every_pod_of_both_clusters(
    local: FakeAPIServer, east: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    _, east_slices = await global_web(local, east, backends, {**GLOBAL, P + "lb.affinity": "none"})
    await controller.wait_healthy()
    await until_served(controller, "/web", {"local-1", "local-2", "east-1", "east-2"}, n=12)
    # East's history is compacted (410 on its watches) with a change in the gap: its own
    # source relists, and only east's endpoints change.
    await east.stop()
    await east.delete("EndpointSlice", "default", east_slices[1]["metadata"]["name"])
    await east.expire(tell_watchers=False)
    await east.start()
    await until_served(controller, "/web", {"local-1", "local-2", "east-1"}, n=12)

    async def relisted() -> bool:
        text = await controller.metrics()
        return 'slb_remote_cluster_watch_restarts_total{action="relist",cluster="east"}' in text

    await wait_for(relisted, what="east relisted after 410")
    assert 'slb_source_watch_restarts_total{source="kube:relist"}' not in await controller.metrics()


async def test_remote_affinity_prefers_the_remote_pods_and_falls_back_to_local(
    local: FakeAPIServer, east: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    """Draining a cluster: the remote pods serve; the local ones only once no remote one
    is left (they are the backups now)."""
    _, east_slices = await global_web(
        local, east, backends, {**GLOBAL, P + "lb.affinity": "remote"}
    )
    await controller.wait_healthy()
    await until_served(controller, "/web", {"east-1", "east-2"}, n=12)
    before = await reloads(controller)
    for obj in east_slices:
        await east.delete("EndpointSlice", "default", obj["metadata"]["name"])
    await until_served(controller, "/web", {"local-1", "local-2"}, n=12)
    assert await reloads(controller) == before, controller.log()


async def test_min_local_spills_over_through_the_runtime_api(
    local: FakeAPIServer, east: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    """min-local 2: at one ready local pod the remote ones serve beside it (their backup
    flag swapped by add + drain, no reload); at two, back to local only."""
    annotations = {**GLOBAL, P + "lb.min-local": "2"}
    local_slices, _ = await global_web(local, east, backends, annotations)
    await controller.wait_healthy()
    await until_served(controller, "/web", {"local-1", "local-2"}, n=12)
    before = await reloads(controller)
    await local.delete("EndpointSlice", "default", local_slices[1]["metadata"]["name"])
    await until_served(controller, "/web", {"local-1", "east-1", "east-2"}, n=12)
    local_slices[1]["metadata"].pop("resourceVersion", None)
    await local.create(local_slices[1])
    await until_served(controller, "/web", {"local-1", "local-2"}, n=12)
    assert await reloads(controller) == before, controller.log()


async def test_only_global_or_exported_remote_services_are_merged(
    local: FakeAPIServer, east: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    none = {**GLOBAL, P + "lb.affinity": "none"}
    api_local = await backends.http("api-local", "127.0.13.21")
    api_east = await backends.http("api-east", "127.0.13.22")
    exp_local = await backends.http("exp-local", "127.0.13.23")
    exp_east = await backends.http("exp-east", "127.0.13.24")
    # api: global here, an ordinary Service in east. exp: exported from east.
    await local.create(service("api", 80, annotations=none))
    await east.create(service("api", 80))
    await local.create(slices("api", [api_local])[0])
    await east.create(slices("api", [api_east])[0])
    await local.create(service("exp", 80, annotations=none))
    await east.create(service("exp", 80))
    await east.create(service_export("exp"))
    await local.create(slices("exp", [exp_local])[0])
    await east.create(slices("exp", [exp_east])[0])
    await controller.wait_healthy()
    await until_served(controller, "/exp", {"exp-local", "exp-east"}, n=12)
    assert await served_by(controller, "/api", 24) == {"api-local"}
    # Exporting it shares it; taking the export back stops sharing.
    await east.create(service_export("api"))
    await until_served(controller, "/api", {"api-local", "api-east"}, n=12)
    await east.delete("ServiceExport", "default", "api")
    await until_served(controller, "/api", {"api-local"}, n=12)


async def test_remote_outage_keeps_its_endpoints_and_never_blocks_local_changes(
    local: FakeAPIServer, east: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    local_slices, _ = await global_web(local, east, backends, GLOBAL)
    other = await backends.http("other-1", "127.0.13.31")
    await controller.wait_healthy()
    await until_served(controller, "/web", {"local-1", "local-2"}, n=12)
    await wait_for(
        lambda: _contains(healthz_body(controller), "remote cluster east: ok"), what="east ok"
    )
    before = await reloads(controller)
    await east.stop()  # the remote API is gone; its pods are not

    async def reported() -> bool:
        status, body = await healthz_body(controller)
        return status == 200 and "remote cluster east: unreachable for" in body

    await wait_for(reported, what=f"the outage on /healthz; log:\n{controller.log()}")

    async def down_in_metrics() -> bool:
        return 'slb_remote_cluster_up{cluster="east"} 0.0' in await controller.metrics()

    await wait_for(down_in_metrics, what="slb_remote_cluster_up 0")
    # Local changes still apply: a local endpoint goes, a new Service comes.
    await local.delete("EndpointSlice", "default", local_slices[0]["metadata"]["name"])
    await until_served(controller, "/web", {"local-2"}, n=12)
    await local.create(service("other", 80))
    await local.create(slices("other", [other])[0])
    await until_served(controller, "/other", {"other-1"}, n=12)
    # The remote endpoints it had keep serving once no local one is left.
    await local.delete("EndpointSlice", "default", local_slices[1]["metadata"]["name"])
    await until_served(controller, "/web", {"east-1", "east-2"}, n=12)
    assert (await controller.healthz()) == 200
    # One reload for the new Service; none for the rest.
    assert await reloads(controller) == before + 1, controller.log()


async def test_stale_remote_endpoints_are_removed_and_come_back_with_a_list(
    tmp_path: Path, local: FakeAPIServer, east: FakeAPIServer, backends: Backends
) -> None:
    await global_web(local, east, backends, GLOBAL)
    for name in ("web-0", "web-1"):
        await local.delete("EndpointSlice", "default", name)
    with running(two_clusters(tmp_path, local, east, "--remote-stale-after", "2")) as c:
        await c.wait_healthy()
        await until_served(c, "/web", {"east-1", "east-2"}, n=12)
        before = await reloads(c)
        await east.stop()
        # After --remote-stale-after: removed (no server left: 503), still healthy.
        await until_served(c, "/web", {"HTTP 503"}, n=12)
        status, body = await healthz_body(c)
        assert status == 200
        assert "its endpoints were removed" in body

        async def removed_in_metrics() -> bool:
            return 'slb_remote_cluster_endpoints_removed{cluster="east"} 1.0' in await c.metrics()

        await wait_for(removed_in_metrics, what="slb_remote_cluster_endpoints_removed 1")
        await east.start()
        await until_served(c, "/web", {"east-1", "east-2"}, n=12)
        assert await reloads(c) == before, c.log()


async def _contains(body: Any, text: str) -> bool:
    status, found = await body
    return bool(status == 200 and text in found)


async def render_command(tmp_path: Path, local: FakeAPIServer, east: FakeAPIServer) -> str:
    """`render` with both clusters, run without blocking the loop the fake APIs serve on."""
    c = two_clusters(tmp_path, local, east)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service_loadbalancer.cli", "render", *c.args(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode() + err.decode()


async def test_render_shows_the_remote_endpoints_and_goes_on_without_an_unreachable_cluster(
    tmp_path: Path, local: FakeAPIServer, east: FakeAPIServer, backends: Backends
) -> None:
    await global_web(local, east, backends, GLOBAL)
    shown = await render_command(tmp_path, local, east)
    assert re.search(r"server rb_east_127_0_13_11_\d+ 127\.0\.13\.11:\d+ backup", shown), shown
    assert "option allbackups" in shown
    await east.stop()
    shown = await render_command(tmp_path, local, east)
    assert "remote cluster east left out" in shown
    assert "rb_east_" not in shown
    assert "server s_127_0_13_1_" in shown


async def test_a_forbidden_kind_is_reported_and_only_forbidden_endpoints_go_stale(
    tmp_path: Path, local: FakeAPIServer, east: FakeAPIServer, backends: Backends
) -> None:
    """RBAC without serviceexports in east: lb.global still shares, /healthz says what is
    missing, and the endpoints are never removed as stale (they are still refreshed).
    Once EndpointSlices are forbidden too, they can no longer be: after
    --remote-stale-after they are removed, /healthz says unauthorized, and they come back
    when allowed again."""
    east.forbidden.add(("serviceexports", "*"))
    await global_web(local, east, backends, GLOBAL)
    for name in ("web-0", "web-1"):
        await local.delete("EndpointSlice", "default", name)
    with running(two_clusters(tmp_path, local, east, "--remote-stale-after", "1")) as c:
        await c.wait_healthy()
        await until_served(c, "/web", {"east-1", "east-2"}, n=12)

        async def reported() -> bool:
            status, body = await healthz_body(c)
            return status == 200 and "remote cluster east: incomplete: 403" in body

        await wait_for(reported, what=f"the 403 on /healthz; log:\n{c.log()}")
        # Well past --remote-stale-after: still served, never removed.
        await asyncio.sleep(2.5)  # the time that must pass is the point here
        assert await served_by(c, "/web", 12) == {"east-1", "east-2"}
        assert "removing its endpoints" not in c.log()
        # The endpoints themselves refused (a RoleBinding taken away): stale, removed.
        before = await reloads(c)
        east.forbidden.add(("endpointslices", "*"))
        await east.drop_watches()
        await until_served(c, "/web", {"HTTP 503"}, n=12)
        assert "remote cluster east unauthorized for" in c.log()

        async def unauthorized() -> bool:
            status, body = await healthz_body(c)
            return (
                status == 200
                and "remote cluster east: unauthorized for" in body
                and "its endpoints were removed" in body
            )

        await wait_for(unauthorized, what=f"unauthorized on /healthz; log:\n{c.log()}")
        east.forbidden.discard(("endpointslices", "*"))
        await until_served(c, "/web", {"east-1", "east-2"}, n=12)
        assert await reloads(c) == before, c.log()
