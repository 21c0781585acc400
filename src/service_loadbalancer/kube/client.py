"""Talking to the API server: the cluster configuration, and raw requests.

Why it is apart from the sources: the kube source (list and watch) and the Event recorder
both send requests, and neither should import the other. This layer knows how to reach
the cluster and nothing about what is read from it, as kopf's client layer never imports
its reactor.

- **Auth is the library's.** kubernetes_asyncio loads the kubeconfig (contexts, client
  certificates, bearer tokens, exec credential plugins, CA bundles) or the pod's service
  account, and sends our requests; we only ask it for raw responses, so objects stay the
  plain JSON dicts (`RawObject`), exactly as the file source gives them.
- **One error for a configuration that cannot be used** (`ConfigError`), whose message
  tells the user what to give instead; the CLI prints it and exits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import orjson

from service_loadbalancer.gcpause import gc_paused

if TYPE_CHECKING:
    # Imported when used: kubernetes_asyncio takes 0.4 s to import, which a controller
    # serving a manifests directory (the demo, most tests) never needs.
    from kubernetes_asyncio.client import ApiClient

#: Kinds watched by default, before the EndpointSlice -> Endpoints fallback.
DEFAULT_KINDS: Final = ("Service", "EndpointSlice", "Ingress", "IngressClass")
LIST_TIMEOUT: Final = 60.0
CONNECT_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class KubeOptions:
    """How to reach the cluster and what to read from it (the Kubernetes flags)."""

    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = True
    kinds: tuple[str, ...] = DEFAULT_KINDS


class ConfigError(Exception):
    """No usable cluster configuration (no kubeconfig, unknown context, ...)."""


async def connect(
    *, kubeconfig: Path | None, context: str | None, in_cluster: bool, watches: int = 0
) -> ApiClient:
    """An ApiClient from the pod's service account or from a kubeconfig.

    `in_cluster` (--use-kubernetes-cluster-service) applies only inside a pod, recognised
    as kubelet makes it, by KUBERNETES_SERVICE_HOST; an explicit --kubeconfig wins.
    Each open watch holds a connection, so the pool must hold `watches` and room for lists
    and Events besides: with the library's default of 100, 50 namespaces would hang.
    """
    from kubernetes_asyncio.client import ApiClient, Configuration  # noqa: PLC0415
    from kubernetes_asyncio.config import (  # noqa: PLC0415
        load_incluster_config,
        load_kube_config,
    )

    configuration = Configuration()
    # The library logs "Config not found" itself before raising; our error says it once.
    logging.getLogger("kubernetes_asyncio.config").setLevel(logging.ERROR)
    try:
        if in_cluster and kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except Exception as err:  # the library raises ConfigException, OSError, TypeError ...
        raise ConfigError(
            f"no source: give --manifests DIR, or a Kubernetes configuration ({err})"
        ) from None
    configuration.connection_pool_maxsize = max(100, watches + 16)
    return ApiClient(configuration)


async def request(
    api: ApiClient,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    limits: aiohttp.ClientTimeout,
) -> aiohttp.ClientResponse:
    """A raw response (not read yet); the caller reads it and checks the status."""
    response: aiohttp.ClientResponse = await api.call_api(
        path,
        method,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=limits,
    )
    return response


async def request_json(
    api: ApiClient,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    seconds: float = LIST_TIMEOUT,
) -> tuple[int, Any]:
    """Status code and decoded JSON body (None if not JSON); network errors propagate."""
    response = await request(
        api,
        method,
        path,
        query=query,
        body=body,
        content_type=content_type,
        limits=aiohttp.ClientTimeout(total=seconds, connect=CONNECT_TIMEOUT),
    )
    async with response:
        data = await response.read()
    try:
        with gc_paused():  # a page of 500 objects: no collection halfway
            return response.status, orjson.loads(data)
    except ValueError:
        return response.status, None
