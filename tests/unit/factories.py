"""Builders for the raw Kubernetes objects the unit tests feed to the controller, and
the `haproxy -c` check every rendered config goes through.

Imported as `from factories import ...`: pytest (prepend import mode) puts this
directory on sys.path for the test modules next to it, and mypy does the same for
files outside a package. Keep it free of pytest fixtures so it stays a plain module.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from service_loadbalancer.haproxy.render import CONFIG_FILE, Rendered, render
from service_loadbalancer.kube.objects import KNOWN_KINDS, SERVICE_NAME_LABEL, RawObject
from service_loadbalancer.model import LoadBalancer, Problem
from service_loadbalancer.settings import ENV_STATS_PASSWORD, ENV_STATS_USER, Settings
from service_loadbalancer.store import Snapshot, Store

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

#: `cluster_ip` default: a ClusterIP Service (not headless).
CLUSTER_IP = "10.96.0.10"


# --- Services ---------------------------------------------------------------------------


def port(
    number: int | object,
    *,
    name: str | None = None,
    target: int | str | None = None,
    protocol: str | None = None,
) -> RawObject:
    """One `spec.ports` entry. Omitted fields stay omitted, as the API does."""
    raw: RawObject = {"port": number}
    if name is not None:
        raw["name"] = name
    if target is not None:
        raw["targetPort"] = target
    if protocol is not None:
        raw["protocol"] = protocol
    return raw


def service(
    name: str,
    *ports: RawObject | int,
    namespace: str = "default",
    annotations: Mapping[str, str] | None = None,
    cluster_ip: str | None = CLUSTER_IP,
    session_affinity: str | None = None,
    affinity_timeout: object = None,
    type_: str | None = None,
) -> RawObject:
    """A v1 Service. Ports are `port(...)` dicts or bare numbers; none given means one
    unnamed port 80 with targetPort 8080."""
    spec_ports = [port(p, target=8080) if isinstance(p, int) else p for p in ports] or [
        port(80, target=8080)
    ]
    spec: RawObject = {"ports": spec_ports, "selector": {"app": name}}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if session_affinity is not None:
        spec["sessionAffinity"] = session_affinity
    if affinity_timeout is not None:
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity_timeout}}
    if type_ is not None:
        spec["type"] = type_
    metadata: RawObject = {"name": name, "namespace": namespace}
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


# --- EndpointSlices ---------------------------------------------------------------------


def endpoint(*addresses: str, ready: bool | None = True, conditions: bool = True) -> RawObject:
    """One EndpointSlice endpoint. `ready=None` is a nil condition (to be taken as
    ready); `conditions=False` leaves the conditions out altogether."""
    raw: RawObject = {"addresses": list(addresses)}
    if conditions:
        raw["conditions"] = {"ready": ready}
    return raw


def ep_port(number: object, *, name: str | None = None, protocol: str = "TCP") -> RawObject:
    """A port of an EndpointSlice or an Endpoints subset."""
    raw: RawObject = {"port": number, "protocol": protocol}
    if name is not None:
        raw["name"] = name
    return raw


def endpoint_slice(
    service_name: str,
    *endpoints: RawObject | str,
    namespace: str = "default",
    ports: Sequence[RawObject] = (),
    address_type: str = "IPv4",
    name: str | None = None,
) -> RawObject:
    """A discovery.k8s.io/v1 EndpointSlice of `service_name`. Endpoints are
    `endpoint(...)` dicts or bare addresses (ready); ports default to one unnamed 8080."""
    eps = [endpoint(e) if isinstance(e, str) else e for e in endpoints]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-abcde",
            "namespace": namespace,
            "labels": {SERVICE_NAME_LABEL: service_name},
        },
        "addressType": address_type,
        "endpoints": eps,
        "ports": list(ports) if ports else [ep_port(8080)],
    }


# --- core/v1 Endpoints ------------------------------------------------------------------


def subset(
    *ready: str, not_ready: Iterable[str] = (), ports: Sequence[RawObject] = ()
) -> RawObject:
    raw: RawObject = {"ports": list(ports) if ports else [ep_port(8080)]}
    if ready:
        raw["addresses"] = [{"ip": ip} for ip in ready]
    not_ready = list(not_ready)
    if not_ready:
        raw["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return raw


def endpoints(name: str, *subsets: RawObject, namespace: str = "default") -> RawObject:
    """core/v1 Endpoints, named like its Service."""
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace},
        "subsets": list(subsets),
    }


# --- Snapshots --------------------------------------------------------------------------


def snapshot(
    *objects: RawObject, problems: Mapping[str, Iterable[Problem]] | None = None
) -> Snapshot:
    """A ready store holding exactly `objects` (every KNOWN_KIND listed), as a snapshot."""
    store = Store(KNOWN_KINDS)
    by_kind: dict[str, list[RawObject]] = defaultdict(list)
    for obj in objects:
        by_kind[str(obj["kind"])].append(obj)
    unknown = set(by_kind) - set(KNOWN_KINDS)
    assert not unknown, f"not a known kind: {unknown}"
    for kind in KNOWN_KINDS:
        store.replace(kind, by_kind.get(kind, []))
    for source, found in (problems or {}).items():
        store.set_problems(source, found)
    assert store.ready
    return store.snapshot()


# --- haproxy -c -------------------------------------------------------------------------


def stats_env(settings: Settings) -> dict[str, str]:
    """The variables the built-in template reads for stats authentication."""
    if settings.stats_user is None or settings.stats_password is None:
        return {}
    return {ENV_STATS_USER: settings.stats_user, ENV_STATS_PASSWORD: settings.stats_password}


def write_files(rendered: Rendered, directory: Path) -> Path:
    """Write every file of `rendered` into `directory`; the path of the config."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory / CONFIG_FILE


