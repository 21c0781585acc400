"""gRPC end to end: a real grpcio client and real grpcio servers on 127.0.0.0/8, through
the real controller and HAProxy over cleartext HTTP/2 (prior knowledge on the HTTP
port), routed by Host (lb.host), to pods whose port says `appProtocol: grpc`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from harness import DEADLINE, Controller, running, wait_for, write_manifest
from objects import port, service, slices

P = "serviceloadbalancer/"
STREAM = "/slb.test.Numbers/Count"


class GrpcPods:
    """grpcio servers, each with grpc.health.v1 and a server-streaming method that
    sends `<n>` messages and names itself in its trailers."""

    def __init__(self) -> None:
        self.servers: list[grpc.aio.Server] = []

    async def start(self, name: str, address: str) -> tuple[str, int]:
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
        number = server.add_insecure_port(f"{address}:0")
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
    c = Controller(tmp_path)
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
