"""The full sync's heavy part: translate and render everything, index it, and compare
it with the running state. Pure, no I/O; run in a worker thread so that it never holds
the event loop (and with it the endpoint fast path) for the second it takes at 10,000
Services.
"""

from __future__ import annotations

from dataclasses import dataclass

from service_loadbalancer.fastpath import Running, running_from, same_but_servers
from service_loadbalancer.gcpause import gc_paused
from service_loadbalancer.haproxy.plan import Reason, ReasonKind, reload_reasons
from service_loadbalancer.haproxy.render import render
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Snapshot
from service_loadbalancer.translate import translate


@dataclass(frozen=True, slots=True)
class Prepared:
    """A full translation and rendering, compared with the running state it started from."""

    running: Running
    #: Why it differs from that state (all kinds, endpoints included); empty if it doesn't.
    reasons: tuple[Reason, ...]
    #: Backends whose servers differ from that state.
    server_diff: frozenset[str]


def prepare(
    snapshot: Snapshot,
    settings: Settings,
    base: Running | None,
    *,
    settings_changed: str | None = None,
) -> Prepared:
    """Everything a full sync computes, in O(cluster): run in a worker thread.

    `settings_changed`: why `settings` differ from those `base` was rendered with (None
    if they do not). When the config changes with them, that one reason stands for the
    options and text changes they explain (an algorithm edit would otherwise give one
    reason per backend)."""
    with gc_paused():
        translation = translate(snapshot, settings)
        rendered = render(translation.model, settings)
        running = running_from(translation, rendered, version=snapshot.version)
        if base is None:
            return Prepared(running, (Reason(ReasonKind.INITIAL, "initial config"),), frozenset())
        diff = frozenset(
            b.name
            for b in running.model.backends
            if (old := base.backend(b.name)) is not None and old.servers != b.servers
        )
        reasons = [
            r for r in reload_reasons(base.model, running.model) if r.kind is not ReasonKind.TEXT
        ]
        if all(r.kind is ReasonKind.ENDPOINTS for r in reasons) and not same_but_servers(
            base, running, diff
        ):
            reasons.append(Reason(ReasonKind.TEXT, "config text changed"))
        if settings_changed is not None and any(
            r.kind is not ReasonKind.ENDPOINTS for r in reasons
        ):
            explained = (ReasonKind.OPTIONS, ReasonKind.TEXT)
            reasons = [
                Reason(ReasonKind.SETTINGS, settings_changed),
                *(r for r in reasons if r.kind not in explained),
            ]
        return Prepared(running, tuple(reasons), diff)
