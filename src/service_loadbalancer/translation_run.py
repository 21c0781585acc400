"""The working values of one `translate()` call, shared by its steps.

translate.py reads Services into ports, endpoints.py finds each port's servers, and
routes.py and https.py decide routes, listeners and HTTPS from the ports. They all work
on the same shapes (a Service port on its way to becoming a backend, with what its
Service asks for, and what the run collects), so these live here, below all of them,
rather than in translate.py, which imports the steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import Algorithm, Mode, Problem, Protocol, Server, Stickiness
from service_loadbalancer.settings import Settings, TcpService


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """What one Service's annotations and spec ask for, validated."""

    algorithm: Algorithm
    host: str | None
    acl_match: str | None
    stickiness_http: Stickiness
    stickiness_tcp: Stickiness
    stickiness_timeout: int
    ssl_term: bool = False
    ssl_secret: str | None = None
    passthrough: bool = False
    ssl_redirect: bool = False
    hsts: int | None = None
    timeout_server_ms: int | None = None
    timeout_connect_ms: int | None = None
    #: lb.backend-protocol: for ports without an appProtocol (None: HTTP/1.1).
    protocol: Protocol | None = None


@dataclass(frozen=True, slots=True)
class LbSpec:
    """What a Service of type LoadBalancer that is ours asks (loadbalancers.py)."""

    #: spec.loadBalancerSourceRanges, normalised; empty: everyone.
    sources: tuple[str, ...]
    #: metadata.creationTimestamp (RFC 3339, compared as text), for port claims.
    created: str


@dataclass(slots=True)
class ServicePort:
    """One usable port of one Service, before routes are decided."""

    key: ObjectKey
    name: str
    number: int
    target: int | str | None
    mode: Mode
    options: ServiceOptions
    servers: tuple[Server, ...]
    backend: str = ""
    #: Named in --tcp-services (a TCP listener of its own); a passthrough port is TCP
    #: without one.
    listener: bool = False
    passthrough: bool = False
    #: The DNS name of an ExternalName Service (validated), else None.
    external_name: str | None = None
    #: What HTTP the pods speak (appProtocol, else lb.backend-protocol).
    protocol: Protocol = Protocol.H1
    #: The Service is a load balancer of ours (type LoadBalancer, our class).
    lb: LbSpec | None = None
    #: A global Service with backup servers (global_services.py): `option allbackups`.
    all_backups: bool = False

    @property
    def sort_key(self) -> tuple[str, str, int]:
        return (self.key.namespace, self.key.name, self.number)

    @property
    def claim_key(self) -> tuple[bool, str, str, str, int]:
        """Who gets a contested TCP port: --tcp-services ports first (by name), then
        load balancers, oldest first."""
        created = self.lb.created if self.lb is not None else ""
        return (self.lb is not None, created, *self.sort_key)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.lb.sources if self.lb is not None else ()


@dataclass(slots=True)
class TranslationRun:
    """What one translation run collects: the inputs it indexes and the problems it finds."""

    settings: Settings
    slices: Mapping[tuple[str, str], list[RawObject]] = field(default_factory=dict)
    endpoints: Mapping[tuple[str, str], RawObject] = field(default_factory=dict)
    tcp_claims: dict[TcpService, list[ServicePort]] = field(
        default_factory=lambda: defaultdict(list)
    )
    secrets: Mapping[tuple[str, str], RawObject] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: Services of type LoadBalancer that are ours (loadbalancers.py), and those of
    #: them with a port we cannot serve (UDP, SCTP).
    load_balancers: set[ObjectKey] = field(default_factory=set)
    unsupported: set[ObjectKey] = field(default_factory=set)

    def problem(self, subject: ObjectKey, reason: str) -> None:
        self.problems.append(Problem(subject, reason))
