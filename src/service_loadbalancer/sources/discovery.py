"""Which of the kinds we want a cluster serves, asked once before the first list.

Old clusters lack some APIs: discovery.k8s.io/v1 EndpointSlices came with Kubernetes 1.21
(before it, core/v1 Endpoints are read instead), networking.k8s.io/v1 Ingresses with 1.19
(without them the rest is served, rather than waiting forever for a list that cannot
be). Each question is one probe, retried with the informer's backoff until the server
answers: 404 means "not served"; 2xx, 401 and 403 mean "served" (a missing permission is
reported by the list that follows).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import aiohttp

from service_loadbalancer.kube.client import request_json
from service_loadbalancer.kube.watch import RESOURCES, Action, Backoff

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

_LOG = logging.getLogger(__name__)

#: Kinds a cluster may not serve at all: they are left out where it does not.
OPTIONAL_KINDS: Final = frozenset({"Ingress", "IngressClass"})


async def served_kinds(api: ApiClient, wanted: Sequence[str]) -> list[str]:
    """`wanted`, with EndpointSlice replaced by core/v1 Endpoints where the server does
    not serve discovery.k8s.io/v1, and without the optional kinds the server does not
    serve (a list of one answers 404)."""
    kinds: list[str] = []
    for kind in wanted:
        resource = RESOURCES[kind]
        if kind in OPTIONAL_KINDS and not await served(api, resource.path(""), limit=True):
            _LOG.warning(
                "%s (%s) is not served: %s objects are not read",
                resource.plural,
                resource.group_version,
                kind,
            )
            continue
        kinds.append(kind)
    if "EndpointSlice" in kinds and not await served(api, "/apis/discovery.k8s.io/v1"):
        _LOG.warning("discovery.k8s.io/v1 is not served: reading core/v1 Endpoints instead")
        kinds = [k for k in kinds if k != "EndpointSlice"]
        if "Endpoints" not in kinds:
            kinds.append("Endpoints")
    return kinds


async def served(api: ApiClient, path: str, *, limit: bool = False) -> bool:
    """Whether the server has `path` (with `limit`: a list of one, for a kind): False on
    404, True on 2xx, 401 or 403; anything else (no answer, 5xx, 429) is asked again
    after a backoff. Remote clusters ask it about ServiceExport too."""
    query = [("limit", "1")] if limit else None
    backoff, attempt = Backoff(), 0
    while True:
        try:
            status, _ = await request_json(api, "GET", path, query=query)
        except (aiohttp.ClientError, TimeoutError) as err:
            status = 0
            _LOG.warning("API discovery failed: %s", err or type(err).__name__)
        if status == 404:
            return False
        if 200 <= status < 300 or status in (401, 403):
            return True
        attempt += 1
        await asyncio.sleep(backoff.delay(attempt, Action.RETRY))
