"""deploy/: the manifests validate against the Kubernetes OpenAPI schemas (offline, with
kubernetes-validate), grant exactly what the controller reads and writes, and the
DaemonSet, ConfigMap and Dockerfile agree with the controller's flags and ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service_loadbalancer.cli import build_parser
from service_loadbalancer.config import load_config_file
from service_loadbalancer.ingress_class import CONTROLLER
from service_loadbalancer.kube.client import DEFAULT_KINDS
from service_loadbalancer.kube.watch import RESOURCES
from service_loadbalancer.remote_clusters import REMOTE_KINDS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").rglob("*.yaml"))
K8S_VERSION = "1.30.0"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def all_objects(*, optional: bool = False) -> list[dict[str, Any]]:
    return [
        doc
        for path in MANIFESTS
        if optional or "optional" not in path.parts
        for doc in documents(path)
    ]


def one(kind: str) -> dict[str, Any]:
    (obj,) = [o for o in all_objects() if o["kind"] == kind]
    return obj


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_validate_against_the_openapi_schemas(path: Path) -> None:
    for doc in documents(path):
        # strict: unknown fields are errors too (a typo would otherwise be dropped silently).
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_does_reject_a_bad_manifest() -> None:
    daemonset = one("DaemonSet")
    daemonset["spec"]["template"]["spec"]["containers"][0]["ports"][0]["hostPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, K8S_VERSION, strict=True)


def rules(kind: str) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for obj in all_objects()
        if obj["kind"] == kind
        for rule in obj["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_cluster_role_grants_exactly_what_the_controller_uses() -> None:
    read = {"Endpoints", *DEFAULT_KINDS}  # Endpoints: the fallback without EndpointSlices
    expected = {
        (RESOURCES[kind].group_version.rpartition("/")[0], RESOURCES[kind].plural, verb)
        for kind in read
        for verb in ("list", "watch")
    } | {("", "events", "create"), ("", "events", "patch")}
    # Status of type=LoadBalancer Services (get: re-read after a 409), and node addresses.
    expected |= {("", "services", "get"), ("", "services/status", "update")}
    expected |= {("", RESOURCES["Node"].plural, verb) for verb in ("list", "watch")}
    # status.loadBalancer of the Ingresses served
    expected |= {("networking.k8s.io", "ingresses/status", "update")}
    expected |= {("networking.k8s.io", "ingresses", "get")}
    assert rules("ClusterRole") == expected
    assert not any(resource == "secrets" for _, resource, _ in rules("ClusterRole"))


def test_secrets_and_namespaced_rbac_are_optional_extras() -> None:
    optional = [o for o in all_objects(optional=True) if o not in all_objects()]
    secret_rules = [
        rule
        for o in optional
        if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-secrets")
        for rule in o["rules"]
    ]
    assert secret_rules == [{"apiGroups": [""], "resources": ["secrets"],
                             "verbs": ["list", "watch"]}]  # fmt: skip
    role = next(o for o in optional if o["kind"] == "Role")
    # The same rights, but for the cluster-scoped kinds: IngressClasses get a ClusterRole of
    # their own; Nodes none (--publish-address instead).
    namespaced = {
        (r["apiGroups"][0], tuple(x for x in r["resources"] if x != "ingressclasses"))
        for r in one("ClusterRole")["rules"]
    } - {("", ("nodes",))}
    assert {(r["apiGroups"][0], tuple(r["resources"])) for r in role["rules"]} == namespaced
    classes = next(
        o
        for o in optional
        if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-ingressclasses")
    )
    assert classes["rules"] == [
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingressclasses"],
         "verbs": ["list", "watch"]}
    ]  # fmt: skip


def test_our_ingress_class_is_shipped() -> None:
    ingress_class = one("IngressClass")
    assert ingress_class["spec"]["controller"] == CONTROLLER
    parsed = build_parser().parse_args([])
    assert ingress_class["metadata"]["name"] == parsed.ingress_class


def test_the_election_role_and_the_downward_api() -> None:
    """The Lease (get, create, update) and our pods (list, watch) in our own namespace;
    POD_NAME and POD_NAMESPACE from the downward API."""
    assert rules("Role") == {
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
        ("", RESOURCES["Pod"].plural, "list"),
        ("", RESOURCES["Pod"].plural, "watch"),
    }
    assert one("Role")["metadata"]["namespace"] == one("Namespace")["metadata"]["name"]
    assert one("RoleBinding")["roleRef"]["name"] == one("Role")["metadata"]["name"]
    pod = one("DaemonSet")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for e in pod["containers"][0]["env"]}  # fmt: skip
    assert env["POD_NAME"] == "metadata.name"
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    # Service ports of type=LoadBalancer are any port: the node's network, not hostPorts.
    assert pod["hostNetwork"] is True


def test_daemonset_runs_on_load_balancer_nodes_as_the_service_account() -> None:
    daemonset = one("DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"role": "loadbalancer"}
    assert pod["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]
    binding = one("ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    assert binding["subjects"][0]["namespace"] == one("Namespace")["metadata"]["name"]
    (container,) = pod["containers"]
    ports = {p["name"]: p for p in container["ports"]}
    assert ports["http"]["hostPort"] == ports["http"]["containerPort"] == 80
    assert ports["stats"]["hostPort"] == 1936
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_daemonset_args_are_valid_flags_and_the_config_map_is_a_valid_cfg(
    tmp_path: Path,
) -> None:
    pod = one("DaemonSet")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[0] == "run"
    parsed = build_parser().parse_args(args[1:])
    assert parsed.manifests is None  # the Kubernetes source
    assert parsed.use_kubernetes_cluster_service is True
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "config")[
        "mountPath"
    ]
    config_map = one("ConfigMap")
    (name,) = config_map["data"]
    assert str(parsed.cfg) == f"{mount}/{name}"
    cfg = tmp_path / name
    cfg.write_text(config_map["data"][name], encoding="utf-8")
    config = load_config_file(cfg)
    run_mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "run")[
        "mountPath"
    ]
    assert str(config.runDir) == run_mount


def test_dockerfile_essentials() -> None:
    """What the smoke test (tests/integration/test_image.py) cannot tell apart: that real
    users get the official slim base by default, and that the Python side comes from the
    build context's wheels (no index, no network)."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert "ARG BASE=python:3.11-slim-bookworm" in lines
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "${BASE}" for line in froms)
    body = "\n".join(lines)
    assert "apt-get install" in body and " haproxy " in body and " tini " in body
    assert "setcap cap_net_bind_service=+ep" in body
    assert "pip install --no-index" in body and "pip uninstall" in body
    (user,) = [line for line in lines if line.startswith("USER ")]
    assert not user.split()[1].startswith(("0", "root"))
    assert user.split()[1] == "10001:10001"
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "service-loadbalancer"]' in lines


