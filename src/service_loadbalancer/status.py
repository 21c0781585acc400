"""The status server on --healthz-port: /healthz for probes, /metrics for Prometheus.

/healthz answers 200 only while HAProxy serves a config built from a complete view of
the sources (a liveness probe restarts a pod whose HAProxy is gone); 503 otherwise,
with the reason in the body. A --cfg edit that was not applied, or that needs a restart,
is added to the body without changing the status (livecfg.py says why).

The autoscale command serves the same two paths from the same server, with its own
health and its own registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HealthCheck = Callable[[], Awaitable[tuple[bool, str]]]
#: Called before /metrics answers, to read what is only worth reading when scraped.
Refresh = Callable[[], Awaitable[None]]


def make_app(
    *, health: HealthCheck, registry: CollectorRegistry, refresh: Refresh | None = None
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        ok, reason = await health()
        return web.Response(status=200 if ok else 503, text=reason + "\n")

    async def prometheus(_: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app


async def start_status_server(
    *,
    host: str,
    port: int,
    health: HealthCheck,
    registry: CollectorRegistry,
    refresh: Refresh | None = None,
) -> web.AppRunner:
    """Start serving; the caller cleans up with `await runner.cleanup()`."""
    app = make_app(health=health, registry=registry, refresh=refresh)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host=host or None, port=port, reuse_address=True)
    await site.start()
    return runner
