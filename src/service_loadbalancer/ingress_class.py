"""Which Ingresses are ours: the IngressClass rules. Pure.

An Ingress is served by one controller only, chosen by its class
(https://kubernetes.io/docs/concepts/services-networking/ingress/#ingress-class):

- `spec.ingressClassName: NAME`: ours when NAME is `--ingress-class` and the IngressClass
  NAME has our controller (`k8s.io/service-loadbalancer`). When no IngressClass of that
  name exists (a manifests directory, or no right to read IngressClasses) the name alone
  decides. Another IngressClass with our controller belongs to another instance of us,
  started with another `--ingress-class`.
- no class field, but the legacy annotation `kubernetes.io/ingress.class: NAME`: ours when
  NAME is `--ingress-class`.
- no class at all: ours with `--watch-ingress-without-class`, or when our IngressClass is
  the cluster's default (`ingressclass.kubernetes.io/is-default-class: "true"`).

An Ingress that is not ours is none of our business: no route, no status, no Event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from service_loadbalancer import annotations as ann
from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import Problem
from service_loadbalancer.settings import Settings

#: Our IngressClass's spec.controller.
CONTROLLER: Final = "k8s.io/service-loadbalancer"
CLASS_FLAG: Final = ObjectKey("Flag", "", "--ingress-class")


def classes_by_name(objects: Iterable[RawObject]) -> dict[str, RawObject]:
    return {str((o.get("metadata") or {}).get("name") or ""): o for o in objects}


def controller_of(ingress_class: RawObject) -> str:
    spec = ingress_class.get("spec")
    controller = spec.get("controller") if isinstance(spec, dict) else None
    return controller if isinstance(controller, str) else ""


def _annotations(obj: RawObject) -> Mapping[str, str]:
    meta = obj.get("metadata")
    found = meta.get("annotations") if isinstance(meta, dict) else None
    return found if isinstance(found, dict) else {}


def is_ours(ingress: RawObject, classes: Mapping[str, RawObject], settings: Settings) -> bool:
    """Whether `ingress` is ours, given the IngressClasses by name (see the module doc)."""
    spec = ingress.get("spec")
    name = spec.get("ingressClassName") if isinstance(spec, dict) else None
    if isinstance(name, str) and name:
        if name != settings.ingress_class:
            return False
        found = classes.get(name)
        return found is None or controller_of(found) == CONTROLLER
    legacy = ann.legacy_ingress_class(_annotations(ingress))
    if legacy is not None:
        return legacy == settings.ingress_class
    if settings.watch_ingress_without_class:
        return True
    ours = classes.get(settings.ingress_class)
    return (
        ours is not None
        and controller_of(ours) == CONTROLLER
        and ann.is_default_ingress_class(_annotations(ours))
    )


def class_problems(classes: Mapping[str, RawObject], settings: Settings) -> list[Problem]:
    """An IngressClass named like ours that another controller owns: its Ingresses are
    not served, which the operator should hear about (a log line: a flag has no Event)."""
    found = classes.get(settings.ingress_class)
    if found is None or controller_of(found) == CONTROLLER:
        return []
    other = controller_of(found) or "(none)"
    return [
        Problem(
            CLASS_FLAG,
            f"IngressClass {settings.ingress_class} has controller {other}, not {CONTROLLER}; "
            "its Ingresses are not served",
        )
    ]
