"""A small, protocol-faithful fake of the Kubernetes API server, for the Kubernetes source.

It is the one stand-in the tests allow, so it behaves as the real server does where the
controller can tell (https://kubernetes.io/docs/reference/using-api/api-concepts/):

- HTTPS with a CA made by the test (trustme) and a bearer token; anything else is 401.
- One global resourceVersion counter, as etcd's revision: every write bumps it, objects
  carry the version of their last write, a list carries the version it was read at.
  Clients must treat it as opaque; the controller never compares them.
- list with an equality-based `labelSelector`, and with `limit`/`continue` ("Retrieving
  large results sets in chunks"): every page of
  one list is served from the snapshot the first page was read at, with that snapshot's
  resourceVersion; a continue token older than the compaction point is `410 Gone` with
  reason "Expired" (the API says: "the provided continue parameter is too old").
- watch (`?watch=true&resourceVersion=N`): ADDED/MODIFIED/DELETED for every change after N,
  in order, as newline-delimited JSON in one chunked 200 response; BOOKMARK events carrying
  only `metadata.resourceVersion` when `allowWatchBookmarks=true` ("Watch bookmarks"); the
  stream ends after `timeoutSeconds`. A watch from a version older than the compaction point
  gets a 200 and one ERROR event whose object is a Status with code 410, reason "Expired" —
  what kube-apiserver's watch cache does ("too old resource version"), and why a client must
  read ERROR events and not only HTTP codes ("Efficient detection of changes").
- Status bodies (kind Status, status Failure, message, reason, details, code) for every
  error, with the messages RBAC gives ("services is forbidden: User ... cannot list resource
  ...").
- Discovery for /apis/discovery.k8s.io/v1 (404 when `serve_endpointslices` is False, as on
  a cluster before 1.21), and create/patch of core/v1 Events (409 AlreadyExists on a name
  that exists). Resources named in `unserved` answer 404, as on a cluster without their
  API group (networking.k8s.io/v1 before 1.19).
- Single objects ("API concepts: Resource URIs"): GET, POST to the collection (201; 409
  AlreadyExists), PUT (optimistic concurrency: a body whose `metadata.resourceVersion` is not
  the stored one is `409 Conflict`, "the object has been modified; please apply your changes
  to the latest version and try again"), PATCH (merge, strategic-merge as merge, and JSON
  patch; a resourceVersion in a merge patch is a precondition too) and DELETE. Cluster-scoped
  kinds (Node, IngressClass) live at /api(s)/.../{plural}/{name}.
- Subresources: `/status` writes only `.status` (and a PUT or PATCH of the main resource
  leaves `.status` alone), as for every kind that has a status subresource; `/scale` of
  Deployments and StatefulSets reads and writes `spec.replicas` as an autoscaling/v1 Scale.
  `metadata.generation` counts changes of `.spec`.

Faults, for the tests: drop every open watch, expire versions (compaction) with or without
an ERROR 410 on the open watches, fail the next N requests with 500 or 429 (Retry-After),
slow every answer down, forbid a resource (in one namespace or everywhere), and stop/start
the whole server on the same port (an API outage).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import yaml
from aiohttp import web

#: plural -> (kind, group/version)
RESOURCES: dict[str, tuple[str, str]] = {
    "services": ("Service", "v1"),
    "endpoints": ("Endpoints", "v1"),
    "endpointslices": ("EndpointSlice", "discovery.k8s.io/v1"),
    "secrets": ("Secret", "v1"),
    "configmaps": ("ConfigMap", "v1"),
    "pods": ("Pod", "v1"),
    "nodes": ("Node", "v1"),
    "ingresses": ("Ingress", "networking.k8s.io/v1"),
    "ingressclasses": ("IngressClass", "networking.k8s.io/v1"),
    "leases": ("Lease", "coordination.k8s.io/v1"),
    "deployments": ("Deployment", "apps/v1"),
    "statefulsets": ("StatefulSet", "apps/v1"),
    "replicasets": ("ReplicaSet", "apps/v1"),
    "daemonsets": ("DaemonSet", "apps/v1"),
    "horizontalpodautoscalers": ("HorizontalPodAutoscaler", "autoscaling/v2"),
    "serviceexports": ("ServiceExport", "multicluster.x-k8s.io/v1alpha1"),
}
PLURAL_OF = {kind: plural for plural, (kind, _) in RESOURCES.items()}
#: Kinds that are not namespaced: stored and served with the namespace "".
CLUSTER_SCOPED = frozenset({"nodes", "ingressclasses"})
#: Kinds with a scale subresource.
SCALABLE = frozenset({"deployments", "statefulsets", "replicasets"})
CONFLICT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
TOKEN = "fake-token-for-tests"
USER = "system:serviceaccount:kube-system:service-loadbalancer"


def status(code: int, reason: str, message: str, **details: Any) -> web.Response:
    """An error as the API server sends it: a Status object with the same code."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }
    headers = {"Retry-After": "1"} if code == 429 else None
    return web.json_response(body, status=code, headers=headers)


