"""The endpoint fast path: apply an endpoints-only change without translating and rendering
everything. Pure, no I/O.

Why: a full translate + render costs ~0.1 s at 1,000 Services and ~1 s at 10,000, which
would be most of the time from a pod becoming ready to its first request. Endpoints are
also by far the most frequent change (rolling updates, autoscaling). When only
EndpointSlices or Endpoints changed, the Services they belong to are translated on their
own, their backends' servers are swapped into the running model, and the config text is
patched by replacing those backends' sections with the same template rendered for just
them. Anything this cannot do exactly returns None and the caller does the full sync;
the reconciler also runs a full sync once things are quiet and checks it renders the
very same text (the safety net for anything this module gets wrong).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from service_loadbalancer.kube.objects import SERVICE_NAME_LABEL, ObjectKey, RawObject
from service_loadbalancer.model import Backend, LoadBalancer, Problem
from service_loadbalancer.store import Snapshot

_ENDPOINT_KINDS = frozenset({"EndpointSlice", "Endpoints"})


def endpoint_changes(old: Snapshot, new: Snapshot) -> set[tuple[str, str]] | None:
    """The (namespace, service) whose endpoints changed from `old` to `new`, or None when
    anything else changed too (a Service, a source problem)."""
    if old.source_problems != new.source_problems:
        return None
    before, after = old.objects, new.objects
    changed: list[ObjectKey] = [
        key for key, obj in after.items() if (prev := before.get(key)) is not obj and prev != obj
    ]
    if len(before) + sum(1 for k in changed if k not in before) != len(after):
        changed += [key for key in before if key not in after]
    services: set[tuple[str, str]] = set()
    for key in changed:
        if key.kind not in _ENDPOINT_KINDS:
            return None
        for obj in (before.get(key), after.get(key)):
            if obj is not None:
                services.add((key.namespace, _service_of(key, obj)))
    return services


def _service_of(key: ObjectKey, obj: RawObject) -> str:
    if key.kind == "Endpoints":
        return key.name
    labels = (obj.get("metadata") or {}).get("labels") or {}
    service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
    return str(service) if service else ""


def sub_snapshot(snapshot: Snapshot, services: set[tuple[str, str]]) -> Snapshot:
    """Only the given Services and their endpoints."""
    objects: dict[ObjectKey, RawObject] = {}
    for key, obj in snapshot.objects.items():
        if key.kind in {"Service", "Endpoints"}:
            if (key.namespace, key.name) in services:
                objects[key] = obj
        elif key.kind == "EndpointSlice" and (key.namespace, _service_of(key, obj)) in services:
            objects[key] = obj
    return Snapshot(version=snapshot.version, objects=objects)


@dataclass(frozen=True, slots=True)
class Patch:
    model: LoadBalancer
    #: The backends whose servers changed, as in the new model.
    backends: tuple[Backend, ...]


def patch_model(
    running: LoadBalancer,
    partial: LoadBalancer,
    partial_problems: Iterable[Problem],
    services: set[tuple[str, str]],
    running_problems: Iterable[Problem],
) -> Patch | None:
    """Swap the servers of `partial` (the affected Services translated on their own) into
    `running`; None unless every affected backend exists, identical but for its servers,
    and no problem concerns those Services (problems are then the full sync's job)."""
    if any(_concerns(p, services) for p in (*partial_problems, *running_problems)):
        return None
    by_name = {b.name: b for b in running.backends}
    owned = {b.name for b in running.backends if (b.service.namespace, b.service.name) in services}
    if {b.name for b in partial.backends} != owned:
        return None
    changed: dict[str, Backend] = {}
    for new in partial.backends:
        old = by_name[new.name]
        if replace(old, servers=new.servers) != replace(new, strip_prefixes=old.strip_prefixes):
            return None
        if old.servers != new.servers:
            changed[new.name] = replace(old, servers=new.servers)
    model = replace(running, backends=tuple(changed.get(b.name, b) for b in running.backends))
    return Patch(model=model, backends=tuple(changed[n] for n in sorted(changed)))


def _concerns(problem: Problem, services: set[tuple[str, str]]) -> bool:
    return (problem.subject.namespace, problem.subject.name) in services


#: The start of the next top-level line (a section header or a comment).
_TOP_LEVEL = re.compile(r"\n(?=\S)")
#: Blank lines at the end of a section belong to no section.
_TRAILING_BLANK = re.compile(r"(?:\n[ \t]*)+\Z")


def section_span(text: str, name: str) -> tuple[int, int] | None:
    """Where backend `name`'s section is in `text`: from its `backend` line to its last
    indented line (blank lines after it excluded), as string offsets; None if absent.

    String searches rather than a scan of every line: this runs on every endpoint
    change, over the whole running config (tens of MB with many Services)."""
    head = f"backend {name}\n"
    if text.startswith(head):
        start = 0
    else:
        at = text.find("\n" + head)
        if at < 0:
            return None
        start = at + 1
    following = _TOP_LEVEL.search(text, start + len(head) - 1)
    end = following.start() if following else len(text)
    blank = _TRAILING_BLANK.search(text, start, end)
    return start, blank.start() if blank else end


def replace_sections(
    text: str, sections: Mapping[str, str]
) -> tuple[str, dict[str, tuple[str, str]]] | None:
    """`text` with the named backends' sections replaced by the same sections of another
    rendering, and per backend its (old, new) section text; None if one is missing on
    either side."""
    spans: list[tuple[int, int, str]] = []
    changes: dict[str, tuple[str, str]] = {}
    for name, other_text in sections.items():
        where, other = section_span(text, name), section_span(other_text, name)
        if where is None or other is None:
            return None
        new = other_text[other[0] : other[1]]
        spans.append((where[0], where[1], new))
        changes[name] = (text[where[0] : where[1]], new)
    pieces: list[str] = []
    done = 0
    for first, end, new in sorted(spans):
        pieces += [text[done:first], new]
        done = end
    pieces.append(text[done:])
    return "".join(pieces), changes
