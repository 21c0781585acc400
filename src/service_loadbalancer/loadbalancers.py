"""Services of type LoadBalancer: which are ours, their ports, who gets a contested port,
which get status. Pure.

- **Ours** (`lb_spec`): `type: LoadBalancer` and, without `--load-balancer-class`, no
  `spec.loadBalancerClass`; with it, exactly that class. A Service of another class is
  left alone (MetalLB, a cloud provider): no port, no status. It keeps its L7 routes, as
  every Service has.
- **Ports**: every TCP port gets a TCP listener on its own number, through a TCP backend
  of its own (`tcp_<ns>_<name>_<port>`: the port's HTTP backend keeps serving its L7
  routes), or the port's own TCP backend when it already is TCP (`--tcp-services`, TLS
  passthrough). A port equal to `--http-port` is the shared HTTP frontend's, as is one
  equal to `--https-port` when the Service terminates or passes TLS. UDP and SCTP are
  reported: HAProxy proxies TCP only.
- **Claims**: two Services wanting one port: the oldest (creationTimestamp, then
  namespace/name) wins, the loser is a problem (an Event) and gets no status: it stays
  pending, which is the truth. Ports named in `--tcp-services` come first (the
  operator's explicit choice); routes.tcp_frontends settles it.
- **Source ranges** (`spec.loadBalancerSourceRanges`): enforced on the Service's
  listeners at connection time, and on its backends (so its L7 routes too). An invalid
  CIDR skips the whole Service: serving it wider than asked is the one wrong answer.
- **Status**: a Service gets status when each of its ports is served; on the shared
  HTTP(S) port that means a Service route of its own there (not with
  --service-routes=false, not over HTTPS without a certificate). A Service whose
  status we may have written and that is no longer ours is listed to be cleared.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any

from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import Mode, TcpFrontend, backend_name
from service_loadbalancer.settings import Settings
from service_loadbalancer.translation_run import LbSpec, ServicePort, TranslationRun

LOAD_BALANCER = "LoadBalancer"
#: What we put in each status entry of a Service (and so how we recognise ours).
IP_MODE_PROXY = "Proxy"


def is_load_balancer(spec: Mapping[str, Any]) -> bool:
    return spec.get("type") == LOAD_BALANCER


def class_matches(spec: Mapping[str, Any], settings: Settings) -> bool:
    """Whether the Service's loadBalancerClass is the one we serve (None: no class)."""
    wanted = settings.load_balancer_class
    have = spec.get("loadBalancerClass")
    return (have or None) == wanted


def lb_spec(svc: RawObject, spec: Mapping[str, Any], settings: Settings) -> LbSpec | str | None:
    """None: not a load balancer of ours; a str: ours but unusable (why); else its spec."""
    if not is_load_balancer(spec) or not class_matches(spec, settings):
        return None
    raw = spec.get("loadBalancerSourceRanges") or []
    if not isinstance(raw, list):
        return "spec.loadBalancerSourceRanges is not a list; not served"
    sources: list[str] = []
    for item in raw:
        try:
            # The API server validates with Go's net.ParseCIDR: host bits may be set.
            if not isinstance(item, str) or not item.isascii() or "%" in item or "/" not in item:
                raise ValueError(item)
            network = str(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            return f"loadBalancerSourceRanges entry {item!r} is not a CIDR; not served"
        if network not in sources:
            sources.append(network)
    meta = svc.get("metadata")
    created = str(meta.get("creationTimestamp") or "") if isinstance(meta, dict) else ""
    return LbSpec(sources=tuple(sorted(sources)), created=created)


def shared_frontend(port: ServicePort, settings: Settings) -> bool:
    """Whether the port is served by the shared HTTP or HTTPS frontend, not a listener."""
    if port.number == settings.http_port:
        return True
    tls = port.options.ssl_term or port.passthrough
    return port.number == settings.https_port and tls


def lb_listeners(ports: Iterable[ServicePort], settings: Settings) -> list[ServicePort]:
    """The extra TCP ports (own backends) the LB ports need; a TCP port of an LB Service
    becomes a listener itself. Call after --tcp-services claims are settled."""
    extra: list[ServicePort] = []
    for port in ports:
        if port.lb is None or port.listener or shared_frontend(port, settings):
            continue
        if port.mode is Mode.TCP:
            port.listener = True
            continue
        extra.append(
            replace(
                port,
                mode=Mode.TCP,
                listener=True,
                passthrough=False,
                backend=backend_name(Mode.TCP, port.key, port.number),
            )
        )
    return extra


def published(
    ports: Iterable[ServicePort],
    frontends: Iterable[TcpFrontend],
    routed: Mapping[int, Collection[str]],
    out: TranslationRun,
) -> tuple[ObjectKey, ...]:
    """The LB Services each of whose ports is served (a listener of its own, or a
    shared frontend where the Service really has a route), without unsupported (UDP,
    SCTP) ports: these get status. `routed`: the shared ports (--http-port, --https-port)
    -> the backends served there by a Service route of their own (HTTP routes; HTTPS
    routes terminated here, SNI names passed).

    A port on the shared HTTP(S) port without such a route (--service-routes=false,
    or HTTPS lost to a missing certificate) is reported, and its Service gets no
    status: it would tell clients an address where nothing of it answers."""
    settings = out.settings
    served = {(f.port, f.backend) for f in frontends}
    verdict: dict[ObjectKey, bool] = {}
    for port in ports:
        if port.lb is None:
            continue
        shared = shared_frontend(port, settings)
        if port.mode is Mode.HTTP and not shared:
            continue  # its listener is the TCP twin, judged on its own
        if shared:
            ok = port.backend in routed.get(port.number, ())
            if not ok:
                out.problem(port.key, _unrouted(port, settings))
        else:
            ok = port.listener and (port.number, port.backend) in served
        verdict[port.key] = verdict.get(port.key, True) and ok
    bad = set(out.unsupported)
    return tuple(sorted(k for k, ok in verdict.items() if ok and k not in bad))


def _unrouted(port: ServicePort, settings: Settings) -> str:
    if port.number == settings.http_port:
        flag, why = "--http-port", "no Service route (--service-routes=false)"
        if settings.service_routes:
            why = "no Service route"
    else:
        flag, why = "--https-port", "no HTTPS (no usable certificate or SNI name)"
    return f"port {port.number} is the {flag}, where this Service has {why}; no status"


def status_ingress(obj: RawObject) -> list[Any] | None:
    """status.loadBalancer.ingress as it is, None when absent or not a list (Services and
    Ingresses both keep their load-balancer status there)."""
    status = obj.get("status")
    balancer = status.get("loadBalancer") if isinstance(status, dict) else None
    ingress = balancer.get("ingress") if isinstance(balancer, dict) else None
    return ingress if isinstance(ingress, list) else None


def has_our_status(svc: RawObject) -> bool:
    """Whether the Service's status lists load-balancer entries that we would have
    written (every entry with ipMode Proxy, or a hostname only we publish)."""
    ingress = status_ingress(svc)
    if not ingress:
        return False
    return all(
        isinstance(e, dict) and (e.get("ipMode") == IP_MODE_PROXY or "ip" not in e) for e in ingress
    )


def to_clear(svc: RawObject, spec: object, settings: Settings) -> bool:
    """Whether this Service, not (or no longer) ours, carries status to clear: only
    entries that look like ours, and never on a Service of another class."""
    if not has_our_status(svc):
        return False
    if not isinstance(spec, dict):
        return True  # not a Service we can serve at all
    return not is_load_balancer(spec) or class_matches(spec, settings)
