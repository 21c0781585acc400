"""deploy/autoscale/ and the optional Deployment form of the load balancer: they validate
against the Kubernetes OpenAPI schemas, the autoscaler's RBAC is exactly what it uses,
its args are valid flags, and its replicas elect the one that writes through a Lease in
their own namespace, named and held as the flags and the downward API say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service_loadbalancer.autoscale.cluster import WORKLOAD_PATHS
from service_loadbalancer.autoscale.options import (
    build_autoscale_parser,
    build_autoscale_settings,
)
from service_loadbalancer.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
AUTOSCALE = sorted((DEPLOY / "autoscale").glob("*.yaml"))
LB_DEPLOYMENT = DEPLOY / "kubernetes" / "optional" / "loadbalancer-deployment.yaml"
K8S_VERSION = "1.30.0"


def objects(*paths: Path) -> list[dict[str, Any]]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]


def one(kind: str, *paths: Path) -> dict[str, Any]:
    (obj,) = [o for o in objects(*(paths or AUTOSCALE)) if o["kind"] == kind]
    return obj


@pytest.mark.parametrize("path", [*AUTOSCALE, LB_DEPLOYMENT], ids=lambda p: p.name)
def test_manifests_validate(path: Path) -> None:
    for doc in objects(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_cluster_role_is_exactly_what_the_autoscaler_uses() -> None:
    granted = {
        (group, resource, verb)
        for rule in one("ClusterRole")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    read = {("", "services"), ("", "pods"), ("autoscaling", "horizontalpodautoscalers")}
    read |= {("apps", path.rsplit("/", 1)[1]) for path in WORKLOAD_PATHS.values()}
    expected = {(g, r, v) for g, r in read for v in ("get", "list", "watch")}
    expected |= {("apps", f"{r}/scale", v) for r in ("deployments", "statefulsets")
                 for v in ("get", "update", "patch")}  # fmt: skip
    expected |= {("", "events", "create")}
    assert granted == expected
    assert not any(r == "secrets" for _, r, _ in granted)
    assert not any(r in ("deployments", "statefulsets") and v in ("update", "patch")
                   for _, r, v in granted)  # fmt: skip


def test_lease_role_is_exactly_what_the_election_uses_in_its_own_namespace() -> None:
    role, binding = one("Role"), one("RoleBinding")
    namespace = one("Deployment")["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]},
    ]  # fmt: skip
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}  # fmt: skip
    (subject,) = binding["subjects"]
    assert subject["namespace"] == namespace
    assert subject["name"] == one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    # Leases only through the Role: nothing cluster-wide.
    assert not any("coordination.k8s.io" in r["apiGroups"] for r in one("ClusterRole")["rules"])


def test_replicas_elect_one_writer_and_valid_args() -> None:
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] >= 1
    # Overlap is safe (the Lease elects one writer): the new pod stands by first.
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    binding = one("ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    assert binding["roleRef"]["name"] == one("ClusterRole")["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["args"][0] == "autoscale"
    args = build_autoscale_parser().parse_args(container["args"][1:])
    settings = build_autoscale_settings(args, {})
    # The selector finds the load balancer's pods as deploy/kubernetes/ labels them.
    daemonset = one("DaemonSet", DEPLOY / "kubernetes" / "30-daemonset.yaml")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    key, _, value = settings.lb_selector.partition("=")
    assert labels[key] == value
    env = {e["name"] for e in container["env"]}
    assert {"SLB_STATS_USER", "SLB_STATS_PASSWORD"} <= env
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
                for e in container["env"] if "fieldRef" in e.get("valueFrom", {})}  # fmt: skip
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    lease_env = {"POD_NAME": "pod-0", "POD_NAMESPACE": deployment["metadata"]["namespace"]}
    settings = build_autoscale_settings(args, lease_env)
    assert settings.lease_namespace == one("Role")["metadata"]["namespace"]
    assert settings.election_id == "service-loadbalancer-autoscale"
    assert not settings.dry_run  # a dry run takes no Lease
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_load_balancer_deployment_form() -> None:
    deployment = one("Deployment", LB_DEPLOYMENT)
    daemonset = one("DaemonSet", DEPLOY / "kubernetes" / "30-daemonset.yaml")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"role": "loadbalancer"}
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0  # host ports
    # The same container as the DaemonSet's.
    assert pod["containers"] == daemonset["spec"]["template"]["spec"]["containers"]
    (container,) = pod["containers"]
    build_parser().parse_args(container["args"][1:])
    ports = {p["name"]: p.get("hostPort") for p in container["ports"]}
    assert ports["http"] == 80 and ports["stats"] == 1936
