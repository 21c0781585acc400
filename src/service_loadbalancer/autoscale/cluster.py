"""The autoscaler's requests to the API server: lists (Services, workloads, HPAs, the
load balancer's pods), the scale subresource, and Events. All I/O; every decision about
what to do with the answers is elsewhere (discovery.py, rule.py, autoscaler.py).

Services are watched (command.py feeds a store through the controller's own kube
source); the rest is listed when a round needs it, narrowly: workloads and HPAs only in
the namespaces that have an annotated Service, pods only by the load balancer's label
selector. `services()` is the fallback without a watch.

Writes go through the `scale` subresource (`PATCH .../scale`, a merge patch of
`spec.replicas`), so the RBAC grant is on `deployments/scale` and `statefulsets/scale`,
never on the workloads themselves.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service_loadbalancer.autoscale.discovery import PLURALS, Workload
from service_loadbalancer.events import core_event
from service_loadbalancer.kube.client import request_json
from service_loadbalancer.kube.objects import RawObject

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

COMPONENT = "service-loadbalancer-autoscale"
WORKLOAD_PATHS = {kind: f"/apis/apps/v1/namespaces/{{ns}}/{p}" for kind, p in PLURALS.items()}


class ApiError(Exception):
    """The API server refused or failed a request; the message names it."""


@dataclass
class Cluster:
    api: ApiClient
    host: str = "autoscale"

    async def _get(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        status, body = await request_json(self.api, "GET", path, query=query, seconds=10.0)
        if status != 200 or not isinstance(body, dict):
            message = body.get("message") if isinstance(body, dict) else None
            raise ApiError(f"GET {path}: HTTP {status} {message or ''}".strip())
        return body

    async def _items(
        self, path: str, query: list[tuple[str, str]] | None = None
    ) -> list[RawObject]:
        items: list[RawObject] = []
        token = ""
        while True:
            page = await self._get(path, [*(query or []), ("limit", "500"),
                                          *([("continue", token)] if token else [])])  # fmt: skip
            kind = page.get("kind", "").removesuffix("List")
            for item in page.get("items") or []:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", page.get("apiVersion", "v1"))
                items.append(item)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    async def workloads(self, namespace: str) -> list[RawObject]:
        found: list[RawObject] = []
        for kind, path in WORKLOAD_PATHS.items():
            for item in await self._items(path.format(ns=namespace)):
                item["kind"] = kind
                found.append(item)
        return found

    async def hpas(self, namespace: str) -> list[RawObject]:
        path = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"
        return await self._items(path)

    async def lb_pods(self, selector: str) -> list[RawObject]:
        return await self._items("/api/v1/pods", [("labelSelector", selector)])

    async def replicas(self, workload: Workload) -> int:
        """spec.replicas, read through the scale subresource (as the HPA reads it)."""
        scale = await self._get(workload.scale_path)
        return int((scale.get("spec") or {}).get("replicas") or 0)

    async def scale(self, workload: Workload, replicas: int) -> None:
        status, body = await request_json(
            self.api,
            "PATCH",
            workload.scale_path,
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
            seconds=10.0,
        )
        if status != 200:
            message = body.get("message") if isinstance(body, dict) else ""
            raise ApiError(f"scale {workload} to {replicas}: HTTP {status} {message}".strip())

    async def event(
        self, subject: RawObject, *, reason: str, message: str, warning: bool = False
    ) -> None:
        """A new Event on `subject` (a Service or the load balancer's workload)."""
        body = event_body(
            subject,
            reason=reason,
            message=message,
            warning=warning,
            host=self.host,
            now=datetime.datetime.now(datetime.UTC),
        )
        namespace = body["metadata"]["namespace"]
        status, _ = await request_json(
            self.api, "POST", f"/api/v1/namespaces/{namespace}/events", body=body, seconds=10.0
        )
        if status not in (200, 201):
            raise ApiError(f"Event on {body['involvedObject']['name']}: HTTP {status}")


def event_body(
    subject: RawObject,
    *,
    reason: str,
    message: str,
    warning: bool,
    host: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """A core/v1 Event; its name is unique per (subject, reason, message, time)."""
    meta = subject.get("metadata") or {}
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    digest = hashlib.sha256(f"{reason}\0{message}\0{now.isoformat()}".encode()).hexdigest()
    involved = {
        "kind": subject.get("kind", "Service"),
        "apiVersion": subject.get("apiVersion", "v1"),
        "namespace": namespace,
        "name": name,
    }
    if meta.get("uid"):
        involved["uid"] = meta["uid"]
    return core_event(
        name=f"{name[:200]}.{digest[:16]}",
        involved=involved,
        reason=reason,
        message=message,
        warning=warning,
        component=COMPONENT,
        host=host,
        now=now,
    )
