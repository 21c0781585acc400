"""gRPC end to end: a real grpcio client and real grpcio servers on 127.0.0.0/8, through
the real controller and HAProxy, routed by Host (lb.host): over cleartext HTTP/2 (prior
knowledge on the HTTP port) to pods whose port says `appProtocol: grpc`, and over HTTPS
(terminated here, HTTP/2 by ALPN) to cleartext pods and to pods that speak TLS
themselves (lb.backend-protocol h2, verified with --backend-ca).

grpcio keeps a client's TCP connection open after its channel is closed (seen after a
streaming call), so HAProxy's soft stop would wait the whole --drain-timeout (30 s) for
it when the test ends: these controllers get a short one."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from harness import DEADLINE, Controller, running, wait_for, write_manifest
from objects import port, service, slices

P = "serviceloadbalancer/"
STREAM = "/slb.test.Numbers/Count"
#: See the module docstring: what the soft stop waits for an idle client at the end.
SHORT_DRAIN = ["--drain-timeout", "1"]


class GrpcPods:
    """grpcio servers, each with grpc.health.v1 and a server-streaming method that
    sends `<n>` messages and names itself in its trailers."""

    def __init__(self) -> None:
        self.servers: list[grpc.aio.Server] = []

    async def start(
        self, name: str, address: str, *, tls: trustme.LeafCert | None = None
    ) -> tuple[str, int]:
        async def count(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            for i in range(int(request.decode())):
                yield f"{name}:{i}".encode()
            context.set_trailing_metadata((("pod", name),))

        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "slb.test.Numbers", {"Count": grpc.unary_stream_rpc_method_handler(count)}
        )
        server.add_generic_rpc_handlers((handler,))
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        if tls is None:
            number = server.add_insecure_port(f"{address}:0")
        else:
            chain = b"".join(pem.bytes() for pem in tls.cert_chain_pems)
            credentials = grpc.ssl_server_credentials([(tls.private_key_pem.bytes(), chain)])
            number = server.add_secure_port(f"{address}:0", credentials)
        await server.start()
        self.servers.append(server)
        return address, number

    async def close(self) -> None:
        servers, self.servers = self.servers, []
        for server in servers:
            await server.stop(None)


@pytest.fixture
async def pods() -> AsyncIterator[GrpcPods]:
    p = GrpcPods()
    yield p
    await p.close()


def grpc_service(name: str, **annotations: str) -> dict[str, object]:
    return service(
        name,
        port(50051, name="grpc") | {"appProtocol": "grpc"},
        annotations={P + k: v for k, v in annotations.items()},
    )


async def test_grpc_unary_and_streaming_by_host(tmp_path: Path, pods: GrpcPods) -> None:
    first = await pods.start("g-1", "127.0.7.1")
    c = Controller(tmp_path, extra_args=SHORT_DRAIN)
    c.manifests.mkdir(parents=True)
    manifest = c.manifests / "apps.yaml"
    write_manifest(
        manifest,
        [grpc_service("g", **{"lb.host": "grpc.example"}), *slices("g", [first], port_name="grpc")],
    )
    with running(c):
        await c.wait_healthy()
        options = (("grpc.default_authority", "grpc.example"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{c.http_port}", options=options) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING

            count = ch.unary_stream(STREAM)
            call = count(b"3", timeout=DEADLINE)
            assert [m async for m in call] == [b"g-1:0", b"g-1:1", b"g-1:2"]
            assert await call.code() == grpc.StatusCode.OK
            assert ("pod", "g-1") in tuple(await call.trailing_metadata())

            # A pod added while running is an `add server` with the rendered arguments:
            # it must speak HTTP/2 too (proto h2), or the gRPC call fails.
            second = await pods.start("g-2", "127.0.7.2")
            write_manifest(
                manifest,
                [
                    grpc_service("g", **{"lb.host": "grpc.example"}),
                    *slices("g", [first, second], port_name="grpc"),
                ],
            )

            async def reaches_second() -> bool:
                call = count(b"1", timeout=DEADLINE)
                got = [m async for m in call]
                return got == [b"g-2:0"] and ("pod", "g-2") in tuple(await call.trailing_metadata())

            await wait_for(reaches_second, what="a gRPC call answered by the added pod")
            metrics = await c.metrics()
            assert 'slb_haproxy_runtime_operations_total{op="add"} 1.0' in metrics
            assert "slb_haproxy_runtime_fallbacks_total 0.0" in metrics

        # No route for this Host: a gRPC status, not the HTML 404.
        other = (("grpc.default_authority", "nowhere.example"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{c.http_port}", options=other) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
            assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # A trailers-only gRPC answer, with the content-type gRPC requires (HAProxy drops
        # the one of an empty reply; the template sets it after).
        if shutil.which("curl") is not None:
            curl = await asyncio.create_subprocess_exec(
                "curl", "-sS", "-o", "/dev/null", "-D", "-", "--http2-prior-knowledge",
                "--max-time", str(int(DEADLINE)), "-X", "POST",
                "-H", "content-type: application/grpc", "-H", "Host: nowhere.example",
                f"http://127.0.0.1:{c.http_port}/grpc.health.v1.Health/Check",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            headers = (await curl.communicate())[0].decode().lower()
            assert "content-type: application/grpc" in headers, headers
            assert "grpc-status: 12" in headers, headers


async def test_grpc_over_https_to_cleartext_and_tls_pods(tmp_path: Path, pods: GrpcPods) -> None:
    """A gRPC client over TLS (HTTP/2 by ALPN on the HTTPS port): to an h2c pod, and to a
    pod that terminates TLS itself, spoken to in HTTP/2 over TLS (`alpn h2`) and verified
    against its CA with the Service's lb.host as SNI; a pod added at run time gets the
    same (`add server` with ssl and alpn), with no reload."""
    ca = trustme.CA()
    front = tmp_path / "front.pem"
    names = ("grpc.example", "secure.example", "nowhere.example")
    ca.issue_cert(*names).private_key_and_cert_chain_pem.write_to_path(str(front))
    pod_ca = trustme.CA()
    pod_ca_file = tmp_path / "pods-ca.pem"
    pod_ca.cert_pem.write_to_path(str(pod_ca_file))
    pod_cert = pod_ca.issue_cert("secure.example")
    clear = await pods.start("c-1", "127.0.7.21")
    secure = await pods.start("s-1", "127.0.7.22", tls=pod_cert)
    tls_flags = ["--ssl-cert", str(front), "--backend-ca", str(pod_ca_file)]
    c = Controller(tmp_path, extra_args=[*tls_flags, *SHORT_DRAIN])
    c.manifests.mkdir(parents=True)
    manifest = c.manifests / "apps.yaml"
    term = {"lb.sslTerm": "true"}

    def write(secure_pods: list[tuple[str, int]]) -> None:
        secure_service = service(
            "s",
            port(50051, name="grpc"),  # no appProtocol: the annotation decides
            annotations={
                P + "lb.host": "secure.example",
                P + "lb.sslTerm": "true",
                P + "lb.backend-protocol": "h2",
            },
        )
        write_manifest(
            manifest,
            [
                grpc_service("c", **{"lb.host": "grpc.example"}, **term),
                *slices("c", [clear], port_name="grpc"),
                secure_service,
                *slices("s", secure_pods, port_name="grpc"),
            ],
        )

    write([secure])
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    target = f"127.0.0.1:{c.https_port}"

    def channel(host: str) -> grpc.aio.Channel:
        # The name the certificate is checked against, sent as SNI and :authority.
        return grpc.aio.secure_channel(
            target, credentials, options=(("grpc.ssl_target_name_override", host),)
        )

    with running(c):
        await c.wait_healthy()
        for host, pod in (("grpc.example", "c-1"), ("secure.example", "s-1")):
            async with channel(host) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                call = ch.unary_stream(STREAM)(b"2", timeout=DEADLINE)
                assert [m async for m in call] == [f"{pod}:0".encode(), f"{pod}:1".encode()]
                assert await call.code() == grpc.StatusCode.OK
                assert ("pod", pod) in tuple(await call.trailing_metadata())
        config = (c.run_dir / "haproxy.cfg").read_text()
        tls = f"ssl verify required ca-file {pod_ca_file} sni str(secure.example) alpn h2"
        assert tls in config
        reloads = (await c.show_proc()).reloads

        second = await pods.start("s-2", "127.0.7.23", tls=pod_cert)
        write([secure, second])
        async with channel("secure.example") as ch:
            count = ch.unary_stream(STREAM)

            async def reaches_second() -> bool:
                call = count(b"1", timeout=DEADLINE)
                return [m async for m in call] == [b"s-2:0"]

            await wait_for(reaches_second, what="a gRPC call over TLS answered by the added pod")
        assert (await c.show_proc()).reloads == reloads
        assert "slb_haproxy_runtime_fallbacks_total 0.0" in await c.metrics()

        # No route for this name over HTTPS either: a gRPC status, not the HTML 404.
        async with channel("nowhere.example") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=DEADLINE
                )
            assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED
