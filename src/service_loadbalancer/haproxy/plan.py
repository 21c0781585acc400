"""Planning: why the running config must change. Pure, no I/O.

Every reload carries reasons a person can read ("backend default/web added"), which are
logged and counted; an empty reason is a bug. For now every change is applied with a
reload; the runtime-API path for endpoint changes builds on these same diffs.
"""

from __future__ import annotations

from service_loadbalancer.model import Backend, LoadBalancer


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
        if a.servers != b.servers:
            added = len(set(b.servers) - set(a.servers))
            removed = len(set(a.servers) - set(b.servers))
            reasons.append(f"{_label(b)} endpoints changed (+{added} -{removed})")
        if (a.algorithm, a.stickiness, a.stickiness_timeout, a.strip_prefixes) != (
            b.algorithm,
            b.stickiness,
            b.stickiness_timeout,
            b.strip_prefixes,
        ) or (a.ssl_redirect, a.hsts_max_age) != (b.ssl_redirect, b.hsts_max_age):
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
    if "endpoints changed" in reason:
        return "endpoints changed"
    return "other"
