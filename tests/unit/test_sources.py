"""The one source shape (sources/base.py) and `open_source`: a manifests directory needs no
cluster; without one, the cluster configuration is used (and its absence is a ConfigError
with the message the CLI prints). The kube source against the fake API server is in
tests/integration/test_kube_source.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from service_loadbalancer.kube.client import ConfigError, KubeOptions
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.settings import Settings
from service_loadbalancer.sources import Source, open_source
from service_loadbalancer.sources.files import ManifestSource

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
#: Options that cannot work: open_source must not even look at them for a directory.
NO_CLUSTER = KubeOptions(kubeconfig=Path("/nonexistent/kubeconfig"), in_cluster=False)


async def test_manifest_source_has_the_source_shape(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(SERVICE)
    source: Source = ManifestSource(tmp_path)  # mypy checks the types, isinstance the members
    assert isinstance(source, Source)
    assert (source.name, source.description, source.api) == ("source:files", str(tmp_path), None)
    assert not source.store.ready
    await source.load_once()
    assert source.store.ready
    assert set(source.store.snapshot().objects) == {ObjectKey("Service", "default", "web")}
    assert source.problems() == []
    stop = asyncio.Event()
    stop.set()
    async with asyncio.timeout(10):
        await source.run(stop=stop)
    await source.aclose()


async def test_open_source_reads_the_directory_without_a_cluster(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(SERVICE)
    source = await open_source(Settings(manifests=tmp_path), NO_CLUSTER, metrics=Metrics())
    assert isinstance(source, ManifestSource)
    assert source.directory == tmp_path
    await source.load_once()
    assert ObjectKey("Service", "default", "web") in source.store.snapshot().objects
    await source.aclose()


async def test_open_source_without_directory_or_cluster_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^no source: give --manifests DIR, or a Kubernetes"):
        await open_source(Settings(), NO_CLUSTER)
