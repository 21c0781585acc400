"""Planning: why the running config must change. Pure, no I/O.

Every reload carries typed reasons: a kind (the label of the reloads metric) and a
sentence a person can read ("backend default/web added"), which is logged; an empty
reason is a bug.

`plan` decides how a change is applied. Endpoint changes of an existing backend (servers
added, removed, back again) become Runtime API operations: `add server` + `set server
state ready`, `set server state drain` (deleted once its connections end), or `ready` for
a server still draining. Everything structural (a backend, route or listener added or
removed, a backend option, the settings or template) reloads. So does an addition to a
backend that HAProxy 2.6 cannot give a dynamic server: cookie stickiness (`add server`
refuses the `cookie` keyword, and a server without a cookie value would silently break
stickiness). The built-in template gives `balance source` `hash-type consistent`, which
is dynamic; a user template that does not is caught by the reconciler's check after the
batch, which then reloads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from service_loadbalancer.model import Backend, LoadBalancer, Server, Stickiness


class OpKind(StrEnum):
    #: `add server` (created in maintenance) then `set server state ready`.
    ADD = "add"
    #: `set server state drain`; deleted later, when idle or after the drain timeout.
    DRAIN = "drain"
    #: A draining server that is wanted again: `set server state ready`.
    READY = "ready"


@dataclass(frozen=True, slots=True, order=True)
class ServerOp:
    backend: str
    kind: OpKind
    server: Server


class ReasonKind(StrEnum):
    """Why a reload happened, in few words: the label of the reloads metric."""

    INITIAL = "initial config"
    SETTINGS = "settings or template changed"
    TEXT = "config text changed"
    CERTIFICATES = "certificates changed"
    ADDED = "added"
    REMOVED = "removed"
    OPTIONS = "options changed"
    ROUTES = "routes changed"
    LISTENERS = "listeners changed"
    ENDPOINTS = "endpoints changed"
    COOKIE_ENDPOINTS = "cookie backend endpoints changed"
    RUNTIME_FAILED = "runtime update failed"


@dataclass(frozen=True, slots=True, order=True)
class Reason:
    """One reason to reload: its kind (for the metric) and a sentence (for the log)."""

    kind: ReasonKind
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Plan:
    """Either runtime operations (`reload` empty) or a reload with its reasons."""

    ops: tuple[ServerOp, ...] = ()
    reload: tuple[Reason, ...] = ()


def plan(
    running: LoadBalancer | None,
    desired: LoadBalancer,
    *,
    draining: Mapping[str, frozenset[str]] | None = None,
    settings_changed: bool = False,
) -> Plan:
    """How to go from `running` (with `draining` servers per backend, still in HAProxy
    but no longer in the model) to `desired`."""
    if running is None:
        return Plan(reload=(Reason(ReasonKind.INITIAL, "initial config"),))
    structural = [
        r
        for r in reload_reasons(running, desired, settings_changed=settings_changed)
        if r.kind not in (ReasonKind.ENDPOINTS, ReasonKind.TEXT)
    ]
    before = {b.name: b for b in running.backends}
    pairs = [(before[b.name], b) for b in desired.backends if b.name in before]
    endpoints = plan_endpoints(pairs, draining=draining)
    if structural:
        reasons = structural + list(endpoints.reload) + endpoint_reasons(pairs)
        return Plan(reload=tuple(dict.fromkeys(reasons)))
    return endpoints


def plan_endpoints(
    pairs: Iterable[tuple[Backend, Backend]], *, draining: Mapping[str, frozenset[str]] | None
) -> Plan:
    """The runtime operations that take each (old, new) backend pair, alike but for
    their servers, from the old servers to the new: work in proportion to the pairs
    given, so the endpoint fast path can plan just the backends it touched."""
    draining = draining or {}
    ops: list[ServerOp] = []
    fallback: list[Reason] = []
    for old, new in pairs:
        if old is new or old.servers == new.servers:
            continue
        old_names = {s.name for s in old.servers}
        new_names = {s.name for s in new.servers}
        added = [s for s in new.servers if s.name not in old_names]
        removed = [s for s in old.servers if s.name not in new_names]
        if added and new.stickiness is Stickiness.COOKIE:
            fallback.append(
                Reason(
                    ReasonKind.COOKIE_ENDPOINTS,
                    f"{_label(new)} endpoints changed (+{len(added)} -{len(removed)}): "
                    "cookie stickiness needs a reload to give new servers a cookie",
                )
            )
            continue
        gone = draining.get(new.name, frozenset())
        for server in added:
            kind = OpKind.READY if server.name in gone else OpKind.ADD
            ops.append(ServerOp(new.name, kind, server))
        ops.extend(ServerOp(new.name, OpKind.DRAIN, s) for s in removed)
    if fallback:
        return Plan(reload=tuple(fallback))
    return Plan(ops=tuple(sorted(ops)))


def endpoint_reasons(pairs: Iterable[tuple[Backend, Backend]]) -> list[Reason]:
    """One reason per (old, new) backend pair whose servers differ."""
    return [_endpoints_changed(a, b) for a, b in pairs if a is not b and a.servers != b.servers]


def _endpoints_changed(a: Backend, b: Backend) -> Reason:
    added = len(set(b.servers) - set(a.servers))
    removed = len(set(a.servers) - set(b.servers))
    return Reason(ReasonKind.ENDPOINTS, f"{_label(b)} endpoints changed (+{added} -{removed})")


def _options(b: Backend) -> Backend:
    """Everything about a backend but its servers (any field, present or future):
    a change here needs a reload."""
    return replace(b, servers=())


def _label(backend: Backend) -> str:
    service = backend.service
    return f"{backend.mode.value} backend {service.namespace}/{service.name}:{backend.port}"


def reload_reasons(
    old: LoadBalancer | None, new: LoadBalancer, *, settings_changed: bool = False
) -> list[Reason]:
    """What differs between the running model and the new one, most structural first."""
    if old is None:
        return [Reason(ReasonKind.INITIAL, "initial config")]
    reasons: list[Reason] = []
    if settings_changed:
        reasons.append(Reason(ReasonKind.SETTINGS, "settings or template changed"))
    before = {b.name: b for b in old.backends}
    after = {b.name: b for b in new.backends}
    for name in sorted(after.keys() - before.keys()):
        reasons.append(Reason(ReasonKind.ADDED, f"{_label(after[name])} added"))
    for name in sorted(before.keys() - after.keys()):
        reasons.append(Reason(ReasonKind.REMOVED, f"{_label(before[name])} removed"))
    for name in sorted(after.keys() & before.keys()):
        a, b = before[name], after[name]
        if a is b:
            continue  # the fast path keeps unchanged backends: skip them cheaply
        if a.servers != b.servers:
            reasons.append(_endpoints_changed(a, b))
        if _options(a) != _options(b):
            reasons.append(Reason(ReasonKind.OPTIONS, f"{_label(b)} options changed"))
    for changed, kind, text in (
        (old.http_routes != new.http_routes, ReasonKind.ROUTES, "HTTP routes changed"),
        (old.tcp_frontends != new.tcp_frontends, ReasonKind.LISTENERS, "TCP listeners changed"),
        (old.https_routes != new.https_routes, ReasonKind.ROUTES, "HTTPS routes changed"),
        (old.passthrough != new.passthrough, ReasonKind.ROUTES, "TLS passthrough routes changed"),
        (old.ingress_routes != new.ingress_routes, ReasonKind.ROUTES, "Ingress routes changed"),
        (
            old.ingress_default != new.ingress_default,
            ReasonKind.ROUTES,
            "Ingress default backend changed",
        ),
    ):
        if changed:
            reasons.append(Reason(kind, text))
    if old.certificates != new.certificates or old.default_sni != new.default_sni:
        # Names only: they say which Secret changed, and never hold key material. The
        # same files with other SNI filters: a host changed hands (sni_filters.py).
        names = sorted({c.name for c in old.certificates} ^ {c.name for c in new.certificates})
        shown = ", ".join(names) or "SNI filters"
        reasons.append(Reason(ReasonKind.CERTIFICATES, f"certificates changed ({shown})"))
    return reasons or [Reason(ReasonKind.TEXT, "config text changed")]
