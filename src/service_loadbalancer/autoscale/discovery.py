"""Which Services are autoscaled, how, and which workload each one scales. Pure: raw
objects in, values or problems out.

- A Service takes part when it has `autoscale.target-rps` or `autoscale.target-concurrency`
  (one of them); every value goes through the annotation registry, and a bad one is a
  problem: the Service is skipped, nothing is scaled.
- Its target is *the one* Deployment or StatefulSet in its namespace whose pod template
  labels its selector matches, as the Service itself picks pods. None, or several, is a
  problem: guessing could scale the wrong thing.
- A workload that a HorizontalPodAutoscaler already targets is left alone (two
  autoscalers on one workload fight), and reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from service_loadbalancer import annotations as ann
from service_loadbalancer.autoscale.rule import Bounds
from service_loadbalancer.kube.objects import RawObject

#: The workloads a Service's pods may come from, and their apps/v1 plurals.
PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
SCALABLE_KINDS = tuple(PLURALS)


class Metric(Enum):
    RPS = "rps"
    CONCURRENCY = "concurrency"


@dataclass(frozen=True, slots=True)
class Policy:
    metric: Metric
    #: Per pod: requests a second, or requests in flight.
    target: float
    bounds: Bounds


@dataclass(frozen=True, slots=True, order=True)
class Workload:
    kind: str
    namespace: str
    name: str

    @property
    def scale_path(self) -> str:
        plural = PLURALS[self.kind]
        return f"/apis/apps/v1/namespaces/{self.namespace}/{plural}/{self.name}/scale"

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.namespace}/{self.name}"


def _meta(obj: RawObject) -> Mapping[str, object]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _annotations(obj: RawObject) -> dict[str, str]:
    found = _meta(obj).get("annotations")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def service_policy(service: RawObject) -> Policy | str | None:
    """The Service's autoscaling policy, None when it has none, or why it is invalid."""
    values = _annotations(service)
    try:
        rps = ann.AUTOSCALE_TARGET_RPS.get(values)
        concurrency = ann.AUTOSCALE_TARGET_CONCURRENCY.get(values)
        if rps is None and concurrency is None:
            return None
        minimum = ann.AUTOSCALE_MIN.get(values)
        maximum = ann.AUTOSCALE_MAX.get(values)
    except ann.AnnotationError as err:
        return str(err)
    if rps is not None and concurrency is not None:
        return (
            f"{ann.AUTOSCALE_TARGET_RPS.key} and {ann.AUTOSCALE_TARGET_CONCURRENCY.key} "
            "are both set: choose one"
        )
    if minimum > maximum:
        return f"{ann.AUTOSCALE_MIN.key} ({minimum}) is above {ann.AUTOSCALE_MAX.key} ({maximum})"
    bounds = Bounds(minimum, maximum)
    if rps is not None:
        return Policy(Metric.RPS, rps, bounds)
    assert concurrency is not None
    return Policy(Metric.CONCURRENCY, concurrency, bounds)


def _labels(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _template_labels(workload: RawObject) -> dict[str, str]:
    spec = workload.get("spec") or {}
    template = spec.get("template") if isinstance(spec, dict) else None
    meta = template.get("metadata") if isinstance(template, dict) else None
    return _labels(meta.get("labels") if isinstance(meta, dict) else None)


def workload_of(obj: RawObject) -> Workload:
    meta = _meta(obj)
    return Workload(str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name")))


def find_target(service: RawObject, workloads: Iterable[RawObject]) -> Workload | str:
    """The one Deployment or StatefulSet of the Service's namespace whose pod template
    labels the Service's selector matches, or why there is not exactly one."""
    spec = service.get("spec") or {}
    selector = _labels(spec.get("selector") if isinstance(spec, dict) else None)
    if not selector:
        return "has no selector, so no workload to scale"
    namespace = _meta(service).get("namespace")
    matches = sorted(
        workload_of(w)
        for w in workloads
        if w.get("kind") in SCALABLE_KINDS
        and _meta(w).get("namespace") == namespace
        and selector.items() <= _template_labels(w).items()
    )
    shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    if not matches:
        return f"no Deployment or StatefulSet in {namespace} has pods labelled {shown}"
    if len(matches) > 1:
        names = ", ".join(str(m) for m in matches)
        return f"several workloads have pods labelled {shown} ({names}): scaling none"
    return matches[0]


def hpa_targets(hpas: Iterable[RawObject]) -> dict[Workload, str]:
    """Workload -> the HorizontalPodAutoscaler that targets it."""
    found: dict[Workload, str] = {}
    for hpa in hpas:
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") if isinstance(spec, dict) else None
        if not isinstance(ref, dict) or ref.get("kind") not in SCALABLE_KINDS:
            continue
        meta = _meta(hpa)
        workload = Workload(str(ref["kind"]), str(meta.get("namespace", "")), str(ref.get("name")))
        found[workload] = str(meta.get("name"))
    return found


def parse_workload(text: str) -> Workload:
    """`NAMESPACE/deployment/NAME` (or statefulset, daemonset) as --lb-workload takes it.
    Raises ValueError with a message for the user."""
    parts = text.split("/")
    kinds = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}
    if len(parts) != 3 or parts[1].lower() not in kinds or not parts[0] or not parts[2]:
        raise ValueError(f"{text!r} is not NAMESPACE/deployment/NAME (or statefulset, daemonset)")
    return Workload(kinds[parts[1].lower()], parts[0], parts[2])
