"""The whole controller, end to end: manifests in a directory, the real controller as a
subprocess, the real HAProxy, real backends on 127.0.0.0/8, real requests."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from harness import (
    Backends,
    Controller,
    backend_names,
    free_port,
    running,
    wait_for,
    write_manifest,
)
from objects import port, service, slices


async def names_of(controller: Controller, path: str, n: int, **kw: object) -> list[str]:
    bodies = []
    for _ in range(n):
        status, body, _ = await controller.get(path, **kw)  # type: ignore[arg-type]
        assert status == 200, body
        bodies.append(body)
    return backend_names(bodies)


async def test_path_routing_strip_spread_and_default(tmp_path: Path, backends: Backends) -> None:
    web1 = await backends.http("web-1", "127.0.2.1")
    web2 = await backends.http("web-2", "127.0.2.2")
    api = await backends.http("api-1", "127.0.2.3")
    other = await backends.http("other-web", "127.0.2.4")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "apps.yaml",
        [
            service("web", 80),
            *slices("web", [web1, web2]),
            service("api", port(8080, name="http", target="http"), namespace="shop"),
            *slices("api", [api], namespace="shop", port_name="http"),
            service("web", 80, namespace="other"),
            *slices("web", [other], namespace="other"),
        ],
    )  # fmt: skip
    with running(c):
        await c.wait_healthy()
        # Prefix stripped, query kept; both the short and the namespaced form.
        status, body, _ = await c.get("/web/hello/there?x=1")
        assert status == 200 and "path=/hello/there?x=1" in body
        status, body, _ = await c.get("/web")
        assert status == 200 and "path=/ " in body
        status, body, _ = await c.get("/default/web/a")
        assert "path=/a " in body and body.startswith("backend=web-")
        # /web belongs to default/web; other/web only by its namespace.
        assert set(await names_of(c, "/web", 6)) == {"web-1", "web-2"}
        assert await names_of(c, "/other/web/x", 2) == ["other-web", "other-web"]
        # Round robin: consecutive requests alternate.
        spread = await names_of(c, "/web/", 10)
        assert spread.count("web-1") == 5 and spread.count("web-2") == 5
        # Port 8080 routes as /api:8080, named targetPort resolved through the slice.
        status, body, _ = await c.get("/api:8080/items")
        assert status == 200 and body.startswith("backend=api-1 path=/items ")
        status, body, _ = await c.get("/shop/api:8080")
        assert status == 200 and "path=/ " in body
        # Segment boundary: /webx is not /web; unmatched gets the 404 default.
        for path in ("/webx", "/nothing", "/api", "/"):
            status, _, _ = await c.get(path)
            assert status == 404, path
        # The collision was reported, not silent.
        assert "short path /web is held by default/web" in c.log()


async def test_host_routing_and_acl_match(tmp_path: Path, backends: Backends) -> None:
    shop = await backends.http("shop-1", "127.0.3.1")
    store = await backends.http("store-1", "127.0.3.2")
    plain = await backends.http("plain-1", "127.0.3.3")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "apps.yaml",
        [
            service("shop", 80, annotations={"serviceloadbalancer/lb.host": "shop.example.com"}),
            *slices("shop", [shop]),
            service("store", 80, annotations={"serviceloadbalancer/lb.aclMatch": "/buy/now"}),
            *slices("store", [store]),
            service("plain", 80),
            *slices("plain", [plain]),
        ],
    )
    with running(c):
        await c.wait_healthy()
        status, body, _ = await c.get("/plain/x", host="shop.example.com:80")
        assert status == 200 and body.startswith("backend=shop-1 path=/plain/x ")
        status, body, _ = await c.get("/plain/x", host="SHOP.example.com")
        assert body.startswith("backend=shop-1")
        status, body, _ = await c.get("/plain/x", host="other.example.com")
        assert body.startswith("backend=plain-1 path=/x ")
        # lb.aclMatch: served at its own prefix, not stripped, not at /store.
        status, body, _ = await c.get("/buy/now/cart")
        assert status == 200 and body.startswith("backend=store-1 path=/buy/now/cart ")
        assert (await c.get("/store"))[0] == 404
        assert (await c.get("/buy/nowhere"))[0] == 404


async def test_stickiness_source_and_cookie(tmp_path: Path, backends: Backends) -> None:
    eps = [await backends.http(f"pod-{i}", f"127.0.4.{i}") for i in (1, 2, 3)]
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    cookie = {"serviceloadbalancer/lb.cookie-sticky-session": "true"}
    write_manifest(
        c.manifests / "apps.yaml",
        [
            service("src", 80, session_affinity="ClientIP"),
            *slices("src", eps),
            service("ck", 80, session_affinity="ClientIP", annotations=cookie),
            *slices("ck", eps),
        ],
    )
    with running(c):
        await c.wait_healthy()
        # Source-IP stickiness: every request from this address lands on one pod.
        assert len(set(await names_of(c, "/src", 9))) == 1
        # Cookie stickiness: without the cookie requests spread, with it they stick.
        assert len(set(await names_of(c, "/ck", 9))) == 3
        _, _, response = await c.get("/ck")
        server_cookie = response.cookies["SERVERID"].value
        assert server_cookie.startswith("s_127_0_4_")
        stuck = await names_of(c, "/ck", 6, cookies={"SERVERID": server_cookie})
        assert len(set(stuck)) == 1
        assert stuck[0] == f"pod-{server_cookie.split('_')[4]}"


async def test_tcp_service(tmp_path: Path, backends: Backends) -> None:
    echo = await backends.tcp("echo-1", "127.0.5.1")
    c = Controller(tmp_path)
    tcp_port = free_port()
    c.extra_args = ["--tcp-services", f"echo:{tcp_port}"]
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "echo.yaml",
        [service("echo", tcp_port), *slices("echo", [echo])],
    )
    with running(c):
        await c.wait_healthy()
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
        writer.write(b"hello\n")
        line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        # Closed for real before the controller stops: HAProxy's soft stop waits for
        # open TCP sessions (up to --drain-timeout).
        await writer.wait_closed()
        assert line == b"echo-1: hello\n"
        # The TCP port is not also an HTTP route.
        assert (await c.get(f"/echo:{tcp_port}"))[0] == 404
        await wait_for(backends.tcp_idle, what="the TCP sessions closed")


async def test_file_edit_moves_traffic_and_bad_file_is_skipped(
    tmp_path: Path, backends: Backends
) -> None:
    old = await backends.http("old", "127.0.6.1")
    new = await backends.http("new", "127.0.6.2")
    keep = await backends.http("keep", "127.0.6.3")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "app.yaml", [service("app", 80), *slices("app", [old])])
    write_manifest(c.manifests / "keep.yaml", [service("keep", 80), *slices("keep", [keep])])
    with running(c):
        await c.wait_healthy()
        assert await names_of(c, "/app", 2) == ["old", "old"]
        write_manifest(c.manifests / "app.yaml", [service("app", 80), *slices("app", [new])])

        async def moved() -> bool:
            return (await c.get("/app"))[1].startswith("backend=new")

        await wait_for(moved, what="traffic on the new endpoint")
        # A broken file is reported and skipped; the other file keeps serving.
        (c.manifests / "broken.yaml").write_text("kind: Service\n  bad: [indent\n")
        await wait_for(lambda: _contains(c, "broken.yaml"), what="problem for broken.yaml")
        assert (await c.get("/keep"))[1].startswith("backend=keep")
        assert (await c.get("/app"))[1].startswith("backend=new")
        # Deleting a file removes its Service.
        (c.manifests / "keep.yaml").unlink()

        async def gone() -> bool:
            return (await c.get("/keep"))[0] == 404

        await wait_for(gone, what="/keep gone")
        assert (await c.get("/app"))[0] == 200


async def _contains(c: Controller, text: str) -> bool:
    return text in c.log()


async def test_service_without_endpoints_answers_503(tmp_path: Path) -> None:
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "a.yaml", [service("lonely", 80)])
    with running(c):
        await c.wait_healthy()
        assert (await c.get("/lonely"))[0] == 503


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_stats_page_requires_the_password(tmp_path: Path) -> None:
    c = Controller(tmp_path, env={"SLB_STATS_USER": "admin", "SLB_STATS_PASSWORD": "s3cret!x"})
    c.manifests.mkdir(parents=True)
    with running(c):
        await c.wait_healthy()
        url = f"http://127.0.0.1:{c.stats_port}/"
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                assert r.status == 401
            async with s.get(url, headers=basic("admin", "wrong")) as r:
                assert r.status == 401
            async with s.get(url + "metrics", headers=basic("admin", "wrong")) as r:
                assert r.status == 401
            async with s.get(url, headers=basic("admin", "s3cret!x")) as r:
                assert r.status == 200 and "Statistics Report" in await r.text()
            async with s.get(url + "metrics", headers=basic("admin", "s3cret!x")) as r:
                assert r.status == 200 and "haproxy_process_" in await r.text()
        # The password is not in the config on disk.
        assert "s3cret" not in (c.run_dir / "haproxy.cfg").read_text()


async def test_invalid_config_keeps_the_last_good_one(tmp_path: Path, backends: Backends) -> None:
    a = await backends.http("a", "127.0.7.1")
    b = await backends.http("b", "127.0.7.2")
    builtin = (
        Path(__file__).parents[2] / "src/service_loadbalancer/haproxy/templates/haproxy.cfg.j2"
    ).read_text()
    # A user template that turns invalid once there are two backends.
    template = builtin + "{% if backends|length > 1 %}\nnot-a-keyword\n{% endif %}\n"
    (tmp_path / "t.cfg.j2").write_text(template)
    (tmp_path / "lb.yaml").write_text("template: t.cfg.j2\n")
    c = Controller(tmp_path, extra_args=["--cfg", str(tmp_path / "lb.yaml")])
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "a.yaml", [service("a", 80), *slices("a", [a])])
    with running(c):
        await c.wait_healthy()
        write_manifest(c.manifests / "b.yaml", [service("b", 80), *slices("b", [b])])
        await wait_for(lambda: _contains(c, "haproxy -c refused"), what="refused config")
        assert (await c.get("/a"))[1].startswith("backend=a")
        assert (await c.get("/b"))[0] == 404
        assert await c.healthz() == 200
        assert "slb_config_validation_failures_total 1.0" in await c.metrics()


async def test_sigterm_leaves_no_haproxy(tmp_path: Path) -> None:
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    c.start()
    try:
        await c.wait_healthy()
        assert c.haproxy_pids(), "HAProxy should be running"
    finally:
        code = c.stop()
    assert code == 0
    assert c.haproxy_pids() == []


async def test_killed_haproxy_is_restarted(tmp_path: Path, backends: Backends) -> None:
    a = await backends.http("a", "127.0.8.1")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "a.yaml", [service("a", 80), *slices("a", [a])])
    with running(c):
        await c.wait_healthy()
        for pid in c.haproxy_pids():
            os.kill(pid, signal.SIGKILL)

        async def back() -> bool:
            return (await c.get("/a"))[0] == 200

        await wait_for(back, what="HAProxy back after SIGKILL")

        async def counted() -> bool:
            return "\nslb_haproxy_restarts_total 1.0\n" in await c.metrics()

        await wait_for(counted, what="the restart in slb_haproxy_restarts_total")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service_loadbalancer.cli", *args],
        capture_output=True,
        check=False,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http-port", "0"], "not a port number"),
        (["--http-port", "8_0"], "not a port number"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--tcp-services", "mysql"], "is not name:port"),
        (["--balance-algorithm", "random"], "invalid Algorithm value"),
        (["--default-return-code", "99"], "not an HTTP status code"),
        (["--cfg", "/nonexistent.yaml"], "cannot read"),
        (["--target-service", "a/b/c"], "not a service name"),
        (["--drain-timeout", "-1"], "not between 0 and 3600 seconds"),
        (["--drain-timeout", "soon"], "not a number of seconds"),
        (["--shutdown-grace", "-5"], "not between 0 and 3600 seconds"),
        (["--shutdown-grace", "nan"], "not between 0 and 3600 seconds"),
        ([], "no source"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    if args != [] and "--manifests" not in args:
        args = [*args, "--manifests", str(tmp_path)]
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_cfg_file_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "lb.json"
    cfg.write_text('{"name": "haproxy", "algorithm": "fastest", "bogus": 1}')
    result = run_cli("--cfg", str(cfg), "--manifests", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "algorithm" in result.stderr


def test_dry_and_check(tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    write_manifest(manifests / "a.yaml", [service("web", 80), *slices("web", [("127.0.9.1", 80)])])
    for argv in (["--dry"], ["render"], ["--dry=true"]):
        cmd = [*argv, "--manifests", str(manifests), "--run-dir", str(tmp_path)]
        if argv[0] == "render":
            cmd = ["render", *cmd[1:]]
        result = run_cli(*cmd)
        assert result.returncode == 0, result.stderr
        assert "backend http_default_web_80" in result.stdout
        assert "server s_127_0_9_1_80 127.0.9.1:80" in result.stdout
        assert "/web/ http_default_web_80|1|s" in result.stdout
    result = run_cli("check", "--manifests", str(manifests), "--run-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "haproxy -c: valid" in result.stdout
    (manifests / "bad.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  annotations:\n"
        "    serviceloadbalancer/lb.algorithm: fastest\nspec:\n  ports: [{port: 80}]\n"
    )
    result = run_cli("check", "--manifests", str(manifests), "--run-dir", str(tmp_path))
    assert result.returncode == 1
    assert "Service default/x" in result.stdout and "fastest" in result.stdout
