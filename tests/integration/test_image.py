"""The container image, built and run as a cluster runs it.

The image is built by `deploy/image/build.sh` (what `make image` runs: podman or docker,
a debootstrap base when no registry answers, the wheels made on the host) under a tag of
this run's own, and run the way the DaemonSet runs it: as the image's user, read-only root,
every capability dropped but NET_BIND_SERVICE, on the host's network, with a manifests
directory mounted in. Then, from outside the container, with /proc and real requests:
a request through HAProxy on port 80 is answered by a real backend; every process is UID
10001; the socket on port 80 is HAProxy's, opened as UID 10001 with no capability but
NET_BIND_SERVICE (its file capability); /healthz answers; `podman stop` (SIGTERM, then
SIGKILL after the DaemonSet's grace period) ends it cleanly with no process left. And the
image holds no compiler, no pip (nor its cache) and no test files.

Port 80 is bound on an address of this run's own (127.x.y.z), so two runs do not meet.
Skipped only when no container runtime can run a container on this machine: the build
script then exits with 77 and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from harness import Backends, backend_names, free_port, request, wait_for, write_manifest
from objects import service, slices

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "deploy" / "image" / "build.sh"
CONTAINERS_CONF = ROOT / "deploy" / "image" / "containers.conf"
DAEMONSET = ROOT / "deploy" / "kubernetes" / "30-daemonset.yaml"
NO_RUNTIME = 77
UID = 10001
CAP_NET_BIND_SERVICE = 1 << 10
SIZE_TARGET = 200_000_000
#: The engine's default capabilities but NET_BIND_SERVICE, dropped one by one: the DaemonSet's
#: `drop: [ALL], add: [NET_BIND_SERVICE]`. Not `--cap-drop ALL --cap-add NET_BIND_SERVICE`:
#: podman gives capabilities added for a non-root user as ambient ones, to every process,
#: which Kubernetes does not, and HAProxy's file capability would go untested.
CAP_DROP = (
    "AUDIT_WRITE,CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,MKNOD,NET_RAW,SETFCAP,SETGID,SETPCAP,"
    "SETUID,SYS_CHROOT"
)


@dataclass(frozen=True)
class Image:
    engine: str
    ref: str
    size: int
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.engine, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def pid_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove_leftovers(env: dict[str, str]) -> None:
    """Remove what killed runs of this test left: their containers (`slb-test-PID-...`)
    and then their images (`localhost/service-loadbalancer:test-PID`), once PID runs no
    more. A running test's are left alone."""
    engine = shutil.which("podman") or shutil.which("docker")
    if engine is None:
        return

    def listed(*args: str) -> list[str]:
        out = subprocess.run(
            [engine, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        return out.stdout.split() if out.returncode == 0 else []

    def dead(pattern: str, name: str) -> bool:
        found = re.fullmatch(pattern, name)
        return found is not None and not pid_is_running(int(found.group(1)))

    for kind, names, pattern in (
        ("container", listed("ps", "--all", "--format", "{{.Names}}"), r"slb-test-(\d+)-\w+"),
        (
            "image",
            listed("images", "--format", "{{.Repository}}:{{.Tag}}"),
            r"localhost/service-loadbalancer:test-(\d+)",
        ),
    ):
        leftovers = [name for name in names if dead(pattern, name)]
        if leftovers:
            rm = ["rm", "--force"] if kind == "container" else ["rmi", "--force"]
            subprocess.run(
                [engine, *rm, *leftovers], env=env, capture_output=True, timeout=120, check=False
            )


@pytest.fixture(scope="module")
def image(pytestconfig: pytest.Config) -> Iterator[Image]:
    ref = f"localhost/service-loadbalancer:test-{os.getpid()}"
    env = {
        **os.environ,
        "IMAGE": ref,
        "PYTHON": sys.executable,
        "CONTAINERS_CONF": str(CONTAINERS_CONF),
    }
    remove_leftovers(env)
    started = time.monotonic()
    built = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    took = time.monotonic() - started
    if built.returncode == NO_RUNTIME:
        pytest.skip(built.stderr.strip().splitlines()[-1])
    assert built.returncode == 0, f"{BUILD_SCRIPT} failed:\n{built.stdout}\n{built.stderr}"
    found = re.search(r"\((\w+), base ([^)]+)\)", built.stdout)
    assert found, built.stdout
    engine, base = found.groups()
    size_text = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", ref],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    built_image = Image(engine=engine, ref=ref, size=int(size_text), env=env)
    # In the output of every run (CI's too), not only when a test fails.
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nimage {ref}: {built_image.size / 1e6:.0f} MB "
                f"({engine}, base {base}; build step took {took:.0f} s)"
            )
    yield built_image
    built_image.run("rmi", "--force", ref)


# ------------------------------------------------------------------- the processes, by /proc


@dataclass(frozen=True)
class Process:
    pid: int
    argv: tuple[str, ...]
    uids: tuple[int, ...]
    gids: tuple[int, ...]
    cap_effective: int
    cap_permitted: int
    cap_bounding: int

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name if self.argv else ""


def read_process(pid: int) -> Process | None:
    """None when it is gone, or a zombie (it holds nothing any more)."""
    try:
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if ":" in line
        )
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if fields.get("State", "").strip().startswith("Z"):
        return None
    return Process(
        pid=pid,
        argv=tuple(a.decode(errors="replace") for a in argv if a),
        uids=tuple(int(v) for v in fields["Uid"].split()),
        gids=tuple(int(v) for v in fields["Gid"].split()),
        cap_effective=int(fields["CapEff"], 16),
        cap_permitted=int(fields["CapPrm"], 16),
        cap_bounding=int(fields["CapBnd"], 16),
    )


