"""Operational behaviour of the controller: coalescing bursts, request logs, and health
when HAProxy cannot serve. Real controller, real HAProxy, real backends."""

from __future__ import annotations

from pathlib import Path

from harness import Backends, Controller, running, wait_for, write_manifest
from objects import service, slices


async def test_a_burst_of_1000_changes_gives_a_handful_of_reloads(
    tmp_path: Path, backends: Backends
) -> None:
    pod = await backends.http("pod", "127.0.10.1")
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "a.yaml", [service("a", 80), *slices("a", [pod])])
    with running(c):
        await c.wait_healthy()
        before = c.log().count("reloading HAProxy:")
        # 1,000 changes as fast as the file system takes them: 1,000 new Services.
        for i in range(1000):
            write_manifest(c.manifests / f"s{i:04}.yaml", [service(f"s{i}", 80)])

        async def all_there() -> bool:
            return (await c.get("/s999"))[0] == 503  # routed, no endpoints

        await wait_for(all_there, what="the last of 1,000 Services routed")
        assert (await c.get("/s0"))[0] == 503
        assert (await c.get("/a"))[1].startswith("backend=pod")
        reloads = c.log().count("reloading HAProxy:") - before
        assert 1 <= reloads <= 20, f"{reloads} reloads for 1,000 changes"


async def test_syslog_sends_request_logs_to_stdout(tmp_path: Path, backends: Backends) -> None:
    pod = await backends.http("pod", "127.0.10.2")
    c = Controller(tmp_path, extra_args=["--syslog"])
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "a.yaml", [service("a", 80), *slices("a", [pod])])
    with running(c):
        await c.wait_healthy()
        assert (await c.get("/a/logged-path"))[0] == 200

        async def logged() -> bool:
            return '"GET /a/logged-path HTTP/1.1"' in c.log()

        await wait_for(logged, what="the request in HAProxy's log")
        assert "http_default_a_80/s_127_0_10_2_" in c.log()


async def test_healthz_is_503_while_haproxy_cannot_serve(tmp_path: Path) -> None:
    """A first config that HAProxy refuses: nothing serves, and /healthz says so."""
    (tmp_path / "t.cfg.j2").write_text("global\nthis-is-not-a-keyword\n")
    (tmp_path / "lb.yaml").write_text("template: t.cfg.j2\n")
    c = Controller(tmp_path, extra_args=["--cfg", str(tmp_path / "lb.yaml")])
    c.manifests.mkdir(parents=True)
    with running(c):

        async def refused() -> bool:
            return "refused the new config" in c.log()

        await wait_for(refused, what="the refused config in the log")
        assert await c.healthz() == 503
        assert c.haproxy_pids() == []
