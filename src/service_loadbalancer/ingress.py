"""Ingress (networking.k8s.io/v1) to routes, exactly as the Ingress spec says. Pure.

What is decided here, and the rule for each:

- **Ours or not**: ingress_class.py. Not ours: skipped without a word.
- **Paths** (https://kubernetes.io/docs/concepts/services-networking/ingress/#path-types):
  Exact matches the request path exactly (case-sensitive, `/foo` is not `/foo/`); Prefix
  matches element by element on "/" (`/aaa` matches `/aaa`, `/aaa/` and `/aaa/ccc`, not
  `/aaaccc`), a trailing "/" of the rule being ignored; ImplementationSpecific is Prefix
  here. Exact beats Prefix, and the longest prefix wins: the HAProxy lookups (render.py)
  give that, this module only normalises.
- **Hosts**: a name, or `*.<name>` (one label); a rule without a host matches any host.
- **Backends**: a Service port of the Ingress's namespace, by number or name, served as
  HTTP; the Service's own backend is used (so its endpoints change through the Runtime
  API like any other). Resource backends are unsupported.
- **Conflicts**: one (host, path, match) has one owner, the oldest Ingress
  (creationTimestamp, then namespace/name); so has spec.defaultBackend. Every loser is a
  problem naming the Ingress, as is every rule skipped for any other reason.
- **TLS**: ingress_tls.py.

Requests keep their path, Host and method: nothing is stripped or rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from service_loadbalancer.ingress_class import class_problems, classes_by_name, is_ours
from service_loadbalancer.ingress_tls import tls_hosts
from service_loadbalancer.kube.ingress_spec import (
    EXACT,
    backend_error,
    host_error,
    path_error,
)
from service_loadbalancer.kube.names import DNS1123_LABEL, DNS1123_SUBDOMAIN
from service_loadbalancer.kube.objects import ObjectKey, RawObject, key_of, quoted
from service_loadbalancer.model import Certificate, IngressRoute, Mode, PathMatch
from service_loadbalancer.translation_run import ServicePort, TranslationRun

#: Characters a request path can carry (RFC 3986 pchar, "/" and "%"): a rule with any
#: other (a space, a quote, a control character) could never match a request, and such
#: characters must never reach a map file.
_MATCHABLE: Final = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*\Z")
MAX_PATH_LEN: Final = 1024
#: HTTP-01 challenges (cert-manager's solver Ingresses) are answered over plain HTTP,
#: never redirected: the certificate they are for may not exist yet.
ACME_CHALLENGE: Final = "/.well-known/acme-challenge"
_TIMESTAMP: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
_NEWEST: Final = "~"


@dataclass(slots=True)
class IngressResult:
    routes: list[IngressRoute] = field(default_factory=list)
    default_backend: str | None = None
    certificates: list[Certificate] = field(default_factory=list)
    #: The hosts served over HTTPS -> the name of their certificate (None: --ssl-cert).
    tls_owners: dict[str, str | None] = field(default_factory=dict)
    served: set[ObjectKey] = field(default_factory=set)


def age(ingress: RawObject) -> tuple[str, str, str]:
    """Oldest first: creationTimestamp (RFC 3339 in UTC, as the API server writes it,
    sorts as text), then the namespace and name. A missing or malformed timestamp (a
    manifest) counts as the newest: it can never take a rule from a real one."""
    meta = ingress.get("metadata") or {}
    stamp = meta.get("creationTimestamp") if isinstance(meta, dict) else None
    key = key_of(ingress)
    if not isinstance(stamp, str) or _TIMESTAMP.fullmatch(stamp) is None:
        stamp = _NEWEST
    return (stamp, key.namespace, key.name)


def translate_ingresses(
    ingresses: Iterable[RawObject],
    classes: Iterable[RawObject],
    ports: list[ServicePort],
    out: TranslationRun,
) -> IngressResult:
    """The routes, default backend and certificates of the Ingresses that are ours."""
    settings = out.settings
    by_name = classes_by_name(classes)
    out.problems.extend(class_problems(by_name, settings))
    index: dict[tuple[str, str], list[ServicePort]] = {}
    for port in ports:
        index.setdefault((port.key.namespace, port.key.name), []).append(port)
    result = IngressResult()
    served: list[tuple[ObjectKey, dict[str, Any]]] = []
    for ingress in sorted(ingresses, key=age):
        key = key_of(ingress)
        if settings.namespaces and key.namespace not in settings.namespaces:
            continue
        if not is_ours(ingress, by_name, settings):
            continue
        # The API server enforces these, but a manifest or a hostile object may not.
        if not DNS1123_SUBDOMAIN.matches(key.name) or not DNS1123_LABEL.matches(key.namespace):
            out.problem(key, "name and namespace must be DNS names; not served")
            continue
        result.served.add(key)
        spec = ingress.get("spec")
        if not isinstance(spec, dict):
            out.problem(key, "has no spec; not served")
            continue
        served.append((key, spec))

    owners: dict[tuple[str, str, PathMatch], ObjectKey] = {}
    default_owner: ObjectKey | None = None
    for key, spec in served:
        default = spec.get("defaultBackend")
        if default is not None:
            backend = _backend(key, default, index, out, where="spec.defaultBackend")
            if backend is not None and default_owner is None:
                default_owner, result.default_backend = key, backend
            elif backend is not None and default_owner is not None:
                out.problem(
                    key,
                    f"spec.defaultBackend: Ingress {default_owner.namespace}/"
                    f"{default_owner.name} comes first (oldest, then by name) and has the "
                    "default backend; ignored",
                )
        for route in _rules(key, spec, index, out):
            slot = (route.host, route.path, route.match)
            owner = owners.get(slot)
            if owner is None:
                owners[slot] = key
                result.routes.append(route)
                continue
            by = (
                "an earlier rule of this Ingress"
                if owner == key
                else f"Ingress {owner.namespace}/{owner.name}, which comes first "
                "(oldest, then by name)"
            )
            out.problem(key, f"rule {_shown(route)} is already served by {by}; skipped")

    certificates, secure = tls_hosts(served, out)
    result.certificates = certificates
    result.tls_owners = secure
    redirect = settings.ingress_ssl_redirect
    result.routes = [
        IngressRoute(
            r.host,
            r.path,
            r.match,
            r.backend,
            https=True,
            redirect=redirect and not r.path.startswith(ACME_CHALLENGE),
        )
        if r.host in secure
        else r
        for r in result.routes
    ]
    return result


def _rules(
    key: ObjectKey,
    spec: dict[str, Any],
    index: dict[tuple[str, str], list[ServicePort]],
    out: TranslationRun,
) -> list[IngressRoute]:
    rules = spec.get("rules")
    if rules is None:
        return []
    if not isinstance(rules, list):
        out.problem(key, "spec.rules is not a list; no rule served")
        return []
    routes: list[IngressRoute] = []
    for i, rule in enumerate(rules):
        where = f"spec.rules[{i}]"
        if not isinstance(rule, dict):
            out.problem(key, f"{where} is not a mapping; skipped")
            continue
        host = rule.get("host") or ""
        error = host_error(host) if host else ""
        if error:
            out.problem(key, f"{where}.host: {error}; rule skipped")
            continue
        http = rule.get("http")
        if http is None:
            continue  # a host for TLS only, say
        paths = http.get("paths") if isinstance(http, dict) else None
        if not isinstance(paths, list):
            out.problem(key, f"{where}.http.paths is not a list; rule skipped")
            continue
        for j, entry in enumerate(paths):
            route = _path_route(
                key, entry, where=f"{where}.http.paths[{j}]", host=str(host), index=index, out=out
            )
            if route is not None:
                routes.append(route)
    return routes


def _path_route(
    key: ObjectKey,
    entry: object,
    *,
    where: str,
    host: str,
    index: dict[tuple[str, str], list[ServicePort]],
    out: TranslationRun,
) -> IngressRoute | None:
    if not isinstance(entry, dict):
        out.problem(key, f"{where} is not a mapping; skipped")
        return None
    raw_path, path_type = entry.get("path"), entry.get("pathType")
    error = path_error(raw_path, path_type)
    if not error and raw_path and len(raw_path) > MAX_PATH_LEN:
        error = f"path is longer than {MAX_PATH_LEN} characters"
    elif not error and raw_path and not _MATCHABLE.match(raw_path):
        error = "path has characters no request path can have (only RFC 3986 path characters)"
    if error:
        out.problem(key, f"{where}: {error}; skipped")
        return None
    backend = _backend(key, entry.get("backend"), index, out, where=f"{where}.backend")
    if backend is None:
        return None
    path, match = normalise(raw_path or "", str(path_type))
    return IngressRoute(host=host, path=path, match=match, backend=backend)


def normalise(path: str, path_type: str) -> tuple[str, PathMatch]:
    """The path as it is matched: Exact as given; Prefix (and ImplementationSpecific)
    without its trailing "/", "/" (or nothing) staying "/"."""
    if path_type == EXACT:
        return path, PathMatch.EXACT
    return path.rstrip("/") or "/", PathMatch.PREFIX


def _backend(
    key: ObjectKey,
    raw: object,
    index: dict[tuple[str, str], list[ServicePort]],
    out: TranslationRun,
    *,
    where: str,
) -> str | None:
    """The name of the HTTP backend an IngressBackend points to, or None (a problem)."""
    error = backend_error(raw)
    if error:
        out.problem(key, f"{where}: {error}; skipped")
        return None
    assert isinstance(raw, dict)  # backend_error made sure
    if raw.get("resource") is not None:
        out.problem(key, f"{where}: Resource backends are not supported; skipped")
        return None
    service = raw["service"]
    name, port = str(service["name"]), service["port"]
    number, port_name = port.get("number"), port.get("name")
    wanted = f"port {number}" if port_name is None else f"port {quoted(port_name)}"
    ports = index.get((key.namespace, name))
    if not ports:
        out.problem(
            key, f"{where}: Service {key.namespace}/{name} not found or not served; skipped"
        )
        return None
    found = [p for p in ports if (p.number == number if port_name is None else p.name == port_name)]
    if not found:
        out.problem(key, f"{where}: Service {key.namespace}/{name} has no {wanted}; skipped")
        return None
    if found[0].mode is not Mode.HTTP:
        out.problem(
            key,
            f"{where}: Service {key.namespace}/{name} {wanted} is served as TCP "
            "(--tcp-services or lb.sslPassthrough); skipped",
        )
        return None
    return found[0].backend


def _shown(route: IngressRoute) -> str:
    kind = "Exact" if route.match is PathMatch.EXACT else "Prefix"
    return f"{route.host or '(any host)'}{route.path} ({kind})"
