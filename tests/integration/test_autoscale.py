"""`service-loadbalancer autoscale` end to end: the real controller (reading the fake API
server) and its real HAProxy serve real backends on 127.0.0.0/8; real requests go through
it; the autoscaler (a subprocess) reads HAProxy's real stats page and writes the
Deployments' scale subresource on the fake API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from autoscale_harness import AutoscaleProcess, Load
from fake_apiserver import FakeAPIServer
from harness import Backends, Controller, free_port, running, wait_for
from objects import deployment, service, slices

P = "serviceloadbalancer/autoscale."
SCALE_DEADLINE = 60.0


@pytest.fixture
def controller(tmp_path: Path, api: FakeAPIServer) -> Iterator[Controller]:
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    c = Controller(tmp_path, use_manifests=False, extra_args=["--kubeconfig", str(kubeconfig)])
    with running(c):
        yield c


def replicas(api: FakeAPIServer, name: str, namespace: str = "default") -> int:
    obj = api.get("Deployment", namespace, name)
    assert obj is not None
    return int(obj["spec"]["replicas"])


async def until_replicas(
    api: FakeAPIServer, name: str, wanted: int, scaler: AutoscaleProcess, namespace: str = "default"
) -> None:
    async def check() -> bool:
        return replicas(api, name, namespace) == wanted

    what = f"{namespace}/{name} at {wanted} replicas; log:\n{scaler.log()}"
    await wait_for(check, within=SCALE_DEADLINE, what=what)


def scale_writes(api: FakeAPIServer, name: str) -> list[str]:
    return [r for r in api.requests if r.startswith("PATCH") and f"/deployments/{name}/" in r]


async def serve(api: FakeAPIServer, backends: Backends, name: str, address: str,
                annotations: dict[str, str] | None = None) -> None:  # fmt: skip
    endpoint = await backends.http(name, address)
    await api.create(service(name, 80, annotations=annotations))
    for obj in slices(name, [endpoint]):
        await api.create(obj)


def autoscaler(tmp_path: Path, api: FakeAPIServer, *args: str) -> AutoscaleProcess:
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    return AutoscaleProcess(tmp_path, ["--kubeconfig", str(kubeconfig), *args])


async def test_scales_up_under_load_and_back_after_the_window(
    tmp_path: Path, api: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    await serve(api, backends, "web", "127.0.12.1",
                {P + "target-rps": "5", P + "min": "1", P + "max": "3"})  # fmt: skip
    await serve(api, backends, "idle", "127.0.12.2")  # no annotation: never touched
    await serve(api, backends, "owned", "127.0.12.3", {P + "target-rps": "5"})
    # Annotated, but the controller refuses it (a bad lb.algorithm): no figures, untouched.
    await serve(api, backends, "ghost", "127.0.12.4",
                {P + "target-rps": "5", "serviceloadbalancer/lb.algorithm": "bogus"})  # fmt: skip
    await api.create(deployment("ghost", replicas=2))
    await api.create(deployment("web", replicas=1))
    await api.create(deployment("idle", replicas=2))
    await api.create(deployment("owned", replicas=2))
    await api.create({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "owned", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "owned"}, "minReplicas": 1, "maxReplicas": 5},
    })  # fmt: skip
    # The load balancer's own Deployment form (the tier).
    await api.create(deployment("service-loadbalancer", namespace="kube-system",
                                labels={"app": "service-loadbalancer"}))  # fmt: skip
    await controller.wait_healthy()
    await wait_for(lambda: _ok(controller, "/web"), what="/web served")
    idle_version = api.get("Deployment", "default", "idle")["metadata"]["resourceVersion"]  # type: ignore[index]

    scaler = autoscaler(
        tmp_path, api,
        "--stats-url", f"http://127.0.0.1:{controller.stats_port}/",
        "--interval", "0.5", "--scale-down-stabilization", "3",
        "--lb-workload", "kube-system/deployment/service-loadbalancer",
        "--lb-target-rps", "10", "--lb-max", "2",
    )  # fmt: skip
    scaler.start()
    load = Load(f"http://127.0.0.1:{controller.http_port}/web", rate=40)
    try:
        load.start()
        await until_replicas(api, "web", 3, scaler)
        await until_replicas(api, "service-loadbalancer", 2, scaler, namespace="kube-system")
        await load.stop()
        assert load.ok > 0
        await until_replicas(api, "web", 1, scaler)
        await until_replicas(api, "service-loadbalancer", 1, scaler, namespace="kube-system")
        # At most two writes each way: no flapping.
        assert len(scale_writes(api, "web")) <= 4, scale_writes(api, "web")
        metrics = await scaler.metrics()
        assert scaler.stop() == 0, scaler.log()  # SIGTERM: a clean stop
    finally:
        await load.stop()
        scaler.stop()
    assert not scale_writes(api, "idle") and not scale_writes(api, "owned")
    # Services are watched, not listed every round (the controller lists them once too).
    lists = [r for r in api.requests if r.startswith("GET /api/v1/services?") and "watch" not in r]
    assert len(lists) <= 4, lists
    assert api.get("Deployment", "default", "idle")["metadata"]["resourceVersion"] == idle_version  # type: ignore[index]
    assert replicas(api, "owned") == 2
    assert replicas(api, "ghost") == 2 and not scale_writes(api, "ghost")
    events = list(api.events.values())
    scaled = [e for e in events if e["reason"] == "Scaled" and e["involvedObject"]["name"] == "web"]
    assert scaled and "deployment/default/web from 1 to 3" in scaled[0]["message"]
    assert "requests/s in all" in scaled[0]["message"]
    owned = [e for e in events if e["involvedObject"]["name"] == "owned"]
    assert owned and owned[0]["reason"] == "NotAutoscaled" and owned[0]["type"] == "Warning"
    assert "HorizontalPodAutoscaler owned" in owned[0]["message"]
    ghost = [e for e in events if e["involvedObject"]["name"] == "ghost"]
    assert any("does not serve it" in e["message"] for e in ghost)
    assert (
        'slb_autoscale_scale_writes_total{direction="up",namespace="default",workload="web"}'
        in metrics
    )


async def _ok(controller: Controller, path: str) -> bool:
    return (await controller.get(path))[0] == 200


async def test_a_replica_whose_stats_page_fails_causes_no_scale_down(
    tmp_path: Path, api: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    await serve(api, backends, "web", "127.0.13.1", {P + "target-rps": "5", P + "max": "4"})
    await api.create(deployment("web", replicas=3))
    await controller.wait_healthy()
    real = f"http://127.0.0.1:{controller.stats_port}/;csv"
    state: dict[str, Any] = {"fail": True}

    async def flaky(_: web.Request) -> web.Response:
        """A second load-balancer replica: failing, then relaying the real page."""
        if state["fail"]:
            return web.Response(status=500, text="stats unavailable")
        async with ClientSession() as s, s.get(real) as r:
            return web.Response(text=await r.text())

    app = web.Application()
    app.router.add_get("/{tail:.*}", flaky)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.13.9", port).start()
    scaler = autoscaler(
        tmp_path, api,
        "--stats-url", f"http://127.0.0.1:{controller.stats_port}/",
        "--stats-url", f"http://127.0.13.9:{port}/",
        "--interval", "0.3", "--scale-down-stabilization", "1",
    )  # fmt: skip
    scaler.start()
    try:
        # No traffic at all, and rounds well past the window: still 3, as one replica's
        # figures are missing (a lower bound may not scale down).
        async def rounds() -> bool:
            return scaler.log().count("a lower bound this round") >= 10

        await wait_for(rounds, within=SCALE_DEADLINE, what=f"10 rounds; log:\n{scaler.log()}")
        assert replicas(api, "web") == 3 and not scale_writes(api, "web")
        assert "skipped this round: HTTP 500" in scaler.log()
        # Once both replicas are read, no traffic means the minimum.
        state["fail"] = False
        await until_replicas(api, "web", 1, scaler)
    finally:
        scaler.stop()
        await runner.cleanup()


async def test_dry_run_prints_and_writes_nothing(
    tmp_path: Path, api: FakeAPIServer, backends: Backends
) -> None:
    """Also: the stats page has credentials (the controller's environment variables), and
    the autoscaler reads them from the same ones."""
    await serve(api, backends, "web", "127.0.14.1", {P + "target-rps": "5", P + "max": "3"})
    await api.create(deployment("web", replicas=1))
    credentials = {"SLB_STATS_USER": "stats", "SLB_STATS_PASSWORD": "s3cret-for-tests"}
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    controller = Controller(tmp_path, use_manifests=False, env=credentials,
                            extra_args=["--kubeconfig", str(kubeconfig)])  # fmt: skip
    with running(controller):
        await controller.wait_healthy()
        await _dry_run(tmp_path, api, controller, credentials)


async def _dry_run(
    tmp_path: Path, api: FakeAPIServer, controller: Controller, credentials: dict[str, str]
) -> None:
    async with (
        ClientSession() as s,
        s.get(f"http://127.0.0.1:{controller.stats_port}/;csv") as r,
    ):
        assert r.status == 401  # no credentials, no stats
    scaler = autoscaler(
        tmp_path, api,
        "--stats-url", f"http://127.0.0.1:{controller.stats_port}/",
        "--interval", "0.5", "--dry-run",
        # A DaemonSet tier cannot be scaled: a recommendation (metric, log) only.
        "--lb-workload", "kube-system/daemonset/service-loadbalancer",
        "--lb-target-rps", "10", "--lb-max", "3",
    )  # fmt: skip
    scaler.env = credentials
    scaler.start()
    load = Load(f"http://127.0.0.1:{controller.http_port}/web", rate=40)
    try:
        load.start()

        async def printed() -> bool:
            log = scaler.log()
            return (
                "would scale deployment/default/web from 1 to 3" in log
                and "recommend daemonset/kube-system/service-loadbalancer from 1 to 3" in log
            )

        await wait_for(printed, within=SCALE_DEADLINE, what=f"decisions; log:\n{scaler.log()}")
        assert "slb_autoscale_lb_recommended_replicas 3.0" in await scaler.metrics()
    finally:
        await load.stop()
        scaler.stop()
    assert replicas(api, "web") == 1 and not scale_writes(api, "web")
    assert not [e for e in api.events.values() if e["reason"] == "Scaled"]


def gauge(metrics: str, name: str, service: str) -> float | None:
    prefix = f'{name}{{namespace="default",service="{service}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return None


async def test_controller_metrics_carry_each_services_load(
    api: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    """For KEDA or an HPA through an adapter: per-Service rate, in flight and queue on the
    controller's /metrics, read from HAProxy when scraped."""
    await serve(api, backends, "web", "127.0.15.1")
    await serve(api, backends, "quiet", "127.0.15.2")
    await controller.wait_healthy()
    await wait_for(lambda: _ok(controller, "/web"), what="/web served")
    load = Load(f"http://127.0.0.1:{controller.http_port}/web", rate=40)
    load.start()
    try:

        async def busy() -> bool:
            text = await controller.metrics()
            rate = gauge(text, "slb_service_requests_per_second", "web")
            return rate is not None and rate > 5

        await wait_for(busy, within=SCALE_DEADLINE, what="a rate for web on /metrics")
    finally:
        await load.stop()
    text = await controller.metrics()
    assert gauge(text, "slb_service_requests_in_flight", "web") is not None
    assert gauge(text, "slb_service_requests_queued", "web") == 0
    assert gauge(text, "slb_service_requests_per_second", "quiet") == 0


def lb_pod(name: str, ip: str, *, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system",
                     "labels": {"app": "service-loadbalancer"}},
        "spec": {"containers": [{"name": "lb", "image": "service-loadbalancer:dev"}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }  # fmt: skip


async def test_load_balancer_pods_are_found_by_their_labels(
    tmp_path: Path, api: FakeAPIServer, controller: Controller, backends: Backends
) -> None:
    """Without --stats-url: the ready pods --lb-selector finds, on --stats-port (here the
    controller's, on the pod's "IP" 127.0.0.1); a pod that is not ready is not read."""
    await serve(api, backends, "web", "127.0.18.1", {P + "target-rps": "5", P + "max": "3"})
    await api.create(deployment("web", replicas=1))
    await api.create(lb_pod("slb-0", "127.0.0.1"))
    await api.create(lb_pod("slb-1", "127.0.18.9", ready=False))  # nothing listens there
    other = lb_pod("other", "127.0.18.8")
    other["metadata"]["labels"] = {"app": "something-else"}
    await api.create(other)
    await controller.wait_healthy()
    scaler = autoscaler(
        tmp_path, api, "--stats-port", str(controller.stats_port), "--interval", "0.5",
    )  # fmt: skip
    scaler.start()
    load = Load(f"http://127.0.0.1:{controller.http_port}/web", rate=40)
    try:
        load.start()
        await until_replicas(api, "web", 3, scaler)
    finally:
        await load.stop()
        scaler.stop()
    assert "skipped this round" not in scaler.log()  # neither slb-1 nor other was read
    assert "read from 1 load-balancer replica(s)" in scaler.log()
