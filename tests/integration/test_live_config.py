"""A live --cfg file: the real controller, its real HAProxy and a real backend, and the
file edited under them, as a person (an atomic rewrite) or a ConfigMap volume (a
`..data` symlink swap) would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import aiohttp
from harness import Backends, Controller, running, wait_for, write_manifest
from objects import service, slices

SETTINGS_REASON = 'slb_haproxy_reloads_total{reason="settings or template changed"}'


def write_cfg(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


async def healthz(c: Controller) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{c.healthz_port}/healthz") as r,
    ):
        return r.status, await r.text()


def sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def serving_web(c: Controller, backends: Backends, address: str) -> None:
    pod = await backends.http("pod", address)
    c.manifests.mkdir(parents=True)
    write_manifest(c.manifests / "web.yaml", [service("web", 80), *slices("web", [pod])])


async def wait_config(c: Controller, needle: str) -> None:
    async def there() -> bool:
        return needle in (c.run_dir / "haproxy.cfg").read_text()

    await wait_for(there, what=f"{needle!r} in the config; log:\n{c.log()}")


async def test_an_edit_applies_without_a_restart(tmp_path: Path, backends: Backends) -> None:
    cfg = tmp_path / "lb.yaml"
    write_cfg(cfg, "algorithm: roundrobin\n")
    c = Controller(tmp_path, extra_args=["--cfg", str(cfg)])
    await serving_web(c, backends, "127.0.40.1")
    with running(c):
        await c.wait_healthy()
        assert c.proc is not None
        pid, masters = c.proc.pid, sorted(c.haproxy_pids())
        assert "balance roundrobin" in (c.run_dir / "haproxy.cfg").read_text()
        write_cfg(cfg, "algorithm: leastconn\n")
        await wait_config(c, "balance leastconn")

        async def reloaded() -> bool:
            return sample(await c.metrics(), SETTINGS_REASON) == 1

        await wait_for(reloaded, what="a reload with the settings reason")
        assert c.proc.pid == pid and c.proc.poll() is None  # the same controller
        assert min(c.haproxy_pids()) == min(masters)  # the same HAProxy master: a reload
        assert "balance roundrobin" not in (c.run_dir / "haproxy.cfg").read_text()
        assert (await c.get("/web"))[1].startswith("backend=pod")
        assert await healthz(c) == (200, "ok\n")


async def test_a_broken_edit_keeps_the_last_good_settings(
    tmp_path: Path, backends: Backends
) -> None:
    cfg = tmp_path / "lb.yaml"
    write_cfg(cfg, "algorithm: first\n")
    c = Controller(tmp_path, extra_args=["--cfg", str(cfg)])
    await serving_web(c, backends, "127.0.41.1")
    with running(c):
        await c.wait_healthy()
        for n, (text, why) in enumerate(
            [
                ("algorithm: fastest\n", "algorithm"),
                ("algorithm: [unclosed\n", "not valid JSON or YAML"),
                ("algorithm: leastconn\nnoSuchKey: 1\n", "noSuchKey"),
                ("algorithm: leastconn\ntemplate: t.j2\n", "t.j2"),  # no such file
            ],
            start=1,
        ):
            write_cfg(cfg, text)

            async def counted(n: int = n) -> bool:
                return sample(await c.metrics(), "slb_config_reload_failures_total") == n

            await wait_for(counted, what=f"failure {n} counted; log:\n{c.log()}")
            status, body = await healthz(c)
            assert status == 200 and "--cfg edit not applied" in body and why in body, body
            assert "balance first" in (c.run_dir / "haproxy.cfg").read_text()
            assert (await c.get("/web"))[1].startswith("backend=pod")
        assert "--cfg edit not applied, the last good settings keep serving" in c.log()
        # A template that compiles but gives a config HAProxy refuses: not applied either.
        (tmp_path / "t.j2").write_text("global\nthis-is-not-a-keyword\n")
        write_cfg(cfg, "algorithm: leastconn\ntemplate: t.j2\n")

        async def refused() -> bool:
            return sample(await c.metrics(), "slb_config_reload_failures_total") == 5

        await wait_for(refused, what=f"the refused template counted; log:\n{c.log()}")
        assert "haproxy -c refused" in (await healthz(c))[1]
        assert "balance first" in (c.run_dir / "haproxy.cfg").read_text()
        # Keys that need a restart are reported, not applied; the live one applies.
        # (runDir is the harness's --run-dir flag's, which wins.)
        elsewhere = tmp_path / "elsewhere" / "haproxy.cfg"
        write_cfg(cfg, f"algorithm: leastconn\nconfig: {elsewhere}\nrunDir: /nowhere\n")
        await wait_config(c, "balance leastconn")
        want = (200, "ok; --cfg keys that need a restart: config\n")

        async def reported() -> bool:  # once the reload is done: /healthz is 503 during it
            return await healthz(c) == want

        await wait_for(reported, what=f"/healthz {want}; log:\n{c.log()}")
        assert not elsewhere.parent.exists()
        assert c.proc is not None and c.proc.poll() is None


async def test_a_configmap_symlink_swap_is_picked_up(tmp_path: Path, backends: Backends) -> None:
    """A ConfigMap volume: the file is `lb.yaml -> ..data/lb.yaml`, and an update writes
    a new timestamped directory and swaps the `..data` symlink to it in one rename."""
    volume = tmp_path / "volume"
    (volume / "..2026_11_30_1").mkdir(parents=True)
    (volume / "..2026_11_30_1" / "lb.yaml").write_text("algorithm: roundrobin\n")
    (volume / "..data").symlink_to("..2026_11_30_1")
    (volume / "lb.yaml").symlink_to("..data/lb.yaml")
    c = Controller(tmp_path, extra_args=["--cfg", str(volume / "lb.yaml")])
    await serving_web(c, backends, "127.0.42.1")
    with running(c):
        await c.wait_healthy()
        assert "balance roundrobin" in (c.run_dir / "haproxy.cfg").read_text()
        (volume / "..2026_11_30_2").mkdir()
        (volume / "..2026_11_30_2" / "lb.yaml").write_text("algorithm: leastconn\n")
        (volume / "..data_tmp").symlink_to("..2026_11_30_2")
        os.replace(volume / "..data_tmp", volume / "..data")
        shutil.rmtree(volume / "..2026_11_30_1")
        await wait_config(c, "balance leastconn")
        assert c.proc is not None and c.proc.poll() is None
        assert (await c.get("/web"))[1].startswith("backend=pod")


async def test_a_flag_still_wins_over_an_edit(tmp_path: Path, backends: Backends) -> None:
    cfg = tmp_path / "lb.yaml"
    write_cfg(cfg, "startSyslog: false\n")
    c = Controller(tmp_path, extra_args=["--cfg", str(cfg), "--balance-algorithm", "first"])
    await serving_web(c, backends, "127.0.43.1")
    with running(c):
        await c.wait_healthy()
        # Both keys in one edit: the syslog one applies, the algorithm stays the flag's.
        write_cfg(cfg, "algorithm: leastconn\nstartSyslog: true\n")
        await wait_config(c, "log stdout")
        text = (c.run_dir / "haproxy.cfg").read_text()
        assert "balance first" in text and "balance leastconn" not in text
