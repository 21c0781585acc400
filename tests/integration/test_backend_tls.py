"""TLS to the pods, end to end: real HTTPS backends on 127.0.0.0/8 with trustme
certificates, the real controller and HAProxy. With --backend-ca a pod must show a
certificate of that CA naming the SNI (the Service's lb.host); without it nothing is
verified and the Service is reported. Pods that come and go stay Runtime API operations
(`add server` with the same ssl settings): no reload."""

from __future__ import annotations

from pathlib import Path

import trustme
from harness import Backends, Controller, backend_names, running, wait_for, write_manifest
from objects import port, service, slices

P = "serviceloadbalancer/"
HOST = "web.example"


def tls_service(
    c: Controller, endpoints: list[tuple[str, int]], *, app_protocol: str | None = "https"
) -> None:
    spec_port = port(443, name="tls")
    annotations = {P + "lb.host": HOST}
    if app_protocol is None:
        annotations[P + "lb.backend-protocol"] = "https"
    else:
        spec_port["appProtocol"] = app_protocol
    write_manifest(
        c.manifests / "web.yaml",
        [
            service("web", spec_port, annotations=annotations),
            *slices("web", endpoints, port_name="tls"),
        ],
    )


async def answers(c: Controller, n: int) -> list[tuple[int, str]]:
    """`n` requests by path (/web:443/...): status and the backend that answered."""
    got = []
    for _ in range(n):
        status, body, _ = await c.get("/web:443/x")
        got.append((status, backend_names([body])[0] if status == 200 else ""))
    return got


async def test_verified_tls_to_pods_follows_endpoint_churn_without_reload(
    tmp_path: Path, backends: Backends
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "pods-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    good = ca.issue_cert(HOST)
    first = await backends.https("tls-1", "127.0.12.1", good)
    second = await backends.https("tls-2", "127.0.12.2", good)
    # Not to be trusted: another CA's certificate for the same name, and this CA's
    # certificate for another name.
    stranger = await backends.https("stranger", "127.0.12.3", trustme.CA().issue_cert(HOST))
    misnamed = await backends.https("misnamed", "127.0.12.4", ca.issue_cert("other.example"))
    c = Controller(tmp_path, extra_args=["--backend-ca", str(ca_file)])
    c.manifests.mkdir(parents=True)
    tls_service(c, [first])
    with running(c):
        await c.wait_healthy()
        assert await answers(c, 2) == [(200, "tls-1")] * 2
        status, body, _ = await c.get("/x", host=HOST)  # by Host as well
        assert status == 200 and body.startswith("backend=tls-1 path=/x ")
        config = (c.run_dir / "haproxy.cfg").read_text()
        assert f"ssl verify required ca-file {ca_file} sni str({HOST})" in config
        before = (await c.show_proc()).reloads

        # A pod added at run time must get the same ssl settings, or it would be spoken
        # to in clear text (and the TLS pod would refuse it).
        tls_service(c, [first, second])

        async def both() -> bool:
            return {b for _, b in await answers(c, 4)} == {"tls-1", "tls-2"}

        await wait_for(both, what="both TLS pods answering")

        # Pods that cannot prove who they are get no request: their handshake fails,
        # the request goes to a pod that can.
        tls_service(c, [second, stranger, misnamed])

        async def only_second() -> bool:
            return await answers(c, 6) == [(200, "tls-2")] * 6

        await wait_for(only_second, what="only the verified pod answering")
        tls_service(c, [stranger])

        async def refused() -> bool:
            return await answers(c, 2) == [(503, "")] * 2

        await wait_for(refused, what="503 with only an unverifiable pod")
        tls_service(c, [first])
        await wait_for(lambda: answers_only(c, "tls-1"), what="tls-1 back")

        assert (await c.show_proc()).reloads == before
        metrics = await c.metrics()
        assert 'slb_haproxy_runtime_operations_total{op="add"}' in metrics
        assert "slb_haproxy_runtime_fallbacks_total 0.0" in metrics
        assert "not verified" not in c.log()


async def answers_only(c: Controller, name: str) -> bool:
    return await answers(c, 2) == [(200, name)] * 2


async def test_unverified_tls_to_pods_is_served_and_reported(
    tmp_path: Path, backends: Backends
) -> None:
    """Without --backend-ca any certificate is accepted (a self-signed one, as pods
    often have) and the Service is reported; lb.backend-protocol does what appProtocol
    does."""
    self_signed = await backends.https("self", "127.0.12.5", trustme.CA().issue_cert("pod"))
    c = Controller(tmp_path)
    c.manifests.mkdir(parents=True)
    tls_service(c, [self_signed], app_protocol=None)
    with running(c):
        await c.wait_healthy()
        assert await answers(c, 2) == [(200, "self")] * 2
        assert "ssl verify none sni str(web.example)" in (c.run_dir / "haproxy.cfg").read_text()
        await wait_for(
            lambda: _logged(c, "TLS to the pods of port 443 is not verified (no --backend-ca)"),
            what="the unverified Service reported",
        )


async def _logged(c: Controller, text: str) -> bool:
    return text in c.log()