def haproxy_check(
    rendered: Rendered, directory: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`haproxy -c` on the files of `rendered`, written into `directory`, with exactly
    `env` (plus PATH) as the environment."""
    config = write_files(rendered, directory)
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(config)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_haproxy_accepts(rendered: Rendered, settings: Settings) -> None:
    """Every rendered config must pass the real `haproxy -c`. The files go to
    `settings.run_dir`; the environment is `settings.haproxy_env()` plus the stats
    variables the template references."""
    env = {**settings.haproxy_env(), **stats_env(settings)}
    result = haproxy_check(rendered, settings.run_dir, env)
    assert result.returncode == 0, (
        f"haproxy -c failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
        f"--- config ---\n{rendered.config}"
    )


def render_checked(model: LoadBalancer, settings: Settings, run_dir: Path) -> Rendered:
    """Render `model` with `settings` (run_dir replaced), and check it with haproxy -c."""
    settings = dataclasses.replace(settings, run_dir=run_dir)
    rendered = render(model, settings)
    assert_haproxy_accepts(rendered, settings)
    return rendered


def block(config: str, header: str) -> str:
    """The section of `config` that starts with the line `header` (e.g. "backend x"),
    up to the next blank-line-separated top-level section."""
    lines = config.splitlines()
    start = lines.index(header)
    out = [lines[start]]
    for line in lines[start + 1 :]:
        if line and not line.startswith((" ", "\t")):
            break
        out.append(line)
    return "\n".join(out).rstrip() + "\n"


# --- TLS Secrets ------------------------------------------------------------------------


def tls_secret(
    name: str,
    chain_pem: bytes,
    key_pem: bytes,
    *,
    namespace: str = "default",
    type_: str = "kubernetes.io/tls",
) -> RawObject:
    """A v1 Secret of type kubernetes.io/tls: `data` holds base64, as the API returns it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": type_,
        "data": {
            "tls.crt": base64.b64encode(chain_pem).decode(),
            "tls.key": base64.b64encode(key_pem).decode(),
        },
    }
