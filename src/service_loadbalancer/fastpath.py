"""What runs, as one value, and the endpoint fast path that changes it. Pure, no I/O.

Why: a full translate + render costs ~0.1 s at 1,000 Services and ~1 s at 10,000, which
would be most of the time from a pod becoming ready to its first request; endpoints are
also by far the most frequent change (rolling updates, autoscaling). So when only
EndpointSlices or Endpoints changed, the Services they belong to are translated on their
own (from the store's index, not a copy of it), their backends' servers are swapped into
the running model, and the config text is patched by swapping those backends' sections
for the same template rendered for just them. Every step costs in proportion to the
change: `Running` keeps indexes by backend and by Service, and the text as sections.

Anything this cannot do exactly is declined, Service by Service, and left to the full
sync, which also runs once things are quiet and checks that it renders the very same
config (the safety net for anything this module gets wrong).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from service_loadbalancer.haproxy.render import CONFIG_FILE, Rendered, TemplateError, render
from service_loadbalancer.haproxy.sections import Sections, split_sections, split_servers
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import Backend, LoadBalancer, Problem, Translation
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import ServiceName, Store
from service_loadbalancer.translate import translate


@dataclass(frozen=True, slots=True)
class Running:
    """What HAProxy runs: the model, its config as sections, the other files, and the
    store version it reflects. Replaced as a whole, by one commit, never edited."""

    model: LoadBalancer
    sections: Sections
    #: The other files of the config (maps, error page), as rendered.
    files: Mapping[str, str]
    certificates: Mapping[str, str]
    problems: frozenset[Problem]
    #: The store version whose endpoint changes are all applied (or left to a full sync).
    version: int
    #: Backend name -> position in model.backends.
    positions: Mapping[str, int]
    #: Service -> the names of its backends.
    by_service: Mapping[ServiceName, tuple[str, ...]]
    #: Service -> its problems (those whose subject has its namespace and name). The
    #: fast path swaps a Service's servers only when its own translation gives the same
    #: problems (a warning that stays, like unverified TLS to the pods, does not stop
    #: it); a problem that would appear, go or change is the full sync's job.
    troubled: Mapping[ServiceName, frozenset[Problem]]
    #: Backends whose servers the fast path changed since the last full sync.
    touched: frozenset[str] = frozenset()
    #: When the first fast-path change not yet checked by a full sync was applied.
    unverified_since: float | None = None
    #: Whether the config on disk has this value's servers.
    written: bool = True

    @property
    def ingresses(self) -> frozenset[ObjectKey]:
        """The Ingresses that are ours (Translation.ingresses): what the status writer
        keeps status.loadBalancer of. Changed only by a full sync (an Ingress change is one)."""
        return frozenset(self.model.ingresses)

    def rendered(self) -> Rendered:
        """The files to write (joining the sections: the one step in O(config size))."""
        return Rendered(
            files=MappingProxyType({CONFIG_FILE: self.sections.text(), **self.files}),
            certificates=self.certificates,
        )

    def backend(self, name: str) -> Backend | None:
        at = self.positions.get(name)
        return None if at is None else self.model.backends[at]


def running_from(translation: Translation, rendered: Rendered, *, version: int) -> Running:
    """Index a full translation and rendering (O(size): done off the event loop)."""
    model = translation.model
    by_service: dict[ServiceName, list[str]] = {}
    for backend in model.backends:
        service = (backend.service.namespace, backend.service.name)
        by_service.setdefault(service, []).append(backend.name)
    return Running(
        model=model,
        sections=split_sections(rendered.config),
        files=MappingProxyType({k: v for k, v in rendered.files.items() if k != CONFIG_FILE}),
        certificates=rendered.certificates,
        problems=frozenset(translation.problems),
        version=version,
        positions=MappingProxyType({b.name: i for i, b in enumerate(model.backends)}),
        by_service=MappingProxyType({k: tuple(v) for k, v in by_service.items()}),
        troubled=problems_by_service(translation.problems),
    )


def problems_by_service(problems: Iterable[Problem]) -> Mapping[ServiceName, frozenset[Problem]]:
    """Problems grouped by the namespace and name of their subject (a Service, its
    EndpointSlices or Endpoints, or another kind of the same name)."""
    grouped: dict[ServiceName, set[Problem]] = {}
    for problem in problems:
        grouped.setdefault((problem.subject.namespace, problem.subject.name), set()).add(problem)
    return MappingProxyType({k: frozenset(v) for k, v in grouped.items()})


@dataclass(frozen=True, slots=True)
class Swap:
    """The result of swapping new servers into a running model."""

    model: LoadBalancer
    #: backend name -> (old, new), for backends whose servers changed.
    pairs: Mapping[str, tuple[Backend, Backend]] = field(default_factory=dict)
    #: Services that could not be swapped (a problem, other options): full sync.
    declined: frozenset[ServiceName] = frozenset()


def swap_servers(running: Running, partial: Translation, services: Iterable[ServiceName]) -> Swap:
    """Swap the servers of `partial` (these Services translated on their own) into the
    running model. A Service is declined when its partial translation has other
    problems than it has running (the problems reported would change, or one came from
    another object, like a name clash), when its backends are not the same set, or when
    a backend differs in more than its servers; the others are swapped."""
    partial_troubled = problems_by_service(partial.problems)
    none: frozenset[Problem] = frozenset()
    fresh: dict[ServiceName, list[Backend]] = {}
    for backend in partial.model.backends:
        key = (backend.service.namespace, backend.service.name)
        fresh.setdefault(key, []).append(backend)
    declined: set[ServiceName] = set()
    pairs: dict[str, tuple[Backend, Backend]] = {}
    for service in services:
        if running.troubled.get(service, none) != partial_troubled.get(service, none):
            declined.add(service)
            continue
        new_backends = fresh.get(service, [])
        if {b.name for b in new_backends} != set(running.by_service.get(service, ())):
            declined.add(service)
            continue
        swapped: dict[str, tuple[Backend, Backend]] = {}
        for new in new_backends:
            old = running.model.backends[running.positions[new.name]]
            if replace(old, servers=new.servers) != replace(new, strip_prefixes=old.strip_prefixes):
                declined.add(service)
                break
            if old.servers != new.servers:
                swapped[new.name] = (old, replace(old, servers=new.servers))
        else:
            pairs.update(swapped)
    if not pairs:
        return Swap(model=running.model, declined=frozenset(declined))
    backends = list(running.model.backends)
    for name, (_, new) in pairs.items():
        backends[running.positions[name]] = new
    return Swap(
        model=replace(running.model, backends=tuple(backends)),
        pairs=MappingProxyType(pairs),
        declined=frozenset(declined),
    )


@dataclass(frozen=True, slots=True)
class Patch:
    sections: Sections
    #: (backend, server) -> the server's arguments, for the backends patched.
    args: Mapping[tuple[str, str], str]


def patch_sections(
    sections: Sections, backends: Iterable[Backend], settings: Settings
) -> Patch | None:
    """The config sections with these backends rendered anew (the same template, for
    just them). None unless each section exists and only its server lines change (else
    the change needs a reload: the full sync decides)."""
    chosen = tuple(backends)
    if not chosen:
        return Patch(sections=sections, args={})
    try:
        tiny = split_sections(render(LoadBalancer(backends=chosen), settings).config)
    except TemplateError:
        return None
    bodies: dict[str, str] = {}
    args: dict[tuple[str, str], str] = {}
    for backend in chosen:
        old, new = sections.body(backend.name), tiny.body(backend.name)
        if old is None or new is None:
            return None
        new_rest, new_args = split_servers(new)
        if split_servers(old)[0] != new_rest:
            return None
        bodies[backend.name] = new
        args.update(new_args)
    return Patch(sections=sections.replace(bodies), args=MappingProxyType(args))


def server_args(sections: Sections, names: Iterable[str]) -> dict[tuple[str, str], str]:
    """(backend, server) -> arguments, read from the sections of these backends."""
    args: dict[tuple[str, str], str] = {}
    for name in names:
        body = sections.body(name)
        if body is not None:
            args.update(split_servers(body)[1])
    return args


def same_but_servers(old: Running, new: Running, names: Iterable[str]) -> bool:
    """Whether `new`'s config equals `old`'s except in the server lines of the backends
    `names` (whose sections are compared without their servers)."""
    if old.files != new.files or old.certificates != new.certificates:
        return False
    if old.sections.backends != new.sections.backends:
        return False
    if len(old.sections.pieces) != len(new.sections.pieces):
        return False
    skip = {old.sections.backends[n] for n in names if n in old.sections.backends}
    for at, (a, b) in enumerate(zip(old.sections.pieces, new.sections.pieces, strict=True)):
        if a is b or a == b:
            continue
        if at not in skip or split_servers(a)[0] != split_servers(b)[0]:
            return False
    return True


def swap_endpoints(
    running: Running, store: Store, services: Iterable[ServiceName], settings: Settings
) -> tuple[Swap, Patch | None]:
    """These Services translated on their own (read through the store's index), their
    servers swapped into `running`'s model, and their backend sections rendered anew
    (None when a section changes in more than its servers). The one step that both the
    fast path and a full sync's catch-up take."""
    wanted = frozenset(services)
    partial = translate(store.endpoints_of(wanted), settings)
    swap = swap_servers(running, partial, wanted)
    patch = patch_sections(running.sections, [new for _, new in swap.pairs.values()], settings)
    return swap, patch


@dataclass(frozen=True, slots=True)
class CaughtUp:
    running: Running
    #: Backends whose servers the catch-up changed.
    fresh: frozenset[str]
    #: False when something could not be caught up (a Service edited, a source
    #: problem): a full sync must follow.
    complete: bool


def catch_up(new: Running, store: Store, version: int, settings: Settings) -> CaughtUp:
    """`new` (built from the store at `version`) with the endpoint changes made since
    swapped in. Whatever cannot be swapped (a Service edited meanwhile) is left as it was
    at `version`, for the next full sync. Reads only the changed Services."""
    changes = store.changes_since(version)
    now = store.version
    if changes is None:
        return CaughtUp(replace(new, version=now), frozenset(), complete=False)
    complete = changes.endpoints_only
    services = changes.endpoints | changes.services
    if not services:
        return CaughtUp(replace(new, version=now), frozenset(), complete)
    swap, patch = swap_endpoints(new, store, services, settings)
    if patch is None:
        return CaughtUp(replace(new, version=now), frozenset(), complete=False)
    caught = replace(new, model=swap.model, sections=patch.sections, version=now)
    return CaughtUp(caught, frozenset(swap.pairs), complete and not swap.declined)
