"""Ingress and IngressClass in --manifests: refused for the reasons the API server would
refuse them (kube/ingress_spec.py), with a problem naming the object; the rest of the
file is still served."""

from __future__ import annotations

import pytest
import yaml

from service_loadbalancer.kube.objects import key_of
from service_loadbalancer.sources.manifests import parse_manifests

GOOD = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: good}
spec:
  ingressClassName: service-loadbalancer
  rules:
    - host: foo.bar.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def with_spec(spec: str) -> str:
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: bad}}
spec: {spec}
"""


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("{}", "either `defaultBackend` or `rules` must be specified"),
        ("{defaultBackend: {service: {name: web}}}", "backend.service.port: Required value"),
        ("{defaultBackend: {service: {name: web, port: {number: 80, name: http}}}}",
         "cannot set both port name and port number"),
        ("{defaultBackend: {service: {name: Web, port: {number: 80}}}}", "DNS-1035"),
        ("{defaultBackend: {service: {name: web, port: {name: HTTP}}}}", "port name"),
        ("{defaultBackend: {service: {name: web, port: {number: 0}}}}", "between 1 and 65535"),
        ("{rules: [{host: '*.*.com'}]}", "spec.rules[0].host"),
        ("{rules: [{host: 1.2.3.4}]}", "not an IP address"),
        ("{rules: [{http: {paths: []}}]}", "http.paths: Required value"),
        ("{rules: [{http: {paths: [{path: a, pathType: Prefix, "
         "backend: {service: {name: w, port: {number: 1}}}}]}}]}", "must be an absolute path"),
        ("{rules: [{http: {paths: [{path: /a, "
         "backend: {service: {name: w, port: {number: 1}}}}]}}]}", "pathType: Required value"),
        ("{defaultBackend: {service: {name: w, port: {number: 1}}}, tls: [{hosts: [Foo]}]}",
         "spec.tls[0].hosts[0]"),
        ("{defaultBackend: {service: {name: w, port: {number: 1}}}, ingressClassName: A_B}",
         "spec.ingressClassName"),
    ],
)  # fmt: skip
def test_bad_ingress_is_a_problem_naming_it_and_the_rest_is_kept(spec: str, fragment: str) -> None:
    text = GOOD + "---\n" + with_spec(spec)
    objects, problems = parse_manifests(text, origin="ing.yaml")
    assert [key_of(o).name for o in objects] == ["good"]
    (problem,) = problems
    assert problem.reason.startswith('document 2 (Ingress "bad"): ')
    assert fragment in problem.reason


def test_resource_backends_are_valid_api_objects() -> None:
    spec = "{defaultBackend: {resource: {apiGroup: x.io, kind: Bucket, name: b}}}"
    objects, problems = parse_manifests(with_spec(spec), origin="ing.yaml")
    assert len(objects) == 1 and not problems


def test_ingress_class_is_cluster_scoped() -> None:
    text = yaml.safe_dump(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "service-loadbalancer", "namespace": "ignored"},
            "spec": {"controller": "k8s.io/service-loadbalancer"},
        }
    )
    (obj,), problems = parse_manifests(text, origin="class.yaml")
    assert not problems
    assert key_of(obj) == ("IngressClass", "", "service-loadbalancer")
