"""Planning: why the running config must change. Pure, no I/O.

Every reload carries reasons a person can read ("backend default/web added"), which are
logged and counted; an empty reason is a bug.

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

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True, slots=True)
class Plan:
    """Either runtime operations (`reload` empty) or a reload with its reasons."""

    ops: tuple[ServerOp, ...] = ()
    reload: tuple[str, ...] = field(default_factory=tuple)

    @property
    def noop(self) -> bool:
        return not self.ops and not self.reload


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
        return Plan(reload=("initial config",))
    draining = draining or {}
    structural = _structural_reasons(running, desired, settings_changed=settings_changed)
    before = {b.name: b for b in running.backends}
    ops: list[ServerOp] = []
    fallback: list[str] = []
    for new in desired.backends:
        old = before.get(new.name)
        if old is None or old.servers == new.servers:
            continue
        old_names = {s.name for s in old.servers}
        new_names = {s.name for s in new.servers}
        added = [s for s in new.servers if s.name not in old_names]
        removed = [s for s in old.servers if s.name not in new_names]
        if added and new.stickiness is Stickiness.COOKIE:
            fallback.append(
                f"{_label(new)} endpoints changed (+{len(added)} -{len(removed)}): "
                "cookie stickiness needs a reload to give new servers a cookie"
            )
            continue
        gone = draining.get(new.name, frozenset())
        for server in added:
            kind = OpKind.READY if server.name in gone else OpKind.ADD
            ops.append(ServerOp(new.name, kind, server))
        ops.extend(ServerOp(new.name, OpKind.DRAIN, s) for s in removed)
    if structural or fallback:
        reasons = structural + fallback
        if structural:
            reasons += _endpoint_reasons(running, desired, skip=set())
        return Plan(reload=tuple(dict.fromkeys(reasons)))
    return Plan(ops=tuple(sorted(ops)))


def _structural_reasons(
    old: LoadBalancer, new: LoadBalancer, *, settings_changed: bool
) -> list[str]:
    """Every reason to reload except endpoint changes (those are runtime operations)."""
    return [
        r
        for r in reload_reasons(old, new, settings_changed=settings_changed)
        if reason_kind(r) not in ("endpoints changed", "config text changed")
    ]


def _endpoint_reasons(old: LoadBalancer, new: LoadBalancer, *, skip: set[str]) -> list[str]:
    before = {b.name: b for b in old.backends}
    reasons = []
    for b in new.backends:
        a = before.get(b.name)
        if a is None or a.servers == b.servers or b.name in skip:
            continue
        added = len(set(b.servers) - set(a.servers))
        removed = len(set(a.servers) - set(b.servers))
        reasons.append(f"{_label(b)} endpoints changed (+{added} -{removed})")
    return reasons


def _options(b: Backend) -> Backend:
    """Everything about a backend but its servers (any field, present or future):
    a change here needs a reload."""
    return replace(b, servers=())


def _label(backend: Backend) -> str:
    service = backend.service
    return f"{backend.mode.value} backend {service.namespace}/{service.name}:{backend.port}"


def reload_reasons(
    old: LoadBalancer | None, new: LoadBalancer, *, settings_changed: bool = False
) -> list[str]:
    """What differs between the running model and the new one, most structural first."""
    if old is None:
        return ["initial config"]
    reasons: list[str] = []
    if settings_changed:
        reasons.append("settings or template changed")
    before = {b.name: b for b in old.backends}
    after = {b.name: b for b in new.backends}
    for name in sorted(after.keys() - before.keys()):
        reasons.append(f"{_label(after[name])} added")
    for name in sorted(before.keys() - after.keys()):
        reasons.append(f"{_label(before[name])} removed")
    for name in sorted(after.keys() & before.keys()):
        a, b = before[name], after[name]
        if a is b:
            continue  # the fast path keeps unchanged backends: skip them cheaply
        if a.servers != b.servers:
            added = len(set(b.servers) - set(a.servers))
            removed = len(set(a.servers) - set(b.servers))
            reasons.append(f"{_label(b)} endpoints changed (+{added} -{removed})")
        if _options(a) != _options(b):
            reasons.append(f"{_label(b)} options changed")
    if old.http_routes != new.http_routes:
        reasons.append("HTTP routes changed")
    if old.tcp_frontends != new.tcp_frontends:
        reasons.append("TCP listeners changed")
    if old.https_routes != new.https_routes:
        reasons.append("HTTPS routes changed")
    if old.passthrough != new.passthrough:
        reasons.append("TLS passthrough routes changed")
    if old.certificates != new.certificates:
        # Names only: they say which Secret changed, and never hold key material.
        names = sorted({c.name for c in old.certificates} ^ {c.name for c in new.certificates})
        reasons.append(f"certificates changed ({', '.join(names)})")
    return reasons or ["config text changed"]


def reason_kind(reason: str) -> str:
    """A low-cardinality label for the reloads metric ("backend added", ...)."""
    if reason in ("initial config", "settings or template changed", "config text changed"):
        return reason
    if reason.startswith("certificates changed"):
        return "certificates changed"
    for suffix in ("added", "removed", "options changed", "routes changed", "listeners changed"):
        if reason.endswith(suffix):
            return suffix
    if "cookie stickiness" in reason:
        return "cookie backend endpoints changed"
    if "endpoints changed" in reason:
        return "endpoints changed"
    if reason.startswith("runtime update failed"):
        return "runtime update failed"
    return "other"
