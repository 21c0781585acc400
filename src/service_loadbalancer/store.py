"""The store: the current set of objects from every source, and whether it is complete.

Sources write to it (one object at a time, or a whole kind at once after a list);
the reconciler reads immutable snapshots from it. It is deliberately synchronous and
free of I/O: a change bumps `version` and calls the listeners, nothing more.

Readiness matters: a config rendered before every kind has been listed once would
serve an empty or partial view (every Service without endpoints, say), so the
reconciler renders nothing until `ready` is true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from service_loadbalancer.kube.objects import ObjectKey, RawObject, key_of
from service_loadbalancer.model import Problem


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of the store at one version."""

    version: int
    objects: Mapping[ObjectKey, RawObject]
    #: Problems the sources found in their input (a bad file, say), by source name.
    source_problems: tuple[Problem, ...] = field(default_factory=tuple)

    def of_kind(self, kind: str) -> list[RawObject]:
        """The objects of one kind, in key order (so translation is deterministic)."""
        return [self.objects[k] for k in sorted(self.objects) if k.kind == kind]


class Store:
    """Objects by key, per-(kind, namespace) readiness, and per-source problems.

    A source that lists each namespace on its own (the Kubernetes source with
    `--namespace a,b`) gives `namespaces`: the store is then ready only once every kind has
    been listed in every one of them, and a relist of one namespace replaces that
    namespace's objects only. The default, `("",)`, is one list of all namespaces per kind.
    """

    def __init__(self, kinds: Iterable[str], *, namespaces: Iterable[str] = ("",)) -> None:
        self._objects: dict[ObjectKey, RawObject] = {}
        self._pending: set[tuple[str, str]] = {(k, ns) for k in kinds for ns in namespaces}
        self._problems: dict[str, tuple[Problem, ...]] = {}
        self._listeners: list[Callable[[], None]] = []
        self.version = 0

    @property
    def ready(self) -> bool:
        """True once every kind has been listed (or loaded) at least once."""
        return not self._pending

    def pending(self) -> list[tuple[str, str]]:
        """The (kind, namespace) lists still awaited ("" = all namespaces), sorted."""
        return sorted(self._pending)

    def mark_listed(self, kind: str, *, namespace: str = "") -> bool:
        """Stop waiting for one list without changing any object.

        For a list the source cannot make (403: it is reported elsewhere): waiting for it
        would keep every other Service off the air, while it has no objects to lose.
        """
        if (kind, namespace) not in self._pending:
            return False
        self._pending.discard((kind, namespace))
        self._changed()
        return True

    def get(self, key: ObjectKey) -> RawObject | None:
        return self._objects.get(key)

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def upsert(self, obj: RawObject) -> bool:
        key = key_of(obj)
        if self._objects.get(key) == obj:
            return False
        self._objects[key] = obj
        self._changed()
        return True

    def delete(self, key: ObjectKey) -> bool:
        if self._objects.pop(key, None) is None:
            return False
        self._changed()
        return True

    def replace(self, kind: str, objects: Iterable[RawObject], *, namespace: str = "") -> bool:
        """Make the objects of `kind` (in `namespace`, or all when "") exactly `objects`,
        in one step, and mark that list done.

        This is what a (re)list does: objects absent from the list are gone, but only from
        the namespace listed (a relist of `a` must not delete `b`'s objects).
        """
        return self.replace_many({kind: objects}, namespace=namespace)

    def replace_many(
        self, kinds: Mapping[str, Iterable[RawObject]], *, namespace: str = ""
    ) -> bool:
        """`replace` for several kinds as one change, so no snapshot ever holds new
        Services beside old endpoints (the file source reads all kinds at once)."""
        changed = False
        for kind, objects in kinds.items():
            new = {}
            for obj in objects:
                key = key_of(obj)
                if key.kind != kind or (namespace and key.namespace != namespace):
                    raise ValueError(f"{key} given as a {kind} of {namespace or 'any namespace'}")
                new[key] = obj
            old = {
                k: v
                for k, v in self._objects.items()
                if k.kind == kind and (not namespace or k.namespace == namespace)
            }
            if (kind, namespace) in self._pending:
                self._pending.discard((kind, namespace))
                changed = True
            if new != old:
                for key in old.keys() - new.keys():
                    del self._objects[key]
                self._objects.update(new)
                changed = True
        if changed:
            self._changed()
        return changed

    def set_problems(self, source: str, problems: Iterable[Problem]) -> bool:
        value = tuple(sorted(set(problems)))
        if self._problems.get(source, ()) == value:
            return False
        self._problems[source] = value
        self._changed()
        return True

    def snapshot(self) -> Snapshot:
        problems = tuple(p for name in sorted(self._problems) for p in self._problems[name])
        return Snapshot(
            version=self.version,
            objects=MappingProxyType(dict(self._objects)),
            source_problems=problems,
        )

    def _changed(self) -> None:
        self.version += 1
        for listener in self._listeners:
            listener()
