"""Manifest parsing and validation as tables: text in, objects and problems out (no files)."""

from __future__ import annotations

import json

import pytest

from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.sources.manifests import parse_manifests

ORIGIN = "dir/web.yaml"
FILE = ObjectKey("File", "", ORIGIN)


def service(name: str, namespace: str | None = None, port: int = 80) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}{ns}\n"
        f"spec:\n  ports:\n  - port: {port}\n"
    )


def names(objects: list[RawObject]) -> list[tuple[str, str, str]]:
    return [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects]


# --------------------------------------------------------------------------- parse_manifests

SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: [127.0.1.1]}]
"""
ENDPOINTS = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: web.v2}\nsubsets: []\n"

#: (id, text, the objects as (kind, namespace, name) in order, one entry per problem in order:
#: a substring of its reason, or a tuple of substrings)
PARSE_CASES: list[tuple[str, str, list[tuple[str, str, str]], list[str | tuple[str, ...]]]] = [
    ("one service", service("web"), [("Service", "default", "web")], []),
    (
        "multi-document",
        service("a") + "---\n" + SLICE + "---\n" + ENDPOINTS,
        [
            ("Service", "default", "a"),
            ("EndpointSlice", "shop", "web-abc12"),
            ("Endpoints", "default", "web.v2"),
        ],
        [],
    ),
    (
        "empty documents are ignored",
        "---\n---\n# only a comment\n---\n" + service("a") + "---\n...\n",
        [("Service", "default", "a")],
        [],
    ),
    ("empty file", "", [], []),
    ("comments only", "# nothing here\n", [], []),
    (
        "List is flattened",
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Service, metadata: {name: a}}\n"
        "- apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n"
        "  metadata: {name: a-1, namespace: x}\n",
        [("Service", "default", "a"), ("EndpointSlice", "x", "a-1")],
        [],
    ),
    ("empty List", "apiVersion: v1\nkind: List\nitems: []\n", [], []),
    (
        "typed list as the API returns it (items without kind)",
        "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n",
        [("Service", "default", "a"), ("Service", "default", "b")],
        [],
    ),
    (
        "List item errors name the item",
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Service, metadata: {name: a}}\n"
        "- {apiVersion: v1, kind: Servise, metadata: {name: b}}\n",
        [("Service", "default", "a")],
        ['document 1, item 2 (Servise "b"): unknown kind "Servise"'],
    ),
    (
        "List with the wrong apiVersion",
        "apiVersion: v2\nkind: List\nitems: []\n",
        [],
        ['document 1 (List): List needs apiVersion "v1", not "v2"'],
    ),
    (
        "List whose items is not a list",
        "apiVersion: v1\nkind: List\nitems: {a: 1}\n",
        [],
        ["document 1 (List): items is a mapping, not a list"],
    ),
    (
        "JSON",
        json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"}}, indent=2),
        [("Service", "default", "j")],
        [],
    ),
    (
        "JSON indented with tabs",
        json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "t"}}, indent="\t"),
        [("Service", "default", "t")],
        [],
    ),
    (
        "bad YAML: problem with line and column, earlier documents kept",
        service("a") + "---\nkind: [Service\nmetadata: {name: b}\n",
        [("Service", "default", "a")],
        [
            (
                "invalid YAML: line 10, column 9: ",
                "(while parsing a flow sequence at line 9, column 7)",
                "documents after document 1 were not read",
            )
        ],
    ),
    (
        "bad YAML in the first document",
        "kind: Service\n  metadata: x\n",
        [],
        ["invalid YAML: line 2, column 11: mapping values are not allowed"],
    ),
    (
        "unknown kind",
        "apiVersion: v1\nkind: Servise\nmetadata: {name: web}\n",
        [],
        ['document 1 (Servise "web"): unknown kind "Servise" (did you mean "Service"?)'],
    ),
    (
        "kind we do not read",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
        [],
        ['unknown kind "Deployment" (service-loadbalancer reads Service, Endpoints'],
    ),
    (
        "no kind",
        "apiVersion: v1\nmetadata: {name: web}\n",
        [],
        ['document 1 ("web"): no kind'],
    ),
    (
        "wrong apiVersion",
        "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: a}\n",
        [],
        ['EndpointSlice needs apiVersion "discovery.k8s.io/v1", not "discovery.k8s.io/v1beta1"'],
    ),
    (
        "no apiVersion",
        "kind: Service\nmetadata: {name: a}\n",
        [],
        ['document 1 (Service "a"): no apiVersion (Service is "v1")'],
    ),
    (
        "missing name",
        "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n",
        [],
        ["document 1 (Service): no metadata.name"],
    ),
    (
        "no metadata at all",
        "apiVersion: v1\nkind: Service\n",
        [],
        ["document 1 (Service): no metadata.name"],
    ),
    (
        "name that is not a string",
        "apiVersion: v1\nkind: Service\nmetadata: {name: 42}\n",
        [],
        ["document 1 (Service): metadata.name is a number, not a string"],
    ),
    (
        "Service name must be a DNS-1035 label",
        service("9lives"),
        [],
        ['metadata.name "9lives" is invalid: a DNS-1035 label must consist of'],
    ),
    (
        "Service name with a dot",
        service("web.v2"),
        [],
        ['metadata.name "web.v2" is invalid: a DNS-1035 label'],
    ),
    ("Service name of 63 characters", service("a" * 63), [("Service", "default", "a" * 63)], []),
    (
        "Service name of 64 characters",
        service("a" * 64),
        [],
        ["is invalid: must be no more than 63 characters"],
    ),
    (
        "upper case name",
        "apiVersion: v1\nkind: Endpoints\nmetadata: {name: Web}\n",
        [],
        ['document 1 (Endpoints "Web"): metadata.name "Web" is invalid: a lowercase RFC 1123'],
    ),
    (
        "bad namespace",
        service("web", namespace="Shop_1"),
        [],
        ['metadata.namespace "Shop_1" is invalid: a lowercase RFC 1123 label'],
    ),
    (
        "namespace given is kept",
        service("web", namespace="shop"),
        [("Service", "shop", "web")],
        [],
    ),
    (
        "empty namespace is the default one",
        'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ""}\n',
        [("Service", "default", "web")],
        [],
    ),
    (
        "non-mapping documents",
        "- a\n- b\n---\njust a string\n---\n" + service("ok"),
        [("Service", "default", "ok")],
        ["document 1: not a mapping but a list", "document 2: not a mapping but a string"],
    ),
    (
        "bad document beside good ones",
        service("a")
        + "---\napiVersion: v1\nkind: Servise\nmetadata: {name: b}\n---\n"
        + service("c"),
        [("Service", "default", "a"), ("Service", "default", "c")],
        ['document 2 (Servise "b"): unknown kind "Servise"'],
    ),
    (
        "duplicate key: the API's strict decoding refuses it",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nmetadata: {name: b}\n---\n"
        + service("c"),
        [("Service", "default", "c")],
        ['document 1: line 4: key "metadata" is given twice (first at line 3)'],
    ),
    (
        "unquoted boolean annotation",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations:\n"
        "    serviceloadbalancer/lb.sslTerm: true\n",
        [],
        [
            'metadata.annotations["serviceloadbalancer/lb.sslTerm"] must be a string, '
            "not a boolean true (quote it)"
        ],
    ),
    (
        "unknown YAML tag",
        "apiVersion: v1\nkind: Service\nmetadata: {name: !secret web}\n---\n" + service("b"),
        [("Service", "default", "b")],
        ["document 1: line 3, column 18: could not determine a constructor for the tag"],
    ),
    (
        "self-referencing alias",
        "&a [*a]\n---\n" + service("b"),
        [("Service", "default", "b")],
        ["document 1: a YAML alias refers to its own parent"],
    ),
]

PARSE_CASES += [
    (
        f"malformed {kind}: {reason}",
        f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: bad}}\n{body}\n---\n" + service("b"),
        [("Service", "default", "b")],
        [f'document 1 ({kind} "bad"): {reason}'],
    )
    for api, kind, body, reason in [
        ("discovery.k8s.io/v1", "EndpointSlice", "ports: 5", "ports is a number, not a list"),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "ports: [8080]",
            "ports[0] is a number, not a mapping",
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "endpoints: {a: 1}",
            "endpoints is a mapping, not a list",
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "endpoints: [{addresses: 10.0.0.1}]",
            "endpoints[0].addresses must be a list of strings",
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "endpoints: [{addresses: [1]}]",
            "endpoints[0].addresses must be a list of strings",
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "endpoints: [{conditions: []}]",
            "endpoints[0].conditions is a list, not a mapping",
        ),
        ("v1", "Endpoints", "subsets: 7", "subsets is a number, not a list"),
        ("v1", "Endpoints", "subsets: [[]]", "subsets[0] is a list, not a mapping"),
        (
            "v1",
            "Endpoints",
            "subsets: [{addresses: x}]",
            "subsets[0].addresses is a string, not a list",
        ),
        (
            "v1",
            "Endpoints",
            "subsets: [{ports: [80]}]",
            "subsets[0].ports[0] is a number, not a mapping",
        ),
    ]
]


@pytest.mark.parametrize(
    ("text", "expected", "reasons"),
    [
        pytest.param(text, expected, reasons, id=case)
        for case, text, expected, reasons in PARSE_CASES
    ],
)
def test_parse_manifests(
    text: str, expected: list[tuple[str, str, str]], reasons: list[str | tuple[str, ...]]
) -> None:
    objects, problems = parse_manifests(text, origin=ORIGIN)
    assert names(objects) == expected
    assert all(p.subject == FILE for p in problems)
    assert len(problems) == len(reasons), problems
    for problem, reason in zip(problems, reasons, strict=True):
        fragments = (reason,) if isinstance(reason, str) else reason
        assert all(f in problem.reason for f in fragments), problem.reason


def test_namespace_default_is_written_into_metadata() -> None:
    (obj,), _ = parse_manifests(service("web"), origin=ORIGIN)
    assert obj["metadata"] == {"name": "web", "namespace": "default"}
    assert obj["spec"] == {"ports": [{"port": 80}]}


def test_scalars_keep_their_kubernetes_meaning() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations:\n"
        "    since: 2024-01-01\n    empty:\n  labels: {80: http}\n"
    )
    (obj,), problems = parse_manifests(text, origin=ORIGIN)
    assert problems == []
    # A date stays a string, a null annotation is "", and map keys are strings (as in JSON).
    assert obj["metadata"]["annotations"] == {"since": "2024-01-01", "empty": ""}
    assert obj["metadata"]["labels"] == {"80": "http"}


def test_aliases_are_not_shared_between_objects() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: &s {ports: [{port: 80}]}}\n"
        "- {apiVersion: v1, kind: Service, metadata: {name: b}, spec: *s}\n"
    )
    (a, b), problems = parse_manifests(text, origin=ORIGIN)
    assert problems == []
    assert a["spec"] == b["spec"]
    assert a["spec"] is not b["spec"]


def test_json_is_read_by_the_json_parser_with_the_same_result_as_yaml() -> None:
    """A JSON file (kubectl get -o json) takes the fast JSON parser; the objects equal what
    the YAML parser makes of the same text (a leading comment forces the YAML path)."""
    items = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"s{i}", "annotations": {"x": "1"}},
            "spec": {"ports": [{"port": 80 + i, "targetPort": "http"}]},
        }
        for i in range(3)
    ]
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1)
    fast, fast_problems = parse_manifests(text, origin=ORIGIN)
    slow, slow_problems = parse_manifests("# yaml\n" + text, origin=ORIGIN)
    assert fast_problems == slow_problems == []
    assert fast == slow and len(fast) == 3


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(
            '{"apiVersion": "v1", "kind": "Service",\n "metadata": {"name": "a", "name": "b"}}',
            'key "name" is given twice',
            id="duplicate-key",
        ),
        pytest.param(
            '{"apiVersion": "v1", "kind": "Service", "metadata": ', "invalid YAML", id="cut"
        ),
    ],
)
def test_json_the_json_parser_refuses_is_explained_by_the_yaml_path(text: str, reason: str) -> None:
    objects, problems = parse_manifests(text, origin=ORIGIN)
    assert objects == []
    assert len(problems) == 1 and reason in problems[0].reason
    assert "line" in problems[0].reason