def status_object(code: int, reason: str, message: str) -> dict[str, Any]:
    return json.loads(status(code, reason, message).text or "{}")  # type: ignore[no-any-return]


@dataclass
class _Change:
    version: int
    plural: str
    namespace: str
    type: str
    object: dict[str, Any]


@dataclass
class FakeAPIServer:
    """Run with `await start()`; `url`, `kubeconfig(path)`; mutate with create/update/delete."""

    workdir: Path
    serve_endpointslices: bool = True
    #: Resources (plurals) this server does not serve at all: 404, as a cluster without
    #: their API group answers (networking.k8s.io/v1 before Kubernetes 1.19).
    unserved: frozenset[str] = frozenset()
    bookmark_interval: float = 1.0
    port: int = 0
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    version: int = 1
    #: Versions up to this one are gone ("compacted"): watches and continue tokens from
    #: before it get 410.
    compacted: int = 0
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # (plural, namespace or "*")
    fail_next: list[int] = field(default_factory=list)  # HTTP codes for the next requests
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)  # "GET /api/v1/services?..." log
    #: Called with each authenticated request before it is served (to act between pages).
    hooks: list[Callable[[web.Request], Awaitable[None]]] = field(default_factory=list)
    _history: list[_Change] = field(default_factory=list)
    _snapshots: dict[tuple[str, str, int], list[dict[str, Any]]] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _watches: dict[int, web.Request] = field(default_factory=dict)  # by id(): unhashable
    _expired_generation: int = 0
    _runner: web.AppRunner | None = None
    _ca: trustme.CA = field(default_factory=trustme.CA)

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/apis/discovery.k8s.io/v1", self._discovery)
        app.router.add_route("*", "/api/v1/{tail:.+}", self._route)
        app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self._route)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1").configure_cert(context)
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context)
        await site.start()
        if not self.port:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving (an outage): open watches are cut, the state is kept."""
        await self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path, *, token: str = TOKEN) -> Path:
        ca = self.workdir / "fake-apiserver-ca.pem"
        self._ca.cert_pem.write_to_path(str(ca))
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url,
                                                      "certificate-authority": str(ca)}}],
            "users": [{"name": "lb", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "lb"}}],
            "current-context": "fake",
        }  # fmt: skip
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ state changes

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._write("ADDED", obj)

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._write("MODIFIED", obj)

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """create or update, as `kubectl apply` would."""
        exists = self._key(obj) in self.objects
        return await self._write("MODIFIED" if exists else "ADDED", obj)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        plural = PLURAL_OF[kind]
        key = (plural, "" if plural in CLUSTER_SCOPED else namespace, name)
        await self._delete(key)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object, or None (for the tests' asserts)."""
        plural = PLURAL_OF[kind]
        return self.objects.get((plural, "" if plural in CLUSTER_SCOPED else namespace, name))

    async def _delete(self, key: tuple[str, str, str]) -> dict[str, Any]:
        namespace = key[1]
        self.version += 1
        obj: dict[str, Any] = json.loads(json.dumps(self.objects.pop(key)))
        # A DELETED event carries the object as it was last, at the deletion's version.
        obj["metadata"]["resourceVersion"] = str(self.version)
        await self._record(_Change(self.version, key[0], namespace, "DELETED", obj))
        return obj

    def bulk_load(self, objects: list[dict[str, Any]]) -> None:
        """Many objects at once, before any client connects (no watch events)."""
        for obj in objects:
            self.version += 1
            self.objects[self._key(obj)] = self._stamped(obj)

    async def _write(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        key = self._key(obj)
        if (type_ == "ADDED") == (key in self.objects):
            raise ValueError(f"{type_} of {key}: exists={key in self.objects}")
        self.version += 1
        stored = self._stamped(obj, self.objects.get(key))
        self.objects[key] = stored
        await self._record(_Change(self.version, key[0], key[1], type_, stored))
        return stored

    def _stamped(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
        if PLURAL_OF[obj["kind"]] in CLUSTER_SCOPED:
            meta.pop("namespace", None)
        else:
            meta.setdefault("namespace", "default")
        meta["resourceVersion"] = str(self.version)
        old_meta = (old or {}).get("metadata", {})
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        if old is not None and "creationTimestamp" in old_meta:
            meta["creationTimestamp"] = old_meta["creationTimestamp"]
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        generation = int(old_meta.get("generation", 0) or 0)
        if old is None or old.get("spec") != obj.get("spec"):
            generation += 1
        meta["generation"] = generation
        return obj

    def _key(self, obj: dict[str, Any]) -> tuple[str, str, str]:
        meta = obj["metadata"]
        plural = PLURAL_OF[obj["kind"]]
        namespace = "" if plural in CLUSTER_SCOPED else meta.get("namespace", "default")
        return plural, namespace, meta["name"]

    async def _record(self, change: _Change) -> None:
        self._history.append(change)
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ faults

    async def drop_watches(self) -> None:
        """Cut every open watch connection without a goodbye (a load balancer's idle
        timeout, an API server restart)."""
        for request in list(self._watches.values()):
            if request.transport is not None:
                request.transport.abort()
        self._watches.clear()
        async with self._changed:
            self._changed.notify_all()

    async def expire(self, *, tell_watchers: bool = True) -> None:
        """Compact: every version up to now is gone. Open watches get an ERROR 410 event
        (tell_watchers) or are just cut, and their resume then gets the 410."""
        self.compacted = self.version
        self._history.clear()
        self._snapshots.clear()
        self._expired_generation += 1
        async with self._changed:
            self._changed.notify_all()
        if not tell_watchers:
            await self.drop_watches()

    # ------------------------------------------------------------------ handlers

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return status(401, "Unauthorized", "Unauthorized")
        for hook in self.hooks:
            await hook(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            code = self.fail_next.pop(0)
            if code == 429:
                return status(429, "TooManyRequests", "Too many requests, please try again later.")
            return status(code, "InternalError", "Internal error occurred: injected fault")
        return await handler(request)  # type: ignore[no-any-return]

    async def _discovery(self, _: web.Request) -> web.Response:
        if not self.serve_endpointslices:
            return status(404, "NotFound", "the server could not find the requested resource")
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "discovery.k8s.io/v1",
                "resources": [
                    {"name": "endpointslices", "namespaced": True, "kind": "EndpointSlice",
                     "verbs": ["get", "list", "watch", "create", "delete", "patch", "update"]}
                ],
            }
        )  # fmt: skip

    async def _route(self, request: web.Request) -> web.StreamResponse:
        """Parse a resource URI (namespaced or not, object, subresource) and dispatch."""
        group = request.match_info.get("group")
        gv = f"{group}/{request.match_info['version']}" if group else "v1"
        parts = request.match_info["tail"].strip("/").split("/")
        namespace = ""
        if parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        plural, name, sub = [*parts, "", ""][:3]
        if len(parts) > 3 or (sub and sub not in ("status", "scale")):
            return not_found()
        if plural == "events" and gv == "v1" and namespace:
            if request.method == "POST" and not name:
                return await self._create_event(request, namespace)
            if request.method == "PATCH" and name:
                return await self._patch_event(request, namespace, name)
        if (
            plural not in RESOURCES
            or RESOURCES[plural][1] != gv
            or (plural == "endpointslices" and not self.serve_endpointslices)
            or plural in self.unserved
            or (sub == "scale" and plural not in SCALABLE)
            or (namespace and plural in CLUSTER_SCOPED)
        ):
            return not_found()
        verb = _verb(request, name)
        if verb is None:
            message = "the server does not allow this method on the requested resource"
            return status(405, "MethodNotAllowed", message)
        denied = self._forbidden(plural, namespace, verb, gv, sub)
        if denied is not None:
            return denied
        if not name:
            if verb == "watch":
                return await self._watch(request, plural, namespace)
            if verb == "list":
                return self._list(request, plural, namespace)
            return await self._create_from(request, plural, namespace)
        key = (plural, namespace, name)
        if verb == "create":
            return await self._create_from(request, plural, namespace)
        if key not in self.objects:
            kind_text = plural if not group else f"{plural}.{group}"
            return status(404, "NotFound", f'{kind_text} "{name}" not found',
                          name=name, kind=plural)  # fmt: skip
        if verb == "get":
            obj = self.objects[key]
            return web.json_response(_scale_of(obj) if sub == "scale" else obj)
        if verb == "delete":
            return web.json_response(await self._delete(key))
        body = await request.json()
        if verb == "patch":
            return await self._patch(request, key, sub, body)
        return await self._put(key, sub, body)

    def _forbidden(
        self, plural: str, namespace: str, verb: str, gv: str, sub: str
    ) -> web.Response | None:
        if (plural, namespace or "*") not in self.forbidden and (plural, "*") not in self.forbidden:
            return None
        api_group = gv.rpartition("/")[0]
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        resource = f"{plural}/{sub}" if sub else plural
        return status(
            403,
            "Forbidden",
            f'{plural} is forbidden: User "{USER}" cannot {verb} resource "{resource}" '
            f'in API group "{api_group}"{where}',
            kind=plural,
        )

    async def _create_from(self, request: web.Request, plural: str, namespace: str) -> web.Response:
        body = await request.json()
        kind, gv = RESOURCES[plural]
        body.setdefault("kind", kind)
        body.setdefault("apiVersion", gv)
        meta = body.setdefault("metadata", {})
        if namespace:
            meta["namespace"] = namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                return status(422, "Invalid", f"{kind} is invalid: metadata.name: Required value")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta.pop("resourceVersion", None)
        if self._key(body) in self.objects:
            name = meta["name"]
            return status(409, "AlreadyExists", f'{plural} "{name}" already exists',
                          name=name, kind=plural)  # fmt: skip
        return web.json_response(await self._write("ADDED", body), status=201)

    async def _put(self, key: tuple[str, str, str], sub: str, body: dict[str, Any]) -> web.Response:
        old = self.objects[key]
        given = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if given and given != old["metadata"]["resourceVersion"]:
            return self._conflict(key)
        if sub == "scale":
            new = json.loads(json.dumps(old))
            new.setdefault("spec", {})["replicas"] = int(body.get("spec", {}).get("replicas", 0))
        else:
            new = _with_subresource(old, body, sub)
        stored = await self._write("MODIFIED", new)
        return web.json_response(_scale_of(stored) if sub == "scale" else stored)

    async def _patch(
        self, request: web.Request, key: tuple[str, str, str], sub: str, body: Any
    ) -> web.Response:
        old = self.objects[key]
        current: dict[str, Any] = _scale_of(old) if sub == "scale" else old
        content = request.content_type
        if content == "application/json-patch+json":
            if not isinstance(body, list):
                return status(400, "BadRequest", "json patch must be a list of operations")
            try:
                patched = _json_patch(current, body)
            except _PatchTestFailed as failure:
                return status(422, "Invalid", str(failure))
        elif content in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            given = str(((body or {}).get("metadata") or {}).get("resourceVersion") or "")
            if given and given != old["metadata"]["resourceVersion"]:
                return self._conflict(key)
            patched = _merge_patch(current, body)
        else:
            return status(415, "UnsupportedMediaType", "the body of the request was in an "
                          "unknown format - accepted media types include: "
                          "application/json-patch+json, application/merge-patch+json, "
                          "application/apply-patch+yaml")  # fmt: skip
        return await self._put(key, sub, _resource_version_dropped(patched))

    def _conflict(self, key: tuple[str, str, str]) -> web.Response:
        plural, _, name = key
        group = RESOURCES[plural][1].rpartition("/")[0]
        kind_text = f"{plural}.{group}" if group else plural
        return status(409, "Conflict", f'Operation cannot be fulfilled on {kind_text} "{name}": '
                      f"{CONFLICT}", name=name, kind=plural)  # fmt: skip

    def _matching(self, plural: str, namespace: str) -> Iterator[dict[str, Any]]:
        for (p, ns, _), obj in sorted(self.objects.items()):
            if p == plural and (not namespace or ns == namespace):
                yield obj

    def _list(self, request: web.Request, plural: str, namespace: str) -> web.Response:
        kind, gv = RESOURCES[plural]
        limit = int(request.query.get("limit") or 0)
        token = request.query.get("continue")
        if token:
            try:
                at, offset = json.loads(base64.urlsafe_b64decode(token))
            except ValueError:
                return status(400, "BadRequest", "continue key is not valid")
            if at < self.compacted or (plural, namespace, at) not in self._snapshots:
                return status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use "
                    "the continue token in this response to retrieve the remainder of the "
                    "results. Continuing with the provided token results in an inconsistent "
                    "list - objects that were created, modified, or deleted between the time "
                    "the first chunk was returned and now may show up in the list.",
                )
            items = self._snapshots[(plural, namespace, at)]
        else:
            at, offset = self.version, 0
            wanted = request.query.get("labelSelector", "")
            items = [
                _item(obj)
                for obj in self._matching(plural, namespace)
                if _labels_match(wanted, (obj.get("metadata") or {}).get("labels") or {})
            ]
        page = items[offset : offset + limit] if limit else items[offset:]
        meta: dict[str, Any] = {"resourceVersion": str(at)}
        rest = len(items) - offset - len(page)
        if rest > 0:
            self._snapshots[(plural, namespace, at)] = items
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps([at, offset + len(page)]).encode()
            ).decode()
            meta["remainingItemCount"] = rest
        body = {"kind": f"{kind}List", "apiVersion": gv, "metadata": meta, "items": page}
        return web.json_response(body)

    async def _watch(self, request: web.Request, plural: str, namespace: str) -> web.StreamResponse:
        kind, gv = RESOURCES[plural]
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        since_text = request.query.get("resourceVersion", "")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        self._watches[id(request)] = request
        generation = self._expired_generation
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout

        async def send(type_: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": type_, "object": obj}) + "\n"
            await response.write(line.encode())

        try:
            await response.prepare(request)
            if since_text in ("", "0"):
                # "Start at most recent": synthetic ADDED for every object, then changes.
                since = self.version
                for obj in self._matching(plural, namespace):
                    await send("ADDED", obj)
            else:
                since = int(since_text)
            if since < self.compacted:
                await send("ERROR", status_object(410, "Expired", f"too old resource version: "
                                                  f"{since} ({self.compacted})"))  # fmt: skip
                return response
            sent = since
            last_bookmark = loop.time()
            while loop.time() < end and id(request) in self._watches:
                if generation != self._expired_generation:
                    await send("ERROR", status_object(410, "Expired", "too old resource version"))
                    return response
                for change in self._history:
                    if change.version <= sent:
                        continue
                    sent = change.version
                    if change.plural == plural and (not namespace or change.namespace == namespace):
                        await send(change.type, change.object)
                now = loop.time()
                if bookmarks and now - last_bookmark >= self.bookmark_interval:
                    # A bookmark: "all changes up to this version have been sent to you".
                    mark = {"resourceVersion": str(self.version)}
                    await send("BOOKMARK", {"kind": kind, "apiVersion": gv, "metadata": mark})
                    sent = max(sent, self.version)
                    last_bookmark = now
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        wait = min(self.bookmark_interval, max(end - loop.time(), 0.01))
                        await asyncio.wait_for(self._changed.wait(), wait)
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away, or we cut it
        finally:
            self._watches.pop(id(request), None)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    async def _create_event(self, request: web.Request, namespace: str) -> web.Response:
        body = await request.json()
        name = body["metadata"]["name"]
        if (namespace, name) in self.events:
            return status(409, "AlreadyExists", f'events "{name}" already exists',
                          name=name, kind="events")  # fmt: skip
        self.version += 1
        body["metadata"].update(namespace=namespace, resourceVersion=str(self.version))
        self.events[(namespace, name)] = body
        return web.json_response(body, status=201)

    async def _patch_event(self, request: web.Request, namespace: str, name: str) -> web.Response:
        key = (namespace, name)
        if key not in self.events:
            return status(404, "NotFound", f'events "{key[1]}" not found')
        if not request.content_type.endswith("patch+json"):
            return status(415, "UnsupportedMediaType", f"{request.content_type} is not a patch")
        self.version += 1
        self.events[key].update(await request.json())
        return web.json_response(self.events[key])


def not_found() -> web.Response:
    return status(404, "NotFound", "the server could not find the requested resource")


def _verb(request: web.Request, name: str) -> str | None:
    """The RBAC verb of a request, or None for a method the URI does not take."""
    method = request.method
    if not name:
        if method == "GET":
            return "watch" if request.query.get("watch") in ("true", "1") else "list"
        return "create" if method == "POST" else None
    return {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)


def _with_subresource(old: dict[str, Any], body: dict[str, Any], sub: str) -> dict[str, Any]:
    """A write through `/status` changes only `.status`; one through the main resource
    changes everything but `.status` (the status subresource's contract)."""
    new = json.loads(json.dumps(old if sub == "status" else body))
    if sub == "status":
        new["status"] = json.loads(json.dumps(body.get("status", {})))
    elif "status" in old:
        new["status"] = json.loads(json.dumps(old["status"]))
    else:
        new.pop("status", None)
    new["metadata"] = {**old["metadata"], **_settable_metadata(new.get("metadata", {}))}
    new["kind"], new["apiVersion"] = old["kind"], old["apiVersion"]
    return new  # type: ignore[no-any-return]


def _settable_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    fixed = {"name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation"}
    return {k: v for k, v in meta.items() if k not in fixed}


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a Deployment or StatefulSet."""
    meta = obj["metadata"]
    selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace", ""),
                     "resourceVersion": meta["resourceVersion"], "uid": meta["uid"]},
        "spec": {"replicas": int(obj.get("spec", {}).get("replicas", 1))},
        "status": {"replicas": int(obj.get("status", {}).get("replicas", 0)),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))},
    }  # fmt: skip


def _resource_version_dropped(obj: dict[str, Any]) -> dict[str, Any]:
    """A patch is applied to the current object, so its own resourceVersion is no precondition
    (the merge-patch check happens before)."""
    copy: dict[str, Any] = json.loads(json.dumps(obj))
    copy.get("metadata", {}).pop("resourceVersion", None)
    return copy


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge patch treated the same: lists replaced)."""
    if not isinstance(patch, dict):
        return json.loads(json.dumps(patch))
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class _PatchTestFailed(ValueError):
    pass


def _json_patch(target: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/replace/remove/test, enough for the status and scale writes clients send."""
    doc: Any = json.loads(json.dumps(target))
    for op in operations:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")
        ]
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        index: Any = int(last) if isinstance(node, list) and last != "-" else last
        if op["op"] == "test":
            current = node.get(index) if isinstance(node, dict) else node[index]
            if current != op["value"]:
                raise _PatchTestFailed(f"the server rejected our request due to an error in our "
                                       f"request: test failed at {op['path']}")  # fmt: skip
        elif op["op"] in ("add", "replace"):
            if isinstance(node, list):
                if index == "-":
                    node.append(op["value"])
                elif op["op"] == "add":
                    node.insert(index, op["value"])
                else:
                    node[index] = op["value"]
            else:
                node[index] = op["value"]
        elif op["op"] == "remove":
            del node[index]
    return doc  # type: ignore[no-any-return]


def _labels_match(selector: str, labels: dict[str, str]) -> bool:
    """An equality-based label selector ("Labels and Selectors": `k=v`, `k==v`, `k!=v`,
    `k`, `!k`, comma-separated, all must hold); "" matches everything."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _item(obj: dict[str, Any]) -> dict[str, Any]:
    """A list item: the API leaves kind and apiVersion out of the items of a typed list."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def names(n: int, prefix: str = "svc") -> Iterator[str]:
    return (f"{prefix}-{i:05d}" for i in itertools.islice(itertools.count(), n))
