"""Property-based fuzzing: hostile Services cannot break or hijack the load balancer.

Each hypothesis example is one snapshot: a fixed set of well-behaved *control* Services
(plain HTTP, host route, lb.aclMatch, TCP, termination with a Secret, passthrough) and
`SERVICES_PER_EXAMPLE` generated Services, each valid except for one or two *hostile*
fields: an annotation value (every key of the registry), an unknown annotation key,
the name, namespace, a port, an endpoint address, a port's appProtocol, an ExternalName,
the Secret's name, type or data, any JSON value in a field of the EndpointSlice (or of
a core Endpoints in its place).
Hostile values are built from newlines, quotes, `#`, braces, Jinja delimiters, spaces,
`%[`, `${}`, backslashes, NUL, unicode look-alikes and bidi controls, very long
repetitions, and valid values with such a prefix or suffix. Each generated Service is one
case; the count is printed at the end of the run (tests/conftest.py).

Per example:
- translate and render never raise;
- the real `haproxy -c` accepts the config (every example, not a sample);
- every line of the config and of every map file matches the grammar of the built-in
  template, where every field that came from an object is a validated token (a DNS
  label, an RFC 1123 host, a strict path, a number): so no value appears anywhere but
  in the field it belongs to, and nothing can add a directive, a server or a backend;
- the control Services keep every route, backend section, SNI entry and certificate
  they have when alone;
- no problem message holds a line break (a hostile name cannot forge log lines).
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from factories import block, haproxy_check, snapshot
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from objects import endpoint_slice, endpoints, service, subset, tls_secret

from service_loadbalancer import annotations as ann
from service_loadbalancer.haproxy.certs import write_certificates
from service_loadbalancer.haproxy.render import (
    CERTS_DIR,
    CONFIG_FILE,
    CRT_LIST,
    SERVER_OPTIONS,
    SNI_MAP,
    Rendered,
    render,
    resolve_options,
)
from service_loadbalancer.kube.objects import RawObject
from service_loadbalancer.settings import ServiceRef, Settings, TcpService
from service_loadbalancer.translate import translate

P = ann.PREFIX
SERVICES_PER_EXAMPLE = 100
EXAMPLES = 110  # 100 x 110 = 11,000 hostile Services per run
NO_ROUTES_EXAMPLES = 20  # and 2,000 with --service-routes=false

# --- hostile values -----------------------------------------------------------------------

FRAGMENTS = [
    "\n", "\r", "\r\n", "\x00", "\t", " ", "\v", "\x85", "\u2028",
    '"', "'", "`", "#", "{", "}", "{{", "}}", "{%", "%}", "{#",
    "%[", "%[src]", "]", "${HOME}", "$", "\\", "\\n", "|", ";", ",", "&",
    "/", "//", ".", "..", ":", "*", "*.", "@", "?", "=", "<", ">", "!",
    "\u00e9", "\u212a", "\u202e", "\u200b", "\uff57\uff45\uff42", "\U0001f600", "\u0661",
    "server evil 10.9.9.9:80", "use_backend x", "bind :1", "\n    acl x src 0.0.0.0/0\n",
    "a", "web", "example.com", "/api", "true", "600", "-", "_", "443", "0",
]  # fmt: skip

#: A valid value of each annotation, to make hostile variants of (prefix, suffix, wrap).
VALID = {
    ann.ALGORITHM.key: "leastconn",
    ann.HOST.key: "fz.example.com",
    ann.ACL_MATCH.key: "/fz",
    ann.COOKIE_STICKY.key: "true",
    ann.SSL_TERM.key: "true",
    ann.SSL_SECRET.key: "fz-tls",
    ann.SSL_PASSTHROUGH.key: "true",
    ann.SSL_REDIRECT.key: "true",
    ann.HSTS.key: "600",
    ann.TIMEOUT_SERVER.key: "30s",
    ann.TIMEOUT_CONNECT.key: "500ms",
    ann.BACKEND_PROTOCOL.key: "h2c",
    ann.AUTOSCALE_TARGET_RPS.key: "50",
    ann.AUTOSCALE_TARGET_CONCURRENCY.key: "2.5",
    ann.AUTOSCALE_MIN.key: "2",
    ann.AUTOSCALE_MAX.key: "20",
    ann.GLOBAL.key: "true",
    ann.AFFINITY.key: "none",
    ann.MIN_LOCAL.key: "2",
}
assert set(VALID) == {a.key for a in ann.REGISTRY}, "every annotation is fuzzed"

fragments = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("".join)
very_long = st.builds(lambda f, n: f * n, st.sampled_from(FRAGMENTS), st.integers(100, 5000))


def around(valid: str) -> st.SearchStrategy[str]:
    """A valid value with something hostile before, after or in its middle."""
    middle = len(valid) // 2
    return st.one_of(
        fragments.map(lambda f: valid + f),
        fragments.map(lambda f: f + valid),
        fragments.map(lambda f: valid[:middle] + f + valid[middle:]),
        st.integers(2, 400).map(lambda n: valid * n),
    )


hostile_text = st.one_of(fragments, very_long, st.text(max_size=24))


#: Any JSON value: what a malformed EndpointSlice or Endpoints field may hold.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
#: Where in the EndpointSlice (or, for "endpoints-object", the core Endpoints that
#: replaces it) the JSON value goes.
SLICE_PLACES = ["ports", "endpoints", "addressType", "endpoint", "addresses", "conditions",
                "port", "port.port", "port.name"]  # fmt: skip
CORE_PLACES = ["subsets", "subset", "subset.addresses", "subset.ports", "address", "address.ip"]


def hostile_for(field: str) -> st.SearchStrategy[Any]:
    if field == "slice":
        return st.tuples(st.sampled_from(SLICE_PLACES), json_values)
    if field == "endpoints-object":
        return st.tuples(st.sampled_from(CORE_PLACES), json_values)
    if field in VALID:
        return st.one_of(hostile_text, around(VALID[field]))
    if field in ("name", "namespace", "secret.name"):
        return st.one_of(hostile_text, around("fz"), st.integers(), st.none())
    if field == "port":
        return st.one_of(
            st.integers(-10, 70000), hostile_text, st.booleans(), st.none(), st.just(1.5)
        )
    if field == "endpoint":
        return st.one_of(
            hostile_text, around("10.1.2.3"), st.sampled_from(["fe80::1%eth0", "::1", "1.2.3"])
        )
    if field == "annotations":
        return st.one_of(hostile_text, st.lists(hostile_text, max_size=2), st.integers())
    if field == "unknown-key":
        return st.one_of(hostile_text, around("lb.hots"))
    if field in ("secret.crt", "secret.key"):
        return st.one_of(
            hostile_text,
            hostile_text.map(lambda t: base64.b64encode(t.encode()).decode()),
            fragments.map(lambda f: "pem+" + f),  # a real PEM with text appended, see below
        )
    if field == "appProtocol":
        return st.one_of(
            hostile_text,
            around("kubernetes.io/h2c"),
            st.sampled_from(
                ["grpc", "h2c", "kubernetes.io/ws", "GRPC", "https", "kubernetes.io/wss", "h2"]
            ),
            st.integers(),
            st.none(),
        )
    if field == "secret.type":
        return st.one_of(hostile_text, around("kubernetes.io/tls"))
    if field == "externalName":
        return st.one_of(
            hostile_text,
            around("db.fz.example"),
            st.sampled_from(
                [
                    "127.0.0.1",
                    "::1",
                    "[::1]",
                    "localhost",
                    "a.localhost",
                    "x.svc",
                    "db",
                    "db.ns.svc.cluster.local",
                    "DB.Example.COM.",
                    "-db.example",
                    "db..example",
                ]
            ),
            st.integers(),
            st.none(),
        )
    raise AssertionError(field)


FIELDS = [
    *VALID,
    "name",
    "namespace",
    "port",
    "endpoint",
    "annotations",
    "unknown-key",
    "appProtocol",
    "secret.name",
    "secret.type",
    "secret.crt",
    "secret.key",
    "externalName",
    "slice",
    "endpoints-object",
]

#: Valid shapes a generated Service starts from, so hostile fields meet every code path.
MODES: dict[str, dict[str, str]] = {
    "plain": {},
    "host": {ann.HOST.key: "h{i}.fz.example"},
    "wildcard": {ann.HOST.key: "*.w{i}.fz.example"},
    "acl": {ann.ACL_MATCH.key: "/fz{i}"},
    "algorithm": {ann.ALGORITHM.key: "source"},
    "term": {ann.SSL_TERM.key: "true"},
    "term-secret": {ann.SSL_TERM.key: "true", ann.SSL_SECRET.key: "fz-tls-{i}"},
    "term-redirect-hsts": {
        ann.SSL_TERM.key: "true",
        ann.SSL_REDIRECT.key: "true",
        ann.HSTS.key: "31536000",
        ann.HOST.key: "r{i}.fz.example",
    },
    "passthrough": {ann.SSL_PASSTHROUGH.key: "true", ann.HOST.key: "t{i}.fz.example"},
    "timeouts": {ann.TIMEOUT_SERVER.key: "2s", ann.TIMEOUT_CONNECT.key: "1500ms"},
    "h2c": {ann.BACKEND_PROTOCOL.key: "h2c"},
    "https": {ann.BACKEND_PROTOCOL.key: "https"},
    "h2-tls": {ann.BACKEND_PROTOCOL.key: "h2", ann.HOST.key: "tls{i}.fz.example"},
    # type ExternalName (see build): one server named by a DNS name.
    "external": {},
    "external-tls": {ann.BACKEND_PROTOCOL.key: "https"},
}

case = st.tuples(
    st.sampled_from(sorted(MODES)),
    st.lists(
        # Built once (a flatmap would build strategies on every draw: 5x slower).
        st.one_of([st.tuples(st.just(f), hostile_for(f)) for f in FIELDS]),
        min_size=1,
        max_size=2,
    ),
)

# --- building objects ---------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """A real certificate for every Secret (the hostile part is elsewhere)."""

    chain: bytes
    key: bytes


def build(i: int, mode: str, overrides: list[tuple[str, Any]], keys: Keys) -> list[RawObject]:
    """Service number `i` in `mode`, with the hostile `overrides`, its endpoints and Secret."""
    fields = dict(overrides)
    annotations: dict[str, Any] = {k: v.format(i=i) for k, v in MODES[mode].items()}
    for key in VALID:
        if key in fields:
            annotations[key] = fields[key]
    if "unknown-key" in fields:
        annotations[P + str(fields["unknown-key"])] = "x"
    number = 443 if mode == "passthrough" else 80
    spec_port: RawObject = {"port": fields.get("port", number), "targetPort": 8080}
    if "appProtocol" in fields:
        spec_port["appProtocol"] = fields["appProtocol"]
    svc = service(
        f"fz{i}",
        spec_port,
        namespace="fuzz",
        annotations=annotations,
        session_affinity="ClientIP" if i % 5 == 0 else None,
    )
    if mode.startswith("external") or "externalName" in fields:
        svc["spec"]["type"] = "ExternalName"
        svc["spec"]["externalName"] = fields.get("externalName", f"ext{i}.fz.example")
    meta = svc["metadata"]
    if "name" in fields:
        meta["name"] = fields["name"]
    if "namespace" in fields:
        meta["namespace"] = fields["namespace"]
    if "annotations" in fields:
        meta["annotations"] = fields["annotations"]
    address = fields.get("endpoint", f"10.7.{i // 250}.{i % 250 + 1}")
    objects = [svc, endpoint_slice(f"fz{i}", str(address), namespace="fuzz", name=f"fz{i}-s")]
    if "slice" in fields:
        malformed_slice(objects[1], *fields["slice"])
    if "endpoints-object" in fields:
        objects[1] = malformed_endpoints(f"fz{i}", str(address), *fields["endpoints-object"])
    secret_name = str(annotations.get(ann.SSL_SECRET.key, f"fz-tls-{i}"))
    secret = tls_secret(secret_name, keys.chain, keys.key, namespace="fuzz")
    if "secret.name" in fields:
        secret["metadata"]["name"] = fields["secret.name"]
    if "secret.type" in fields:
        secret["type"] = fields["secret.type"]
    for field, data_key, pem in (
        ("secret.crt", "tls.crt", keys.chain),
        ("secret.key", "tls.key", keys.key),
    ):
        if field in fields:
            value = str(fields[field])
            if value.startswith("pem+"):  # a real PEM with hostile text around it
                value = base64.b64encode(pem + value[4:].encode() + pem[:40]).decode()
            secret["data"][data_key] = value
    objects.append(secret)
    return objects


def malformed_slice(sl: RawObject, place: str, value: object) -> None:
    """Put `value` at `place` in the slice: a whole field, or one of an endpoint or port."""
    endpoint, port = sl["endpoints"][0], sl["ports"][0]
    if place in ("ports", "endpoints", "addressType"):
        sl[place] = value
    elif place == "endpoint":
        sl["endpoints"].append(value)
    elif place in ("addresses", "conditions"):
        endpoint[place] = value
    elif place == "port":
        sl["ports"].insert(0, value)
    else:
        port[place.removeprefix("port.")] = value


def malformed_endpoints(name: str, address: str, place: str, value: object) -> RawObject:
    """A core Endpoints (no slice, so it is read) with `value` at `place`."""
    core = endpoints(name, subset(address), namespace="fuzz")
    first = core["subsets"][0]
    if place == "subsets":
        core["subsets"] = value
    elif place == "subset":
        core["subsets"].append(value)
    elif place in ("subset.addresses", "subset.ports"):
        first[place.removeprefix("subset.")] = value
    elif place == "address":
        first["addresses"].append(value)
    else:
        first["addresses"][0]["ip"] = value
    return core


def controls(keys: Keys) -> list[RawObject]:
    """Well-behaved Services whose routes nothing generated may take away."""
    term = {ann.SSL_TERM.key: "true", ann.SSL_SECRET.key: "ctl-tls", ann.HSTS.key: "60"}
    return [
        service("ctl-web", namespace="ctl", annotations={
            ann.TIMEOUT_SERVER.key: "90s", ann.TIMEOUT_CONNECT.key: "250ms"}),
        endpoint_slice("ctl-web", "10.8.0.1", namespace="ctl"),
        service("ctl-host", namespace="ctl", annotations={ann.HOST.key: "ctl.example.org"}),
        service("ctl-wild", namespace="ctl", annotations={ann.HOST.key: "*.ctl.example.org"}),
        service("ctl-pass-wild", 443, namespace="ctl", annotations={
            ann.SSL_PASSTHROUGH.key: "true", ann.HOST.key: "*.pass.ctl.example.org"}),
        service("ctl-acl", namespace="ctl", annotations={ann.ACL_MATCH.key: "/ctl-acl-zq"}),
        service("ctl-tcp", 3306, namespace="ctl"),
        endpoint_slice("ctl-tcp", "10.8.0.2", namespace="ctl"),
        service("ctl-term", namespace="ctl", annotations=term),
        tls_secret("ctl-tls", keys.chain, keys.key, namespace="ctl"),
        service("ctl-pass", 443, namespace="ctl", annotations={
            ann.SSL_PASSTHROUGH.key: "true", ann.HOST.key: "pass.ctl.example.org"}),
        external_service("ctl-ext", "db.ctl.example.org"),
    ]  # fmt: skip


def external_service(name: str, external: str) -> RawObject:
    svc = service(name, 5432, namespace="ctl", type_="ExternalName")
    svc["spec"]["externalName"] = external
    return svc


# --- the grammar every rendered line must follow --------------------------------------------

IDENT = r"[a-z0-9][a-z0-9_.-]*"
HOST = r"(?:\*\.)?[a-z0-9][a-z0-9.-]*"
#: A path prefix, maybe with the Service port (`/web:8080`), and the segment boundary.
PATH = r"(?:/[A-Za-z0-9._~-]+(?::\d{1,5})?)*/"
ESCAPED = r"(?:[A-Za-z0-9_/~:]|\\[.\-~])+"
IP_PORT = r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]):\d{1,5}"
#: A DNS name as translation lets it through (a DNS-1123 subdomain with a dot).
NAME = r"[a-z0-9][a-z0-9.-]*"
#: TLS to the pods: the CA file is a flag's (a path); the SNI a validated host name.
TLS = (
    r"(?: ssl verify required ca-file /\S+ sni "
    r"(?:str\([a-z0-9][a-z0-9.-]*\)|req\.hdr\(host\),field\(1,:\))(?: alpn h2)?)?"
)
RESOLVE = resolve_options(Settings(dns_servers=("127.0.0.1:5353",)))
SERVICE_LINES = [
    rf"backend {IDENT}",
    r"frontend tcp_\d{1,5}",
    r"    mode (?:http|tcp)",
    r"    balance (?:roundrobin|leastconn|first|source)",
    r"    hash-type consistent",
    r"    stick-table type (?:ip|ipv6) size 100k expire \d+s",
    r"    stick on src",
    r"    cookie SERVERID insert indirect nocache",
    r"    option allbackups",
    r"    http-request redirect location https://%\[req\.hdr\(host\),field\(1,:\),lower\]"
    r":8443%\[capture\.req\.uri\] code 308 if !\{ ssl_fc \} \{ req\.hdr\(host\) -m found \}"
    r" \{ var\(txn\.route\),field\(3,\|\) -m str s \}",
    r'    http-response set-header Strict-Transport-Security "max-age=\d+" if \{ ssl_fc \}'
    r" \{ var\(txn\.route\),field\(3,\|\) -m str s \}",
    r"    timeout (?:server|connect) \d+(?:ms|s|m|h)",
    r"    # X-Forwarded-Prefix: the prefix stripped \(unless a trusted proxy sent one\)\.",
    r"    http-request set-var\(txn\.set_prefix\) bool\(true\) if \{ var\(txn\.route\),"
    r"field\(2,\|\) -m str 1 \} !\{ req\.hdr\(X-Forwarded-Prefix\) -m found \}",
    r"    http-request set-header X-Forwarded-Prefix %\[path\] if \{ var\(txn\.set_prefix\) "
    r"-m bool \}",
    rf"    http-request replace-header X-Forwarded-Prefix \^\(/\(\?:{ESCAPED}(?:\|{ESCAPED})*\)\)"
    r"\(\?:/\|\$\)\.\* \\1 if \{ var\(txn\.set_prefix\) -m bool \}",
    rf"    http-request replace-path \^/\(\?:{ESCAPED}(?:\|{ESCAPED})*\)\(\?:/\|\$\)\(\.\*\) "
    r"/\\1 if \{ var\(txn\.route\),field\(2,\|\) -m str 1 \}",
    rf"    server {IDENT} {IP_PORT}(?: backup)?(?: cookie {IDENT})?(?: proto h2)?{TLS} "
    rf"{re.escape(SERVER_OPTIONS)}",
    # An external name: a validated DNS name, resolved at run time.
    rf"    server ext_\d{{1,5}} {NAME}:\d{{1,5}}(?: cookie ext_\d{{1,5}})?(?: proto h2)?{TLS} "
    rf"{re.escape(SERVER_OPTIONS)} {re.escape(RESOLVE)}",
    r"    default-server ca-file /\S+",
    r"    # Loaded now, so that a server added at run time can name it\.",
    r"    bind 127\.0\.0\.1:\d{1,5}",
    rf"    default_backend {IDENT}",
    r"",
]
LINE_RE = re.compile("|".join(f"(?:{p})" for p in SERVICE_LINES))
MAP_LINE_RE = re.compile(rf"(?:{HOST})?{PATH} {IDENT}\|[01]\|s")
SNI_LINE_RE = re.compile(rf"{HOST} {IDENT}")


def check_grammar(rendered: Rendered, skeleton: set[str], certs: Path, default: Path) -> None:
    for name, text in rendered.files.items():
        assert text.isascii() and "\r" not in text and "\x00" not in text, name
        for line in text.splitlines():
            if name == CONFIG_FILE:
                ok = line in skeleton or LINE_RE.fullmatch(line)
            elif name == SNI_MAP:
                ok = SNI_LINE_RE.fullmatch(line)
            elif name == CRT_LIST:
                ok = line == f"{default} !*" or re.fullmatch(
                    rf"{re.escape(str(certs))}/{IDENT}\.pem(?:(?: !?{HOST})*| !\*)", line
                )
            else:
                ok = MAP_LINE_RE.fullmatch(line)
            assert ok, f"{name}: line outside the grammar: {line!r}"


# --- the test ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> Keys:
    cert = trustme.CA().issue_cert("fz.example.com", "ctl.example.org")
    chain = b"".join(b.bytes() for b in cert.cert_chain_pems)
    return Keys(chain=chain, key=cert.private_key_pem.bytes())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def lb_settings(workdir: Path, keys: Keys) -> Settings:
    default = workdir / "default.pem"
    default.write_bytes(keys.chain + keys.key)
    return Settings(
        ssl_cert=default,
        tls_secrets=True,
        https_port=8443,
        http_port=8080,
        bind_address="127.0.0.1",
        tcp_services=(TcpService(ServiceRef("ctl-tcp", "ctl"), 3306),),
        run_dir=workdir / "run",
        trusted_proxies=("10.0.0.0/8", "2001:db8::/32"),
        backend_ca=default,
        allow_external_names=True,
        dns_servers=("127.0.0.1:5353",),
    )


@pytest.fixture(scope="module")
def alone(lb_settings: Settings, keys: Keys) -> Rendered:
    """The controls rendered on their own: what they must keep in every example."""
    translation = translate(snapshot(*controls(keys)), lb_settings)
    assert translation.problems == ()
    return render(translation.model, lb_settings)


def kept(alone: Rendered, rendered: Rendered) -> None:
    for name, text in alone.files.items():
        if name == CONFIG_FILE:
            continue
        missing = set(text.splitlines()) - set(rendered.files[name].splitlines())
        assert not missing, f"{name} lost control entries: {missing}"
    for line in alone.config.splitlines():
        if line.startswith(("backend ", "frontend ")):
            assert block(rendered.config, line) == block(alone.config, line), line
    assert set(alone.certificates.items()) <= set(rendered.certificates.items())


#: Hypothesis settings for examples of many Services each. No shrinking: 50 Services per
#: example make it slow, and the assertion messages already name the offending line.
MANY_SERVICES: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "phases": [Phase.explicit, Phase.generate],
    "report_multiple_bugs": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def test_fuzz_hostile_services(
    lb_settings: Settings, keys: Keys, alone: Rendered, fuzz_counts: Counter[str]
) -> None:
    skeleton = set(alone.config.splitlines())
    certs = lb_settings.run_dir / CERTS_DIR
    assert lb_settings.ssl_cert is not None
    default = lb_settings.ssl_cert

    @settings(max_examples=EXAMPLES, **MANY_SERVICES)
    @given(st.lists(case, min_size=SERVICES_PER_EXAMPLE, max_size=SERVICES_PER_EXAMPLE))
    def example(cases: list[tuple[str, list[tuple[str, Any]]]]) -> None:
        objects = controls(keys)
        for i, (mode, overrides) in enumerate(cases):
            objects += build(i, mode, overrides, keys)
        translation = translate(snapshot(*objects), lb_settings)
        for problem in translation.problems:
            assert str(problem).isprintable(), repr(str(problem))
        rendered = render(translation.model, lb_settings)
        check_grammar(rendered, skeleton, certs, default)
        kept(alone, rendered)
        write_certificates(certs, rendered.certificates)
        result = haproxy_check(rendered, lb_settings.run_dir, {})
        assert result.returncode == 0, result.stdout + result.stderr
        fuzz_counts["fuzz: hostile Services (cases)"] += len(cases)
        fuzz_counts["fuzz: snapshots through haproxy -c"] += 1
        fuzz_counts["fuzz: hostile fields"] += sum(len(o) for _, o in cases)
        generated = [b for b in translation.model.backends if b.service.namespace != "ctl"]
        fuzz_counts["fuzz: backends of generated Services served"] += len(generated)
        fuzz_counts["fuzz: of them ExternalName"] += sum(1 for b in generated if b.external_name)
        fuzz_counts["fuzz: of them TLS to the pods"] += sum(1 for b in generated if b.protocol.tls)

    example()
    assert fuzz_counts["fuzz: hostile Services (cases)"] >= 10_000


def test_fuzz_without_service_routes(
    lb_settings: Settings, keys: Keys, fuzz_counts: Counter[str]
) -> None:
    """--service-routes=false: lb.sslTerm + lb.sslRedirect Services have no HTTPS route
    of their own, so no redirect and no HSTS; rendering never fails on it (it once
    dereferenced the missing HTTPS frontend) and `haproxy -c` accepts every example.
    Only generated Services: the controls' passthrough would hide a missing frontend."""
    no_routes = replace(
        lb_settings, service_routes=False, run_dir=lb_settings.run_dir.with_name("no-routes")
    )
    certs = no_routes.run_dir / CERTS_DIR
    redirect = {ann.SSL_TERM.key: "true", ann.SSL_REDIRECT.key: "true", ann.HSTS.key: "60"}

    @settings(max_examples=NO_ROUTES_EXAMPLES, **MANY_SERVICES)
    @given(st.lists(case, min_size=SERVICES_PER_EXAMPLE, max_size=SERVICES_PER_EXAMPLE))
    def example(cases: list[tuple[str, list[tuple[str, Any]]]]) -> None:
        objects = [service("api", namespace="ctl", annotations=redirect)]
        for i, (mode, overrides) in enumerate(cases):
            objects += build(i, mode, overrides, keys)
        translation = translate(snapshot(*objects), no_routes)
        model = translation.model
        assert not model.http_routes and not model.https_routes
        for backend in model.backends:
            if backend.ssl_redirect or backend.hsts_max_age is not None:
                # Only a passthrough Service's own redirect: its SNI name is served.
                assert model.passthrough and backend.hsts_max_age is None, backend
        rendered = render(model, no_routes)
        write_certificates(certs, rendered.certificates)
        result = haproxy_check(rendered, no_routes.run_dir, {})
        assert result.returncode == 0, result.stdout + result.stderr
        fuzz_counts["fuzz: hostile Services without Service routes (cases)"] += len(cases)

    example()