def pid_namespace(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/pid")
    return None


def processes_in(namespace: str) -> list[Process]:
    """Every live process of the container: those in its PID namespace."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_namespace(int(entry.name)) == namespace:
            process = read_process(int(entry.name))
            if process is not None:
                found.append(process)
    return found


def listening_socket(address: str, port: int) -> tuple[int, int] | None:
    """(uid, inode) of the TCP socket listening on address:port, from /proc/net/tcp."""
    local = f"{socket.htonl(int.from_bytes(socket.inet_aton(address), 'big')):08X}:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":  # 0A: LISTEN
            return int(fields[7]), int(fields[9])
    return None


def socket_owners(inode: int, candidates: list[Process]) -> list[Process]:
    owners = []
    for process in candidates:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{process.pid}/fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    owners.append(process)
                    break
    return owners


def port_is_free(address: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def grace_period() -> int:
    daemonset = yaml.safe_load(DAEMONSET.read_text(encoding="utf-8"))
    return int(daemonset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


# ------------------------------------------------------------------------------------ tests


async def test_serves_on_port_80_as_uid_10001_and_stops_cleanly_on_sigterm(
    image: Image, tmp_path: Path
) -> None:
    # HAProxy's and /healthz's own address: port 80 on it is this run's alone.
    address = f"127.{random.randint(100, 199)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    assert port_is_free(address, 80), f"something listens on port 80 of {address} (or *:80)"
    backends = Backends()
    name = f"slb-test-{os.getpid()}-{random.randrange(1 << 32):08x}"
    try:
        web1 = await backends.http("web-1", "127.0.9.1")
        web2 = await backends.http("web-2", "127.0.9.2")
        manifests, run_dir = tmp_path / "manifests", tmp_path / "run"
        manifests.mkdir()
        run_dir.mkdir()
        # The DaemonSet's emptyDir: writable by the image's user.
        if os.geteuid() == 0:
            os.chown(run_dir, UID, UID)
        else:
            run_dir.chmod(0o777)
        write_manifest(manifests / "web.yaml", [service("web", 80), *slices("web", [web1, web2])])
        healthz = free_port(address)
        started = image.run(
            "run", "--detach", "--name", name,
            "--network", "host", "--read-only",
            "--cap-drop", CAP_DROP,
            "--volume", f"{manifests}:/manifests:ro",
            "--volume", f"{run_dir}:/var/run/service-loadbalancer",
            image.ref,
            "run", "--manifests", "/manifests",
            "--bind-address", address,
            "--http-port", "80",
            "--healthz-port", str(healthz),
            "--stats-port", str(free_port(address)),
            "--https-port", str(free_port(address)),
        )  # fmt: skip
        assert started.returncode == 0, started.stderr

        def logs() -> str:
            out = image.run("logs", name)
            return out.stdout + out.stderr

        async def answered() -> bool:
            return (await request(80, "/web/", address=address, limit=2)).status == 200

        await wait_for(answered, within=60, what=f"an answer on {address}:80; logs:\n{logs()}")
        bodies = [(await request(80, "/web/", address=address)).body for _ in range(4)]
        assert set(backend_names(bodies)) == {"web-1", "web-2"}, bodies

        async def healthy() -> bool:
            return (await request(healthz, "/healthz", address=address, limit=2)).status == 200

        # Ready once the first complete sync is applied, which may follow the first answer.
        await wait_for(healthy, within=60, what=f"/healthz 200; logs:\n{logs()}")

        pid = int(image.run("inspect", "--format", "{{.State.Pid}}", name).stdout)
        namespace = pid_namespace(pid)
        assert namespace is not None
        inside = processes_in(namespace)
        programs = sorted(p.program for p in inside)
        assert {"tini", "haproxy"} <= set(programs), programs
        assert any("service-loadbalancer" in " ".join(p.argv) for p in inside), programs
        for process in inside:
            assert set(process.uids) == {UID}, process
            assert set(process.gids) == {UID}, process
            assert process.cap_bounding == CAP_NET_BIND_SERVICE, process
            if process.program != "haproxy":  # only HAProxy's file capability gives one
                assert process.cap_effective == process.cap_permitted == 0, process

        listener = listening_socket(address, 80)
        assert listener is not None, f"nothing listens on {address}:80"
        socket_uid, inode = listener
        assert socket_uid == UID
        owners = socket_owners(inode, inside)
        assert owners, f"the socket on {address}:80 is not the container's"
        for owner in owners:
            assert owner.program == "haproxy", owner
            assert owner.cap_permitted == CAP_NET_BIND_SERVICE, owner

        # SIGTERM through tini; podman sends SIGKILL after the grace period, and the
        # exit status would then be 137.
        stop = await asyncio.create_subprocess_exec(
            image.engine, "stop", "--time", str(grace_period()), name,
            env=image.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stop_err = await stop.communicate()
        assert stop.returncode == 0, stop_err.decode()
        state = image.run("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        assert state.stdout.split() == ["exited", "0"], f"{state.stdout}\n{logs()}"
        assert "stopped" in logs()
        assert processes_in(namespace) == []
        assert [read_process(p.pid) for p in inside] == [None] * len(inside)
        assert listening_socket(address, 80) is None
    finally:
        image.run("rm", "--force", name)
        await backends.close()


CONTENTS = r"""
import json, os, re, shutil, stat, struct, sys

compiler = re.compile(r"(.*-)?(cc|c\+\+|gcc|g\+\+|clang|cpp|as|ld|tcc|cc1|cc1plus|rustc)(-[\d.]+)?")
test_file = re.compile(r"(test_.*|.*_test|conftest)\.py")
found = {"compilers": [], "pip cache": [], "pip in the venv": [], "test files": [], "wheels": []}
for top, dirs, files in os.walk("/"):
    if top in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    for name in dirs:
        path = os.path.join(top, name)
        if name in ("tests", "test"):
            found["test files"].append(path + "/")
        if name == "pip" and os.path.basename(top) == ".cache":
            found["pip cache"].append(path + "/")
        if path.startswith("/opt/") and re.fullmatch(r"pip(-.*\.dist-info)?", name):
            found["pip in the venv"].append(path + "/")
    for name in files:
        path = os.path.join(top, name)
        mode = os.lstat(path).st_mode
        if compiler.fullmatch(name) and (mode & 0o111 or os.path.islink(path)):
            found["compilers"].append(path)
        if test_file.fullmatch(name):
            found["test files"].append(path)
        # Debian's python3-venv and CPython's ensurepip carry the pip wheel venv installs.
        if name.endswith(".whl") and not re.search(r"/python-wheels/|/ensurepip/", path):
            found["wheels"].append(path)
haproxy = os.path.realpath("/usr/sbin/haproxy")
caps = os.getxattr(haproxy, "security.capability")
magic, permitted = struct.unpack_from("<II", caps)
found["haproxy capabilities"] = {"effective": bool(magic & 1), "permitted": permitted}
print(json.dumps(found))
"""


def test_holds_no_compiler_no_pip_and_no_test_files(image: Image) -> None:
    """Looked at as root inside the image, so that /root is seen too."""
    print(f"image size: {image.size / 1e6:.0f} MB")
    scan = image.run(
        "run", "--rm", "--network", "none", "--user", "0",
        "--entrypoint", "python3", image.ref, "-c", CONTENTS,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr
    found = json.loads(scan.stdout)
    assert found.pop("haproxy capabilities") == {
        "effective": True,
        "permitted": CAP_NET_BIND_SERVICE,
    }
    assert found == {
        "compilers": [],
        "pip cache": [],
        "pip in the venv": [],
        "test files": [],
        "wheels": [],
    }
    assert image.size < SIZE_TARGET, f"{image.size / 1e6:.0f} MB"


def test_the_package_and_the_kubernetes_client_import_as_the_image_user(image: Image) -> None:
    """kubernetes_asyncio's generated classes are kept as bytecode only (see the
    Dockerfile): they must still import, on a read-only root, as the image's user."""
    checked = image.run(
        "run", "--rm", "--network", "none", "--read-only",
        "--entrypoint", "python3", image.ref, "-c",
        "import kubernetes_asyncio.client, service_loadbalancer.kube.client, "
        "service_loadbalancer.cli; print(kubernetes_asyncio.client.CoreV1Api.__name__)",
    )  # fmt: skip
    assert (checked.returncode, checked.stdout.strip()) == (0, "CoreV1Api"), checked.stderr
    version = image.run("run", "--rm", "--network", "none", image.ref, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("service-loadbalancer "), version.stdout


# ------------------------------------------------------- the Debian mirror of apt's lists


def print_mirror(tmp_path: Path, suite: str, os_release: str = "ID=debian\n") -> str:
    """`build.sh --print-mirror SUITE` on the apt lists written under tmp_path/apt."""
    (tmp_path / "os-release").write_text(os_release)
    env = {
        **os.environ,
        "APT_DIR": str(tmp_path / "apt"),
        "OS_RELEASE": str(tmp_path / "os-release"),
    }
    printed = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-mirror", suite],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (printed.returncode, printed.stderr) == (0, ""), printed
    return printed.stdout


def apt_lists(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = tmp_path / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_mirror_of_one_line_sources_lists(tmp_path: Path) -> None:
    apt_lists(
        tmp_path,
        {
            "sources.list": (
                "# deb http://commented.example/debian bookworm main\n"
                "deb-src http://src.example/debian bookworm main\n"
                "deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n"
                "deb [ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ] "
                "http://mirror.example/debian bookworm main  # the mirror\n"
                "deb [arch=amd64] http://mirror.example/debian bookworm-updates main\n"
            ),
            "sources.list.d/security.list": (
                "deb https://security.example/debian-security bookworm-security main\n"
            ),
            "sources.list.d/other.list.disabled": (
                "deb http://disabled.example/debian bookworm-security main\n"
            ),
        },
    )
    assert print_mirror(tmp_path, "bookworm") == "http://mirror.example/debian\n"
    assert print_mirror(tmp_path, "bookworm-updates") == "http://mirror.example/debian\n"
    assert print_mirror(tmp_path, "bookworm-security") == (
        "https://security.example/debian-security\n"
    )


def test_mirror_of_deb822_sources_in_any_field_order(tmp_path: Path) -> None:
    apt_lists(
        tmp_path,
        {
            "sources.list.d/a-disabled.sources": (
                "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\n"
                "Components: main\nEnabled: no\n"
            ),
            "sources.list.d/b-src.sources": (
                "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"
            ),
            "sources.list.d/debian.sources": (
                "Types: deb\n"
                "# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
                "Suites: bookworm\n bookworm-updates\n"
                "uris: http://deb.example/debian\n"
                "Components: main\n"
                "\n"
                "Types: deb deb-src\n"
                "URIs: http://deb.example/debian-security\n"
                "Suites: bookworm-security\n"
            ),
        },
    )
    assert print_mirror(tmp_path, "bookworm") == "http://deb.example/debian\n"
    assert print_mirror(tmp_path, "bookworm-updates") == "http://deb.example/debian\n"
    assert print_mirror(tmp_path, "bookworm-security") == "http://deb.example/debian-security\n"


def test_mirror_of_debian_cloud_images_mirror_file_lists(tmp_path: Path) -> None:
    """Debian 12's and 13's cloud images: `URIs: mirror+file:///etc/apt/mirrors/...`."""
    mirrors = tmp_path / "mirrors"
    mirrors.mkdir()
    (mirrors / "debian.list").write_text(
        "# the mirrors\nmirror+https://not.a.url.example/list\n"
        "https://cdn.example/debian\tpriority:1\nhttp://second.example/debian\n"
    )
    (mirrors / "debian-security.list").write_text("https://cdn.example/debian-security\n")
    apt_lists(
        tmp_path,
        {
            "sources.list.d/debian.sources": (
                f"Types: deb deb-src\nURIs: mirror+file://{mirrors}/debian.list\n"
                "Suites: bookworm bookworm-updates bookworm-backports\nComponents: main\n\n"
                f"Types: deb deb-src\nURIs: mirror+file://{mirrors}/debian-security.list\n"
                "Suites: bookworm-security\nComponents: main\n"
            ),
        },
    )
    assert print_mirror(tmp_path, "bookworm") == "https://cdn.example/debian\n"
    assert print_mirror(tmp_path, "bookworm-security") == "https://cdn.example/debian-security\n"


def test_mirror_falls_back_to_deb_debian_org_past_unusable_uris(tmp_path: Path) -> None:
    (tmp_path / "empty.list").write_text("# no mirror here\nfile:///srv/debian\n")
    apt_lists(
        tmp_path,
        {
            "sources.list.d/debian.sources": (
                f"Types: deb\nURIs: mirror+file://{tmp_path}/empty.list "
                f"mirror+file://{tmp_path}/missing.list mirror+http://m.example/list\n"
                "Suites: bookworm\n\n"
                "Types: deb\nURIs: file:///srv/debian-security\nSuites: bookworm-security\n"
            ),
        },
    )
    assert print_mirror(tmp_path, "bookworm") == "http://deb.debian.org/debian\n"
    assert print_mirror(tmp_path, "bookworm-security") == (
        "http://deb.debian.org/debian-security\n"
    )
    (tmp_path / "apt" / "sources.list.d" / "debian.sources").unlink()
    assert print_mirror(tmp_path, "bookworm") == "http://deb.debian.org/debian\n"


def test_mirror_of_a_debian_host_of_another_release(tmp_path: Path) -> None:
    """A trixie host's mirror serves bookworm too; an Ubuntu host's archive does not."""
    apt_lists(
        tmp_path,
        {
            "sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://trixie.example/debian\n"
                "Suites: trixie trixie-updates\n\n"
                "Types: deb\nURIs: http://trixie.example/debian-security\n"
                "Suites: trixie-security\n"
            ),
        },
    )
    trixie = 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_CODENAME=trixie\n'
    assert print_mirror(tmp_path, "bookworm", trixie) == "http://trixie.example/debian\n"
    assert print_mirror(tmp_path, "bookworm-security", trixie) == (
        "http://trixie.example/debian-security\n"
    )
    apt_lists(
        tmp_path,
        {
            "sources.list.d/debian.sources": (
                "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu\nSuites: noble noble-updates\n"
            ),
        },
    )
    noble = "ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n"
    assert print_mirror(tmp_path, "bookworm", noble) == "http://deb.debian.org/debian\n"


def test_a_killed_runs_container_and_image_are_removed_by_the_next_run(image: Image) -> None:
    """What remove_leftovers (run before each build) does: a dead PID's container and
    image go, a running PID's (this run's) stay."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    leftover = f"localhost/service-loadbalancer:test-{gone.pid}"
    container = f"slb-test-{gone.pid}-{random.randrange(1 << 32):08x}"
    ours = f"slb-test-{os.getpid()}-{random.randrange(1 << 32):08x}"
    try:
        assert image.run("tag", image.ref, leftover).returncode == 0
        for name, ref in ((container, leftover), (ours, image.ref)):
            created = image.run("create", "--name", name, ref, "--version")
            assert created.returncode == 0, created.stderr
        remove_leftovers(image.env)
        names = image.run("ps", "--all", "--format", "{{.Names}}").stdout.split()
        assert container not in names
        assert ours in names
        assert image.run("image", "inspect", leftover).returncode != 0
        assert image.run("image", "inspect", image.ref).returncode == 0
    finally:
        image.run("rm", "--force", container, ours)
        image.run("rmi", leftover)
