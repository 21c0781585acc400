"""The API server's checks of a networking.k8s.io/v1 Ingress, written once. Pure.

Why a module of its own: a manifest must be refused for the same reasons the API server
would refuse it (sources/manifests.py), and translation reads every Ingress defensively
(ingress.py) because a hostile or hand-made object may hold anything. Both ask the same
questions of the same fields, so the answers live here, one function per field, each
returning the API server's complaint ("" when the value is fine). The rules follow
k8s.io/kubernetes pkg/apis/networking/validation (ValidateIngressSpec and the helpers
it calls).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final

from service_loadbalancer.kube.names import DNS1035_LABEL, DNS1123_SUBDOMAIN
from service_loadbalancer.kube.objects import quoted

EXACT: Final = "Exact"
PREFIX: Final = "Prefix"
IMPLEMENTATION_SPECIFIC: Final = "ImplementationSpecific"
PATH_TYPES: Final = (EXACT, PREFIX, IMPLEMENTATION_SPECIFIC)

#: Sequences an Exact or Prefix path may not contain, and endings it may not have.
_INVALID_SEQUENCES: Final = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_SUFFIXES: Final = ("/..", "/.")
#: An IANA service name: what a Service port's `name` (and so a backend's port name) is.
_PORT_NAME: Final = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
MAX_PORT_NAME: Final = 15


def host_error(host: object) -> str:
    """`spec.rules[].host` and `spec.tls[].hosts[]`: a DNS-1123 subdomain, optionally
    with a leading `*.` label, never an IP address."""
    if not isinstance(host, str):
        return "must be a string"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "must be a DNS name, not an IP address"
    name = host[2:] if host.startswith("*.") else host
    if not DNS1123_SUBDOMAIN.matches(name):
        if host.startswith("*.") or "*" not in host:
            return DNS1123_SUBDOMAIN.rule
        return "a wildcard must be the whole first label (*.example.com)"
    return ""


def path_error(path: object, path_type: object) -> str:
    """`spec.rules[].http.paths[]`: a known pathType, and for Exact and Prefix an
    absolute path without `//`, dot segments or an encoded slash."""
    if path_type is None or path_type == "":
        return "pathType: Required value"
    if path_type not in PATH_TYPES:
        return f"pathType: Unsupported value {quoted(path_type)}: supported values: " + ", ".join(
            PATH_TYPES
        )
    if path is not None and not isinstance(path, str):
        return "path must be a string"
    text = path or ""
    if path_type == IMPLEMENTATION_SPECIFIC:
        return "" if not text or text.startswith("/") else "path must be an absolute path"
    if not text.startswith("/"):
        return "path must be an absolute path"
    for sequence in _INVALID_SEQUENCES:
        if sequence in text:
            return f"path must not contain {sequence!r}"
    for suffix in _INVALID_SUFFIXES:
        if text.endswith(suffix):
            return f"path cannot end with {suffix!r}"
    return ""


def port_name_error(name: str) -> str:
    if len(name) > MAX_PORT_NAME:
        return f"port name must be no more than {MAX_PORT_NAME} characters"
    if not _PORT_NAME.match(name) or "--" in name or not any(c.isalpha() for c in name):
        return (
            "port name must contain only lower case alphanumerics and '-', at least one "
            "letter, and no '--' or '-' at either end"
        )
    return ""


def backend_error(backend: object) -> str:
    """An IngressBackend: exactly one of `service` and `resource`; a service has a
    DNS-1035 name and exactly one of port.number (1-65535) and port.name."""
    if not isinstance(backend, dict):
        return "backend must be a mapping"
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return "backend: cannot set both service and resource"
    if resource is not None:
        return "" if isinstance(resource, dict) else "backend.resource must be a mapping"
    if not isinstance(service, dict):
        return "backend: one of service or resource must be specified"
    name = service.get("name")
    if not isinstance(name, str) or not name:
        return "backend.service.name: Required value"
    if not DNS1035_LABEL.matches(name):
        return f"backend.service.name {quoted(name)}: {DNS1035_LABEL.rule}"
    port = service.get("port")
    if not isinstance(port, dict):
        return "backend.service.port: Required value"
    number, port_name = port.get("number"), port.get("name")
    if number is not None and port_name is not None:
        return "backend.service.port: cannot set both port name and port number"
    if port_name is not None:
        if not isinstance(port_name, str):
            return "backend.service.port.name must be a string"
        error = port_name_error(port_name)
        return f"backend.service.port.name: {error}" if error else ""
    if number is None:
        return "backend.service.port: port name or number is required"
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
        return "backend.service.port.number must be between 1 and 65535"
    return ""


def spec_errors(spec: object) -> list[str]:
    """Everything the API server would refuse in an Ingress spec (field paths included),
    in field order; empty when it would store the object."""
    if not isinstance(spec, dict):
        return ["spec: Required value"]
    errors: list[str] = []
    default, rules, tls = spec.get("defaultBackend"), spec.get("rules"), spec.get("tls")
    if default is None and not rules:
        errors.append("spec: either `defaultBackend` or `rules` must be specified")
    if default is not None:
        errors.extend(_at("spec.defaultBackend", backend_error(default)))
    class_name = spec.get("ingressClassName")
    if class_name is not None and not (
        isinstance(class_name, str) and DNS1123_SUBDOMAIN.matches(class_name)
    ):
        errors.append(f"spec.ingressClassName: {DNS1123_SUBDOMAIN.rule}")
    if rules is not None and not isinstance(rules, list):
        errors.append("spec.rules must be a list")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        errors.extend(_rule_errors(f"spec.rules[{i}]", rule))
    if tls is not None and not isinstance(tls, list):
        errors.append("spec.tls must be a list")
    for i, entry in enumerate(tls if isinstance(tls, list) else []):
        errors.extend(_tls_errors(f"spec.tls[{i}]", entry))
    return errors


def _rule_errors(where: str, rule: object) -> list[str]:
    if not isinstance(rule, dict):
        return [f"{where} must be a mapping"]
    errors: list[str] = []
    if rule.get("host") not in (None, ""):
        errors.extend(_at(f"{where}.host", host_error(rule.get("host"))))
    http = rule.get("http")
    if http is None:
        return errors
    paths = http.get("paths") if isinstance(http, dict) else None
    if not isinstance(paths, list) or not paths:
        return [*errors, f"{where}.http.paths: Required value"]
    for j, entry in enumerate(paths):
        at = f"{where}.http.paths[{j}]"
        if not isinstance(entry, dict):
            errors.append(f"{at} must be a mapping")
            continue
        errors.extend(_at(at, path_error(entry.get("path"), entry.get("pathType"))))
        errors.extend(_at(at, backend_error(entry.get("backend"))))
    return errors


def _tls_errors(where: str, entry: object) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{where} must be a mapping"]
    errors: list[str] = []
    hosts: Any = entry.get("hosts")
    if hosts is not None and not isinstance(hosts, list):
        errors.append(f"{where}.hosts must be a list")
    for k, host in enumerate(hosts if isinstance(hosts, list) else []):
        errors.extend(_at(f"{where}.hosts[{k}]", host_error(host)))
    errors.extend(_at(f"{where}.secretName", secret_name_error(entry.get("secretName"))))
    return errors


def secret_name_error(secret: object) -> str:
    """Why a TLS entry's secretName is not a Secret's name ("" when it is, or is absent:
    then the default certificate serves)."""
    if secret in (None, "") or (isinstance(secret, str) and DNS1123_SUBDOMAIN.matches(secret)):
        return ""
    return DNS1123_SUBDOMAIN.rule


def _at(where: str, error: str) -> list[str]:
    return [f"{where}: {error}"] if error else []
