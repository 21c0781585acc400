"""HAProxyProcess and check_config against the real HAProxy, with real traffic on 127.0.0.1.

Every test uses its own temporary directory and ports picked by the OS, so two runs
can go at once. Nothing sleeps for a fixed time: tests wait for conditions with a
deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from service_loadbalancer.haproxy.check import check_config
from service_loadbalancer.haproxy.master import parse_show_proc
from service_loadbalancer.haproxy.process import HAProxyError, HAProxyProcess
from service_loadbalancer.metrics import Metrics

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

pytestmark = pytest.mark.skipif(not Path(HAPROXY).exists(), reason="needs haproxy")


# -- helpers -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config_text(port: int, body: str) -> str:
    return f"""\
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend fe
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string "{body}"
"""


def write_config(path: Path, port: int, body: str) -> None:
    """Replace the config atomically, as the reconciler does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(config_text(port, body))
    os.replace(tmp, path)


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `predicate` until it is true; fail the test after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            pytest.fail(f"condition not met within {within} s: {predicate}")
        await asyncio.sleep(0.02)


async def http_get(port: int) -> tuple[int, str]:
    """One GET on a new connection; returns status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode()


async def body_is(port: int, expected: str) -> bool:
    try:
        return await http_get(port) == (200, expected)
    except (OSError, ValueError, IndexError):
        return False


def alive(pid: int) -> bool:
    """Whether `pid` runs; an exited process that is a zombie does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@dataclass
class Setup:
    port: int
    config: Path
    run_dir: Path
    haproxy: HAProxyProcess


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    write_config(config, port, "v1")
    haproxy = HAProxyProcess(haproxy_bin=HAPROXY, config_path=config, run_dir=tmp_path / "run")
    try:
        yield Setup(port=port, config=config, run_dir=tmp_path / "run", haproxy=haproxy)
    finally:
        await haproxy.stop()


# -- check_config ------------------------------------------------------------------


async def test_check_config_accepts_a_valid_config(tmp_path: Path) -> None:
    config = tmp_path / "ok.cfg"
    write_config(config, free_port(), "v1")
    result = await check_config(HAPROXY, config)
    assert result.ok, result.output
    assert "valid" in result.output.lower()


async def test_check_config_reports_haproxys_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.cfg"
    config.write_text(config_text(free_port(), "v1") + "    no_such_keyword here\n")
    result = await check_config(HAPROXY, config)
    assert not result.ok
    assert "no_such_keyword" in result.output
    assert result.output == result.output.strip()


async def test_check_config_passes_env(tmp_path: Path) -> None:
    config = tmp_path / "env.cfg"
    config.write_text(config_text(free_port(), "v1").replace("bind 127.0.0.1:", "bind ${ADDR}:"))
    assert not (await check_config(HAPROXY, config, env={"ADDR": "not an address"})).ok
    assert (await check_config(HAPROXY, config, env={"ADDR": "127.0.0.1"})).ok


async def test_check_config_without_binary(tmp_path: Path) -> None:
    config = tmp_path / "ok.cfg"
    write_config(config, free_port(), "v1")
    missing = str(tmp_path / "no-haproxy-here")
    result = await check_config(missing, config)
    assert not result.ok
    assert missing in result.output


def test_parse_show_proc() -> None:
    text = (
        "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
        "1162            master          5 [failed: 1]   0d00h02m07s     2.6.12\n"
        "# workers\n"
        "1271            worker          0               0d00h00m00s     2.6.12\n"
        "# old workers\n"
        "1233            worker          3               0d00h00m43s     2.6.12\n"
        "# programs\n"
        "1244            foo             0               0d00h00m00s     -\n"
    )
    status = parse_show_proc(text)
    assert (status.master_pid, status.reloads, status.failed_reloads) == (1162, 5, 1)
    assert status.workers == (1271,)
    assert status.old_workers == (1233,)
    with pytest.raises(HAProxyError):
        parse_show_proc("Unknown command\n")


# -- start, reload, stop -------------------------------------------------------------


async def test_start_serves_and_reload_changes_responses(setup: Setup) -> None:
    haproxy = setup.haproxy
    await haproxy.start()
    assert haproxy.running()
    assert await haproxy.serving()
    assert haproxy.master_socket == setup.run_dir / "master.sock"
    assert await http_get(setup.port) == (200, "v1")
    first = await haproxy.show_proc()

    write_config(setup.config, setup.port, "v2")
    await haproxy.reload()
    assert haproxy.reloads == 1
    await wait_for(lambda: body_is(setup.port, "v2"))
    after = await haproxy.show_proc()
    assert after.master_pid == first.master_pid  # the master re-executed in place
    assert set(after.workers).isdisjoint(first.workers)

    write_config(setup.config, setup.port, "v3")
    await haproxy.reload()
    assert haproxy.reloads == 2
    await wait_for(lambda: body_is(setup.port, "v3"))
    assert haproxy.restarts == 0