def test_termination_grace_covers_the_graceful_stop() -> None:
    """SIGTERM: --shutdown-grace of /healthz 503, then up to --drain-timeout of soft stop,
    then up to 10 s of hard stop; the kubelet must not SIGKILL the pod before that, and
    the readiness probe must fail within the grace."""
    pod = one("DaemonSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    parsed = build_parser().parse_args(container["args"][1:])
    stop = parsed.shutdown_grace + parsed.drain_timeout + 10
    assert pod["terminationGracePeriodSeconds"] >= stop
    probe = container["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] <= parsed.shutdown_grace


REMOTE = DEPLOY / "remote-cluster" / "rbac.yaml"


def test_remote_cluster_rbac_validates_and_grants_exactly_what_is_read_there() -> None:
    """A remote cluster is read for Services, their endpoints and ServiceExports: list
    and watch, nothing else (remote_clusters.py)."""
    objects = documents(REMOTE)
    for doc in objects:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    granted = {
        (group, resource, verb)
        for obj in objects
        if obj["kind"] == "ClusterRole"
        for rule in obj["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    read = {*REMOTE_KINDS, "Endpoints", "ServiceExport"}
    assert granted == {
        (RESOURCES[kind].group_version.rpartition("/")[0], RESOURCES[kind].plural, verb)
        for kind in read
        for verb in ("list", "watch")
    }
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    assert binding["subjects"][0]["name"] == account["metadata"]["name"]
