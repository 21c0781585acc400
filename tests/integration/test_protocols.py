"""Protocols end to end: HTTP/2 from real clients (curl) over TLS (ALPN) and in clear
text (prior knowledge), with HTTP/1.1 clients unaffected. The real controller and
HAProxy, backends on 127.0.0.0/8."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import trustme
from harness import DEADLINE, Backends, Controller, running, write_manifest
from objects import service, slices

P = "serviceloadbalancer/"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


async def curl(*args: str) -> tuple[str, str]:
    """curl's `<http_version> <status>` line and body, within the test deadline."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", str(int(DEADLINE)), "-o", "-",
        "-w", "\n%{http_version} %{http_code}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE + 5)
    assert proc.returncode == 0, err.decode()
    body, _, status = out.decode().rpartition("\n")
    return status, body


async def test_http2_to_clients_over_tls_and_cleartext(tmp_path: Path, backends: Backends) -> None:
    ca = trustme.CA()
    default = tmp_path / "default.pem"
    ca.issue_cert("default.example").private_key_and_cert_chain_pem.write_to_path(str(default))
    a = await backends.http("a-1", "127.0.6.1")
    c = Controller(tmp_path, extra_args=["--ssl-cert", str(default)])
    c.manifests.mkdir(parents=True)
    write_manifest(
        c.manifests / "apps.yaml",
        [service("a", 80, annotations={P + "lb.sslTerm": "true"}), *slices("a", [a])],
    )
    with running(c):
        await c.wait_healthy()
        https = f"https://127.0.0.1:{c.https_port}/a/x"
        http = f"http://127.0.0.1:{c.http_port}/a/x"
        status, body = await curl("--http2", "-k", https)
        assert status == "2 200" and body.startswith("backend=a-1 path=/x ")
        status, body = await curl("--http1.1", "-k", https)
        assert status == "1.1 200" and body.startswith("backend=a-1 path=/x ")
        status, body = await curl("--http2-prior-knowledge", http)
        assert status == "2 200" and body.startswith("backend=a-1 path=/x ")
        status, body = await curl("--http1.1", http)
        assert status == "1.1 200" and body.startswith("backend=a-1 path=/x ")