async def test_failed_reload_raises_and_keeps_serving(setup: Setup) -> None:
    haproxy = setup.haproxy
    await haproxy.start()
    setup.config.write_text(config_text(setup.port, "v2") + "    no_such_keyword here\n")
    with pytest.raises(HAProxyError, match="no_such_keyword"):
        await haproxy.reload()
    assert haproxy.reloads == 0
    assert await haproxy.serving()
    assert await http_get(setup.port) == (200, "v1")

    write_config(setup.config, setup.port, "v2")
    await haproxy.reload()
    assert haproxy.reloads == 1
    await wait_for(lambda: body_is(setup.port, "v2"))


async def test_start_fails_with_haproxys_reason(setup: Setup) -> None:
    with socket.socket() as taken:  # no SO_REUSEPORT: HAProxy cannot bind next to it
        taken.bind(("127.0.0.1", setup.port))
        taken.listen()
        with pytest.raises(HAProxyError, match="cannot bind socket"):
            await setup.haproxy.start(timeout=10)
    assert not setup.haproxy.running()
    assert not await setup.haproxy.serving()


async def test_start_without_binary(tmp_path: Path) -> None:
    haproxy = HAProxyProcess(
        haproxy_bin=str(tmp_path / "no-haproxy-here"),
        config_path=tmp_path / "haproxy.cfg",
        run_dir=tmp_path / "run",
    )
    with pytest.raises(HAProxyError, match="no-haproxy-here"):
        await haproxy.start()
    assert not haproxy.running()


@dataclass
class Traffic:
    """What the clients of `test_reload_refuses_no_connection` saw."""

    requests: int = 0
    failures: list[str] = field(default_factory=list)

    def reached(self, count: int) -> bool:
        return self.requests >= count


async def test_reload_refuses_no_connection(setup: Setup) -> None:
    haproxy = setup.haproxy
    await haproxy.start()
    traffic = Traffic()
    done = asyncio.Event()

    async def client() -> None:
        """New connection per request, back to back, until done."""
        while not done.is_set():
            try:
                status, body = await http_get(setup.port)
            except (OSError, ValueError, IndexError) as err:
                traffic.failures.append(repr(err))
            else:
                if status != 200 or not body.startswith("v"):
                    traffic.failures.append(f"{status} {body!r}")
            traffic.requests += 1

    clients = [asyncio.create_task(client(), name=f"client-{i}") for i in range(4)]
    try:
        for version in range(2, 12):
            write_config(setup.config, setup.port, f"v{version}")
            await haproxy.reload()
            await wait_for(partial(body_is, setup.port, f"v{version}"))
            # Traffic keeps flowing after each reload, before the next one.
            await wait_for(partial(traffic.reached, traffic.requests + 20))
    finally:
        done.set()
        await asyncio.gather(*clients)
    assert haproxy.reloads == 10
    assert traffic.requests >= 200
    assert traffic.failures == []


async def test_supervise_restarts_a_killed_master(setup: Setup) -> None:
    haproxy = setup.haproxy
    await haproxy.start()
    supervisor = asyncio.create_task(haproxy.supervise(), name="supervise")
    old_master = haproxy.pid
    assert old_master is not None
    old_workers = (await haproxy.show_proc()).workers

    os.kill(old_master, signal.SIGKILL)
    await wait_for(lambda: haproxy.restarts == 1 and haproxy.pid not in (None, old_master))
    await wait_for(haproxy.serving)
    await wait_for(lambda: body_is(setup.port, "v1"))
    assert not any(alive(pid) for pid in old_workers)

    await haproxy.stop()
    await asyncio.wait_for(supervisor, 10)  # returns once stop() was called
    assert haproxy.restarts == 1


async def test_supervise_restarts_are_counted_in_the_metrics(tmp_path: Path) -> None:
    """What the controller wires up: each restart after a death is one
    slb_haproxy_restarts_total, and none is a reload."""
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    write_config(config, port, "v1")
    metrics = Metrics()
    haproxy = HAProxyProcess(
        haproxy_bin=HAPROXY,
        config_path=config,
        run_dir=tmp_path / "run",
        on_restart=metrics.haproxy_restarts.inc,
    )

    def restarts() -> float | None:
        return metrics.registry.get_sample_value("slb_haproxy_restarts_total")

    try:
        await haproxy.start()
        supervisor = asyncio.create_task(haproxy.supervise(), name="supervise")
        assert restarts() == 0
        for count in (1, 2):
            master = haproxy.pid
            assert master is not None
            os.kill(master, signal.SIGKILL)
            await wait_for(partial(lambda n: restarts() == n, count), within=20)
            assert haproxy.pid not in (None, master)
            assert haproxy.restarts == count
            await wait_for(haproxy.serving)
        assert haproxy.reloads == 0
    finally:
        await haproxy.stop()
    await asyncio.wait_for(supervisor, 10)
    assert restarts() == 2


