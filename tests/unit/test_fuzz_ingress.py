"""Property-based fuzzing of Ingresses: hostile hosts, paths and the rest of an Ingress
never reach the config unescaped, and never take a route from a well-behaved one.

The same hostile values as test_fuzz.py (newlines, quotes, `#`, braces, Jinja
delimiters, blanks, `%[`, NUL, look-alikes, bidi controls, long repetitions, valid
values with such a prefix or suffix), put into one or two fields of otherwise valid
Ingresses: a rule's host, path and pathType, the backend's Service name, port name and
number, a TLS host and secretName, the class, the legacy class annotation, the name,
namespace and creationTimestamp, or a whole rule. Per example:

- translate and render never raise, and the real `haproxy -c` accepts the config;
- every config line is one of the controls' own (which use every kind of look-up) or a
  Service line of test_fuzz.py's grammar, and every Ingress map line is a DNS host (or
  `*.` and one, or nothing), a path of RFC 3986 path characters, and a backend: nothing
  hostile has reached a file;
- the control Ingress keeps every route, its default backend and its certificate;
- no problem message holds a line break.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trustme
from factories import haproxy_check, snapshot
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from objects import (
    endpoint_slice,
    ingress,
    ingress_backend,
    ingress_class,
    ingress_path,
    ingress_rule,
    ingress_tls,
    port,
    service,
    tls_secret,
)
from test_fuzz import IDENT, LINE_RE, around, hostile_text

from service_loadbalancer.haproxy.certs import write_certificates
from service_loadbalancer.haproxy.ingress_maps import (
    EXACT_MAP,
    HTTPS_EXACT_MAP,
    HTTPS_PREFIX_MAP,
    PREFIX_MAP,
)
from service_loadbalancer.haproxy.render import CERTS_DIR, CONFIG_FILE, Rendered, render
from service_loadbalancer.kube.objects import RawObject
from service_loadbalancer.settings import Settings
from service_loadbalancer.translate import translate

INGRESSES_PER_EXAMPLE = 50
EXAMPLES = 100  # 5,000 hostile Ingresses per run
INGRESS_MAPS = (EXACT_MAP, PREFIX_MAP, HTTPS_EXACT_MAP, HTTPS_PREFIX_MAP)
MAP_LINE_RE = re.compile(
    r"(?:(?:\*\.)?[a-z0-9][a-z0-9.-]*)?/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]* "
    rf"{IDENT}\|0\|[01]"
)

VALID = {
    "host": "h{i}.fz.example",
    "path": "/p{i}",
    "pathType": "Prefix",
    "service.name": "fzsvc",
    "port.name": "http",
    "port.number": 80,
    "tls.host": "h{i}.fz.example",
    "tls.secret": "fz-tls",
    "class": "service-loadbalancer",
    "legacy": "service-loadbalancer",
    "name": "fz{i}",
    "namespace": "fuzz",
    "created": "2026-01-01T00:00:00Z",
}


def hostile_for(field: str) -> st.SearchStrategy[Any]:
    if field == "rule":
        return st.one_of(hostile_text, st.integers(), st.lists(hostile_text, max_size=2))
    valid = str(VALID[field])
    return st.one_of(hostile_text, around(valid), st.integers(), st.none(), st.booleans())


FIELDS = [*VALID, "rule"]
case = st.lists(
    st.one_of([st.tuples(st.just(f), hostile_for(f)) for f in FIELDS]), min_size=1, max_size=2
)


def build(i: int, overrides: list[tuple[str, Any]]) -> RawObject:
    """Ingress number `i`: one host rule (Exact and Prefix paths, by port name and number)
    and its TLS, with the hostile `overrides`."""
    f: dict[str, Any] = {k: (v.format(i=i) if isinstance(v, str) else v) for k, v in VALID.items()}
    f.update(overrides)
    by_name = ingress_backend(str(f["service.name"]), "http")
    by_name["service"] = {"name": f["service.name"], "port": {"name": f["port.name"]}}
    paths = [
        {"path": f["path"], "pathType": f["pathType"], "backend": by_name},
        {
            "path": f["path"],
            "pathType": "Exact",
            "backend": {"service": {"name": "fzsvc", "port": {"number": f["port.number"]}}},
        },
    ]
    rule: Any = {"host": f["host"], "http": {"paths": paths}}
    if "rule" in dict(overrides):
        rule = f["rule"]
    obj = ingress(
        "x",
        rule,
        tls=[{"hosts": [f["tls.host"]], "secretName": f["tls.secret"]}],
        class_name=None if i % 7 == 0 else f["class"],
        annotations={"kubernetes.io/ingress.class": f["legacy"]} if i % 7 == 0 else None,
    )
    meta = obj["metadata"]
    meta.update(name=f["name"], namespace=f["namespace"], creationTimestamp=f["created"])
    return obj


def controls(chain: bytes, key: bytes) -> list[RawObject]:
    """A well-behaved Ingress using every kind of look-up, HTTPS and the default backend."""
    both = ("ctl.example.org", "*.w.ctl.example.org")
    return [
        ingress_class(),
        service("ctl", port(80, name="http"), namespace="ctl"),
        endpoint_slice("ctl", "10.8.0.1", namespace="ctl"),
        service("fzsvc", port(80, name="http"), namespace="fuzz"),
        endpoint_slice("fzsvc", "10.8.0.2", namespace="fuzz"),
        tls_secret("ctl-tls", chain, key, namespace="ctl"),
        tls_secret("fz-tls", chain, key, namespace="fuzz"),
        ingress(
            "ctl",
            *(
                ingress_rule(
                    host,
                    ingress_path("/ctl", "ctl", "http"),
                    ingress_path("/ctl-exact", "ctl", 80, path_type="Exact"),
                )
                for host in (*both, None)
            ),
            namespace="ctl",
            default_backend=ingress_backend("ctl", 80),
            tls=[ingress_tls(*both, secret="ctl-tls")],
            created="2000-01-01T00:00:00Z",
        ),
    ]


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    cert = trustme.CA().issue_cert("ctl.example.org", "*.w.ctl.example.org", "*.fz.example")
    return b"".join(b.bytes() for b in cert.cert_chain_pems), cert.private_key_pem.bytes()


@pytest.fixture(scope="module")
def lb_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        tls_secrets=True,
        https_port=8443,
        http_port=8080,
        bind_address="127.0.0.1",
        run_dir=tmp_path_factory.mktemp("fuzz-ingress") / "run",
    )


@pytest.fixture(scope="module")
def alone(lb_settings: Settings, keys: tuple[bytes, bytes]) -> Rendered:
    translation = translate(snapshot(*controls(*keys)), lb_settings)
    assert translation.problems == ()
    return render(translation.model, lb_settings)


def check(rendered: Rendered, alone: Rendered) -> None:
    skeleton = set(alone.config.splitlines())
    for name, text in rendered.files.items():
        assert text.isascii() and "\r" not in text and "\x00" not in text, name
        for line in text.splitlines():
            if name == CONFIG_FILE:
                assert line in skeleton or LINE_RE.fullmatch(line), f"config: {line!r}"
            elif name in INGRESS_MAPS:
                assert MAP_LINE_RE.fullmatch(line), f"{name}: {line!r}"
    for name in INGRESS_MAPS:
        missing = set(alone.files[name].splitlines()) - set(rendered.files[name].splitlines())
        assert not missing, f"{name} lost control entries: {missing}"
    assert set(alone.certificates.items()) <= set(rendered.certificates.items())


def test_fuzz_hostile_ingresses(
    lb_settings: Settings,
    keys: tuple[bytes, bytes],
    alone: Rendered,
    fuzz_counts: Counter[str],
) -> None:
    certs: Path = lb_settings.run_dir / CERTS_DIR

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(case, min_size=INGRESSES_PER_EXAMPLE, max_size=INGRESSES_PER_EXAMPLE))
    def example(cases: list[list[tuple[str, Any]]]) -> None:
        objects = controls(*keys) + [build(i, o) for i, o in enumerate(cases)]
        translation = translate(snapshot(*objects), lb_settings)
        for problem in translation.problems:
            assert str(problem).isprintable(), repr(str(problem))
        assert translation.model.ingress_default == "http_ctl_ctl_80"
        rendered = render(translation.model, lb_settings)
        check(rendered, alone)
        write_certificates(certs, rendered.certificates)
        result = haproxy_check(rendered, lb_settings.run_dir, {})
        assert result.returncode == 0, result.stdout + result.stderr
        fuzz_counts["fuzz: hostile Ingresses (cases)"] += len(cases)
        fuzz_counts["fuzz: Ingress routes of generated Ingresses served"] += sum(
            1 for r in translation.model.ingress_routes if r.backend != "http_ctl_ctl_80"
        )

    example()
    assert fuzz_counts["fuzz: hostile Ingresses (cases)"] >= 5000
