"""Where objects come from: a directory of manifests, or a cluster's API server.

Every source has the shape of `Source` (sources/base.py); `open_source` picks the one the
settings ask for, so that `run` and the one-shot commands (`render`, `check`) read the very
same way. A second cluster will be another `KubeSource` instance, not another code path.
"""

from __future__ import annotations

from collections.abc import Callable

from service_loadbalancer.kube.client import KubeOptions
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.settings import Settings
from service_loadbalancer.sources.base import Source
from service_loadbalancer.sources.files import ManifestSource
from service_loadbalancer.sources.kube import KubeSource

__all__ = ["Source", "open_source"]


async def open_source(
    settings: Settings, kube: KubeOptions, *, metrics: Metrics | None = None
) -> Source:
    """The manifests directory if given, else the Kubernetes API (whose store then holds
    only the kinds the cluster serves, in the namespaces asked for). `metrics` counts the
    watch restarts; ConfigError if there is no usable cluster configuration."""
    if settings.manifests is not None:
        return ManifestSource(settings.manifests)
    on_restart = _count_restarts(metrics) if metrics is not None else None
    return await KubeSource.open(kube, namespaces=settings.namespaces, on_restart=on_restart)


def _count_restarts(metrics: Metrics) -> Callable[[str], None]:
    restarts = metrics.watch_restarts

    def count(action: str) -> None:
        restarts.labels(source=f"kube:{action}").inc()

    return count