async def test_cancelling_supervise_leaves_haproxy_to_stop(setup: Setup) -> None:
    haproxy = setup.haproxy
    await haproxy.start()
    supervisor = asyncio.create_task(haproxy.supervise(), name="supervise")
    await asyncio.sleep(0)  # let it start watching
    supervisor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervisor
    assert await haproxy.serving()
    await haproxy.stop()
    assert not haproxy.running()


async def test_stop_leaves_no_process(setup: Setup) -> None:
    haproxy = setup.haproxy
    await haproxy.start()
    # A worker with a long-lived connection would survive a soft stop: the stop is hard.
    _, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    master = haproxy.pid
    assert master is not None
    workers = (await haproxy.show_proc()).workers
    assert workers
    assert all(alive(pid) for pid in (master, *workers))

    await haproxy.stop()
    writer.close()
    assert not haproxy.running()
    assert not await haproxy.serving()
    assert not any(alive(pid) for pid in (master, *workers))
    await haproxy.stop()  # a second stop is harmless

    await haproxy.start()  # and it can start again
    assert await body_is(setup.port, "v1")


async def test_start_retires_a_master_left_on_the_same_run_dir(setup: Setup) -> None:
    """A controller that crashed leaves its HAProxy behind; the next one takes over."""
    earlier = setup.haproxy
    await earlier.start()
    left_behind = earlier.pid
    assert left_behind is not None
    write_config(setup.config, setup.port, "v2")
    later = HAProxyProcess(haproxy_bin=HAPROXY, config_path=setup.config, run_dir=setup.run_dir)
    try:
        await later.start()
        assert later.pid != left_behind
        await wait_for(lambda: not earlier.running())
        assert await http_get(setup.port) == (200, "v2")
    finally:
        await later.stop()


async def test_reloads_are_serialised(setup: Setup) -> None:
    haproxy = setup.haproxy
    await haproxy.start()
    write_config(setup.config, setup.port, "v2")
    await asyncio.gather(*(haproxy.reload() for _ in range(3)))
    assert haproxy.reloads == 3
    assert (await haproxy.show_proc()).reloads == 3


async def test_adopt_takes_over_a_master_left_serving(setup: Setup) -> None:
    """A controller crashed: the next one adopts its master (same pid), reloads it,
    restarts it when it dies and stops it, leaving nothing behind."""
    assert not await setup.haproxy.adopt()  # nothing there yet
    earlier = setup.haproxy
    await earlier.start()
    master = earlier.pid
    assert master is not None
    later = HAProxyProcess(haproxy_bin=HAPROXY, config_path=setup.config, run_dir=setup.run_dir)
    try:
        assert await later.adopt()
        assert later.adopted and later.pid == master
        with pytest.raises(HAProxyError, match="already runs"):
            await later.adopt()
        write_config(setup.config, setup.port, "v2")
        await later.reload()
        await wait_for(lambda: body_is(setup.port, "v2"))
        assert (await later.show_proc()).master_pid == master

        supervisor = asyncio.create_task(later.supervise(), name="supervise")
        os.kill(master, signal.SIGKILL)
        await wait_for(lambda: later.restarts == 1 and later.pid not in (None, master))
        assert not later.adopted
        await wait_for(lambda: body_is(setup.port, "v2"))
        workers = (await later.show_proc()).workers
    finally:
        await later.stop()
    await asyncio.wait_for(supervisor, 10)
    assert not any(alive(pid) for pid in (master, *workers))


async def test_adopt_refuses_a_master_that_is_not_ours(setup: Setup) -> None:
    await setup.haproxy.start()
    other = setup.run_dir.parent / "other"
    other.mkdir()
    # Our pid file, but another run directory's master socket: not ours.
    shutil.copy(setup.haproxy.pid_file, other / "haproxy.pid")
    stranger = HAProxyProcess(haproxy_bin=HAPROXY, config_path=setup.config, run_dir=other)
    assert not await stranger.adopt()
    assert not stranger.running()


async def test_soft_stop_is_bounded(setup: Setup) -> None:
    """A connection that never finishes its request holds a soft stop only `drain` long;
    then the stop is hard and nothing is left."""
    haproxy = setup.haproxy
    await haproxy.start()
    _, writer = await asyncio.open_connection("127.0.0.1", setup.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n")  # headers never end
    await writer.drain()
    master = haproxy.pid
    assert master is not None
    workers = (await haproxy.show_proc()).workers
    await haproxy.stop(drain=0.5)
    writer.close()
    assert not haproxy.running()
    assert not any(alive(pid) for pid in (master, *workers))
