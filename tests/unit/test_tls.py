"""HTTPS in the pure core: TLS annotations to the model (translate), the model to config
(render, checked by the real `haproxy -c`), Secrets to certificates, and the private
certificate directory. Certificates are real, made by trustme."""

from __future__ import annotations

import base64
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
import yaml
from factories import assert_haproxy_accepts, snapshot
from objects import (
    endpoint_slice,
    ingress,
    ingress_class,
    ingress_path,
    ingress_rule,
    service,
    tls_secret,
)

from service_loadbalancer import cli
from service_loadbalancer.certificates import (
    MAX_FILE_NAME,
    CertificateError,
    certificate_from_secret,
)
from service_loadbalancer.haproxy.certs import remove_unused, write_certificates
from service_loadbalancer.haproxy.plan import ReasonKind, reload_reasons
from service_loadbalancer.haproxy.render import (
    CERTS_DIR,
    CRT_LIST,
    HTTPS_HOSTS_MAP,
    HTTPS_PATHS_MAP,
    SNI_MAP,
    render,
)
from service_loadbalancer.kube.objects import RawObject
from service_loadbalancer.model import LoadBalancer, Mode, TlsPassthrough, Translation
from service_loadbalancer.settings import ServiceRef, Settings, TcpService
from service_loadbalancer.translate import translate

P = "serviceloadbalancer/"
TERM = {P + "lb.sslTerm": "true"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def secret_for(ca: trustme.CA, name: str, host: str, namespace: str = "default") -> RawObject:
    cert = ca.issue_cert(host)
    chain = b"".join(b.bytes() for b in cert.cert_chain_pems)
    return tls_secret(name, chain, cert.private_key_pem.bytes(), namespace=namespace)


@pytest.fixture(scope="module")
def default_cert(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("default") / "default.pem"
    ca.issue_cert("default.example").private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


def run(*objects: RawObject, **settings: object) -> Translation:
    return translate(snapshot(*objects), Settings(**settings))  # type: ignore[arg-type]


def reasons(t: Translation) -> list[str]:
    return [p.reason for p in t.problems]


# --- translate: termination ---------------------------------------------------------


def test_term_with_secret(ca: trustme.CA) -> None:
    svc = service("web", annotations={**TERM, P + "lb.ssl-secret": "web-tls"})
    t = run(svc, endpoint_slice("web", "10.1.0.1"), secret_for(ca, "web-tls", "web.example"),
            tls_secrets=True)  # fmt: skip
    assert t.problems == ()
    assert [c.name.split("_")[:2] for c in t.model.certificates] == [["default", "web-tls"]]
    assert "BEGIN CERTIFICATE" in t.model.certificates[0].pem
    assert "PRIVATE KEY" in t.model.certificates[0].pem
    assert "BEGIN" not in repr(t.model.certificates[0])  # key material stays out of repr
    assert set(t.model.https_routes) == set(t.model.http_routes)
    assert t.model.https


def test_term_with_default_cert_only(default_cert: Path) -> None:
    t = run(service("web", annotations=TERM), ssl_cert=default_cert)
    assert t.problems == ()
    assert t.model.certificates == ()
    assert {r.path for r in t.model.https_routes} == {"/web", "/default/web"}


def test_only_term_services_are_served_over_https(default_cert: Path) -> None:
    t = run(service("web", annotations=TERM), service("plain"), ssl_cert=default_cert)
    assert {r.backend for r in t.model.https_routes} == {"http_default_web_80"}
    assert {r.backend for r in t.model.http_routes} == {
        "http_default_web_80",
        "http_default_plain_80",
    }


BAD_SECRETS: list[tuple[str, RawObject, str]] = [
    ("wrong-type", tls_secret("s", b"x", b"y", type_="Opaque"), "is not of type"),
    ("not-base64", {**tls_secret("s", b"", b""), "data": {"tls.crt": "%%", "tls.key": "%%"}},
     "is not base64"),
    ("no-data", {**tls_secret("s", b"", b""), "data": None}, "has no data"),
    ("no-key", {**tls_secret("s", b"", b""), "data": {"tls.crt": ""}}, "needs data tls.crt"),
    ("not-pem", tls_secret("s", b"hello", b"world"), "tls.crt is not a PEM"),
]  # fmt: skip


@pytest.mark.parametrize(("secret", "fragment"), [b[1:] for b in BAD_SECRETS],
                         ids=[b[0] for b in BAD_SECRETS])  # fmt: skip
def test_bad_secret_takes_https_away_not_http(secret: RawObject, fragment: str) -> None:
    svc = service("web", annotations={**TERM, P + "lb.ssl-secret": "s"})
    t = run(svc, secret, tls_secrets=True)
    assert any(fragment in r for r in reasons(t)), reasons(t)
    assert t.model.https_routes == () and t.model.certificates == ()
    assert {r.path for r in t.model.http_routes} == {"/web", "/default/web"}


def test_longest_names_give_a_file_name_that_can_be_written(ca: trustme.CA, tmp_path: Path) -> None:
    """A 63-character namespace and a 253-character Secret name (both legal) once made a
    file name past NAME_MAX: writing it failed, and with it every config (found by the
    fuzzer)."""
    namespace, name = "n" * 63, ".".join(["s" * 63] * 4)[:253]
    cert = certificate_from_secret(secret_for(ca, name, "long.example", namespace=namespace))
    assert len(cert.name) == MAX_FILE_NAME
    assert cert.name.startswith(f"{namespace}_sss")
    other = certificate_from_secret(secret_for(ca, name, "other.example", namespace=namespace))
    assert other.name != cert.name  # the content's hash is kept whole
    write_certificates(tmp_path, {cert.name: cert.pem, other.name: other.pem})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([cert.name, other.name])
    short = certificate_from_secret(secret_for(ca, "web-tls", "web.example"))
    assert short.name.startswith("default_web-tls_") and len(short.name) < MAX_FILE_NAME


def test_key_that_does_not_match(ca: trustme.CA) -> None:
    a, b = ca.issue_cert("a.example"), ca.issue_cert("b.example")
    secret = tls_secret("s", a.cert_chain_pems[0].bytes(), b.private_key_pem.bytes())
    with pytest.raises(CertificateError, match="does not match"):
        certificate_from_secret(secret)


def test_secret_needs_the_flag_and_must_exist(ca: trustme.CA) -> None:
    svc = service("web", annotations={**TERM, P + "lb.ssl-secret": "web-tls"})
    secret = secret_for(ca, "web-tls", "web.example")
    off = run(svc, secret)
    assert any("--tls-secrets is off" in r for r in reasons(off))
    assert off.model.certificates == () and off.model.http_routes
    missing = run(svc, tls_secrets=True)
    assert any("Secret default/web-tls not found" in r for r in reasons(missing))
    other_ns = run(svc, secret_for(ca, "web-tls", "x", namespace="other"), tls_secrets=True)
    assert any("not found" in r for r in reasons(other_ns))


def test_unreferenced_secrets_are_not_read(ca: trustme.CA) -> None:
    t = run(service("web"), tls_secret("junk", b"x", b"y"), secret_for(ca, "ok", "a.example"),
            tls_secrets=True)  # fmt: skip
    assert t.problems == () and t.model.certificates == ()


def test_term_without_any_certificate() -> None:
    t = run(service("web", annotations=TERM))
    assert reasons(t) == ["HTTPS not served: no lb.ssl-secret and no --ssl-cert"]
    assert not t.model.https and t.model.http_routes


# --- translate: passthrough, redirect, HSTS, conflicts -------------------------------------


def passthrough(name: str, host: str, *ports: int, **extra: str) -> RawObject:
    return service(name, *ports, annotations={
        P + "lb.sslPassthrough": "true", P + "lb.host": host, **extra})  # fmt: skip


def test_passthrough_port_443_and_other_ports_stay_http() -> None:
    t = run(passthrough("db", "db.example", 80, 443))
    assert t.model.passthrough == (TlsPassthrough("db.example", "tcp_default_db_443"),)
    modes = {b.name: b.mode for b in t.model.backends}
    assert modes == {"tcp_default_db_443": Mode.TCP, "http_default_db_80": Mode.HTTP}
    assert t.model.tcp_frontends == ()  # no listener of its own: the HTTPS port
    assert t.model.https_routes == ()


def test_passthrough_single_port_and_ambiguous_ports() -> None:
    t = run(passthrough("a", "a.example", 8443), passthrough("b", "b.example", 80, 8443))
    assert t.model.passthrough == (TlsPassthrough("a.example", "tcp_default_a_8443"),)
    assert any("needs a port 443 or a single port" in r for r in reasons(t))


def test_passthrough_sni_clash_first_wins() -> None:
    t = run(passthrough("a", "x.example", 443), passthrough("b", "x.example", 443))
    assert t.model.passthrough == (TlsPassthrough("x.example", "tcp_default_a_443"),)
    assert any("already passed to default/a" in r for r in reasons(t))


@pytest.mark.parametrize(
    ("annotations", "fragment"),
    [
        ({**TERM, P + "lb.sslPassthrough": "true", P + "lb.host": "a.example"}, "exclude each"),
        ({P + "lb.sslPassthrough": "true"}, "needs serviceloadbalancer/lb.host"),
        ({P + "lb.sslRedirect": "true"}, "needs serviceloadbalancer/lb.sslTerm or"),
    ],
    ids=["term-and-passthrough", "passthrough-without-host", "redirect-alone"],
)
def test_conflicts_skip_the_service(annotations: dict[str, str], fragment: str) -> None:
    t = run(service("bad", annotations=annotations), service("good"))
    assert [b.name for b in t.model.backends] == ["http_default_good_80"]
    assert any(fragment in r and "not served" in r for r in reasons(t)), reasons(t)


def test_redirect_and_hsts_on_backends(default_cert: Path) -> None:
    svc = service("web", annotations={**TERM, P + "lb.sslRedirect": "true", P + "lb.hsts": "60"})
    t = run(svc, ssl_cert=default_cert)
    (backend,) = t.model.backends
    assert backend.ssl_redirect and backend.hsts_max_age == 60
    # Without a certificate there is no HTTPS: no redirect to nowhere, no HSTS.
    t = run(svc)
    (backend,) = t.model.backends
    assert not backend.ssl_redirect and backend.hsts_max_age is None


def test_redirect_for_a_passthrough_service() -> None:
    t = run(passthrough("db", "db.example", 80, 443, **{P + "lb.sslRedirect": "true"}))
    redirect = {b.name: b.ssl_redirect for b in t.model.backends}
    assert redirect == {"http_default_db_80": True, "tcp_default_db_443": False}


@pytest.mark.parametrize("with_ingress", [False, True])
def test_no_service_routes_means_no_redirect_to_nowhere(
    default_cert: Path, tmp_path: Path, with_ingress: bool
) -> None:
    """--service-routes=false: a terminated Service has no HTTPS route of its own, so
    its lb.sslRedirect and lb.hsts have nothing to apply to (and rendering, which once
    dereferenced the missing HTTPS frontend, must still work)."""
    settings = Settings(ssl_cert=default_cert, service_routes=False, run_dir=tmp_path,
                        https_port=8443, http_port=8080)  # fmt: skip
    objects = [
        service("api", annotations={**TERM, P + "lb.sslRedirect": "true", P + "lb.hsts": "60"}),
        endpoint_slice("api", "127.0.1.1"),
    ]
    if with_ingress:
        objects += [
            ingress_class(),
            ingress("i", ingress_rule("shop.test", ingress_path("/shop", "api"))),
        ]
    t = translate(snapshot(*objects), settings)
    (backend,) = t.model.backends
    assert not backend.ssl_redirect and backend.hsts_max_age is None
    assert not t.model.https
    rendered = render(t.model, settings)
    assert "redirect" not in rendered.config and "Strict-Transport-Security" not in rendered.config
    assert_haproxy_accepts(rendered, settings)


def test_template_never_reads_https_without_https(tmp_path: Path) -> None:
    """A model that asks for a redirect with nothing on the HTTPS port renders (without
    the redirect) rather than failing on the missing HTTPS frontend."""
    settings = Settings(run_dir=tmp_path, https_port=8443, http_port=8080)
    t = translate(snapshot(service("api"), endpoint_slice("api", "127.0.1.1")), settings)
    (backend,) = t.model.backends
    odd = LoadBalancer(backends=(replace(backend, ssl_redirect=True),))
    rendered = render(odd, settings)
    assert "redirect" not in rendered.config
    assert_haproxy_accepts(rendered, settings)


def test_secret_and_hsts_without_term_are_ignored() -> None:
    t = run(service("web", annotations={P + "lb.ssl-secret": "x", P + "lb.hsts": "5"}))
    assert any("need serviceloadbalancer/lb.sslTerm; ignored" in r for r in reasons(t))
    assert t.model.http_routes and not t.model.https


def test_https_port_is_reserved_only_when_served(default_cert: Path) -> None:
    tcp = (TcpService(ServiceRef("db"), 443),)
    alone = run(service("db", 443), tcp_services=tcp)
    assert [f.port for f in alone.model.tcp_frontends] == [443]
    both = run(service("db", 443), service("web", annotations=TERM), tcp_services=tcp,
               ssl_cert=default_cert)  # fmt: skip
    assert both.model.tcp_frontends == ()
    assert any("is the --https-port" in r for r in reasons(both))


# --- render + haproxy -c ----------------------------------------------------------------


def test_render_everything_and_haproxy_accepts(
    ca: trustme.CA, default_cert: Path, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    settings = Settings(ssl_cert=default_cert, ssl_ca_cert=ca_file, tls_secrets=True,
                        https_port=8443, run_dir=tmp_path / "run")  # fmt: skip
    objects = [
        service("a", annotations={**TERM, P + "lb.ssl-secret": "a-tls", P + "lb.host": "a.example",
                                  P + "lb.sslRedirect": "true", P + "lb.hsts": "600"}),
        secret_for(ca, "a-tls", "a.example"),
        service("b", annotations={**TERM, P + "lb.ssl-secret": "b-tls"}),
        secret_for(ca, "b-tls", "b.example"),
        passthrough("p", "p.example", 443),
        endpoint_slice("p", "10.2.0.1"),
    ]  # fmt: skip
    t = translate(snapshot(*objects), settings)
    assert t.problems == ()
    rendered = render(t.model, settings)
    files = rendered.files
    crt_list = files[CRT_LIST].splitlines()
    assert crt_list[0] == f"{default_cert} !*"  # the default certificate first: a fallback
    files_listed = [Path(line.split()[0]).parent for line in crt_list[1:]]
    assert files_listed == [settings.run_dir / CERTS_DIR] * 2
    # Each Service certificate is shown for its own names (explicit SNI filters).
    assert sorted(line.split()[1:] for line in crt_list[1:]) == [["a.example"], ["b.example"]]
    assert files[SNI_MAP] == "p.example tcp_default_p_443\n"
    assert "a.example/ http_default_a_80|0|s\n" in files[HTTPS_HOSTS_MAP]
    assert "/b/ http_default_b_80|1|s\n" in files[HTTPS_PATHS_MAP]
    assert "/a/ http_default_a_80|1|s\n" in files[HTTPS_PATHS_MAP]
    config = rendered.config
    assert f"ca-file {ca_file} verify required" in config
    assert "ssl-min-ver TLSv1.2 no-tls-tickets" in config
    assert "bind :8443\n" in config
    assert "code 308 if !{ ssl_fc }" in config and ":8443%[capture.req.uri]" in config
    assert 'Strict-Transport-Security "max-age=600" if { ssl_fc }' in config
    # No key material in any rendered file, nor in the repr of the result.
    for text in [*files.values(), repr(rendered)]:
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    assert len(rendered.certificates) == 2
    write_certificates(settings.run_dir / CERTS_DIR, rendered.certificates)
    assert_haproxy_accepts(rendered, settings)


def test_render_without_https_has_no_https_section() -> None:
    rendered = render(translate(snapshot(service("web")), Settings()).model, Settings())
    assert "frontend https" not in rendered.config
    assert CRT_LIST not in rendered.files and rendered.certificates == {}


def test_passthrough_only_rejects_other_tls(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path)
    t = translate(snapshot(passthrough("p", "p.example", 443)), settings)
    rendered = render(t.model, settings)
    assert "tcp-request content reject" in rendered.config
    assert "https_terminated" not in rendered.config
    assert_haproxy_accepts(rendered, settings)


def test_redirect_code_and_default_port(default_cert: Path, tmp_path: Path) -> None:
    settings = Settings(ssl_cert=default_cert, ssl_redirect_code=301, run_dir=tmp_path)
    svc = service("web", annotations={**TERM, P + "lb.sslRedirect": "true"})
    rendered = render(translate(snapshot(svc), settings).model, settings)
    assert "lower]%[capture.req.uri] code 301 " in rendered.config  # 443: no port in Location
    assert_haproxy_accepts(rendered, settings)


# --- Secrets to certificates ------------------------------------------------------------


def test_certificate_is_reencoded_and_named_by_content(ca: trustme.CA) -> None:
    secret = secret_for(ca, "web-tls", "web.example", namespace="shop")
    cert = certificate_from_secret(secret)
    assert cert.name.startswith("shop_web-tls_") and cert.name.endswith(".pem")
    # Junk around the PEM blocks (comments, headers) is not carried over.
    raw = base64.b64decode(secret["data"]["tls.crt"])
    secret["data"]["tls.crt"] = base64.b64encode(b"junk line\n" + raw + b"# trailer\n").decode()
    again = certificate_from_secret(secret)
    assert "junk" not in again.pem and "trailer" not in again.pem
    assert again == cert
    rotated = certificate_from_secret(secret_for(ca, "web-tls", "web.example", namespace="shop"))
    assert rotated.name != cert.name


# --- the private directory ----------------------------------------------------------------


def test_certificate_files_are_private_and_pruned(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    write_certificates(directory, {"a_x_1.pem": "A", "b_y_2.pem": "B"})
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("a_x_1.pem", "b_y_2.pem"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    write_certificates(directory, {"a_x_1.pem": "A"})  # unchanged: left alone
    assert (directory / "a_x_1.pem").read_text() == "A"
    assert remove_unused(directory, {"a_x_1.pem"}) == ["b_y_2.pem"]
    assert sorted(p.name for p in directory.iterdir()) == ["a_x_1.pem"]
    with pytest.raises(ValueError, match="not a certificate file name"):
        write_certificates(directory, {"../evil.pem": "x"})


# --- flags: files checked at start, one line and exit 2 -----------------------------------


def main_exit(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main(["render", "--manifests", "/nonexistent-manifests", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_flag_files_are_checked(
    ca: trustme.CA, default_cert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert_only = tmp_path / "cert-only.pem"
    ca.issue_cert("x.example").cert_chain_pems[0].write_to_path(str(cert_only))
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nsecret\n")
    assert "--ssl-cert" in main_exit(["--ssl-cert", str(tmp_path / "missing.pem")], capsys)
    err = main_exit(["--ssl-cert", str(cert_only)], capsys)
    assert "does not hold a certificate and its key" in err
    err = main_exit(["--ssl-cert", str(junk)], capsys)
    assert "secret" not in err  # never quotes the file
    err = main_exit(["--ssl-ca-cert", str(junk)], capsys)
    assert "does not hold CA certificates" in err
    spaced = tmp_path / "a b.pem"
    spaced.write_bytes(default_cert.read_bytes())
    assert "spaces" in main_exit(["--ssl-cert", str(spaced)], capsys)
    assert "--ssl-redirect-code" in main_exit(["--ssl-redirect-code", "200"], capsys)
    assert "--https-port" in main_exit(["--https-port", "0"], capsys)


def test_check_command_with_https(
    ca: trustme.CA, default_cert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` writes certificates to a temporary directory, not the run directory."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    objects = [
        service("web", annotations={**TERM, P + "lb.ssl-secret": "w"}),
        secret_for(ca, "w", "web.example"),
    ]
    (manifests / "a.yaml").write_text(yaml.safe_dump_all(objects))
    run_dir = tmp_path / "run"
    args = ["check", "--manifests", str(manifests), "--run-dir", str(run_dir)]
    code = cli.main([*args, "--tls-secrets", "--ssl-cert", str(default_cert)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "haproxy -c: valid" in out and "0 problems" in out
    assert not (run_dir / CERTS_DIR).exists()


def test_reload_reasons_for_https(ca: trustme.CA, default_cert: Path) -> None:
    settings = Settings(tls_secrets=True, ssl_cert=default_cert)
    svc = service("web", annotations={**TERM, P + "lb.ssl-secret": "w"})
    before = translate(snapshot(svc, secret_for(ca, "w", "web.example")), settings).model
    after = translate(snapshot(svc, secret_for(ca, "w", "web.example")), settings).model
    reasons = [str(r) for r in reload_reasons(before, after)]
    assert len(reasons) == 1 and reasons[0].startswith("certificates changed (default_w_")
    assert "PRIVATE" not in reasons[0]
    assert reload_reasons(before, after)[0].kind is ReasonKind.CERTIFICATES
    plain = translate(snapshot(service("web")), settings).model
    assert "HTTPS routes changed" in map(str, reload_reasons(plain, before))
    redirect = service("web", annotations={**TERM, P + "lb.sslRedirect": "true"})
    with_redirect = translate(snapshot(redirect), settings).model
    term_only = translate(snapshot(service("web", annotations=TERM)), settings).model
    assert [str(r) for r in reload_reasons(term_only, with_redirect)] == [
        "http backend default/web:80 options changed"
    ]


def test_wildcard_hosts_render_and_haproxy_accepts(default_cert: Path, tmp_path: Path) -> None:
    settings = Settings(ssl_cert=default_cert, run_dir=tmp_path, tls_tickets=True)
    objects = [
        service("w", annotations={**TERM, P + "lb.host": "*.example.com"}),
        service("e", annotations={P + "lb.host": "a.example.com"}),
        passthrough("p", "*.pass.example", 443),
    ]
    t = translate(snapshot(*objects), settings)
    assert t.problems == ()
    rendered = render(t.model, settings)
    assert "*.example.com/ http_default_w_80|0|s\n" in rendered.files["hosts.map"]
    assert "*.example.com/ http_default_w_80|0|s\n" in rendered.files[HTTPS_HOSTS_MAP]
    assert rendered.files[SNI_MAP] == "*.pass.example tcp_default_p_443\n"
    assert rendered.config.count("regsub(^[^.]*,*)") == 4  # http, https, SNI (twice)
    assert "no-tls-tickets" not in rendered.config  # --tls-tickets
    assert_haproxy_accepts(rendered, settings)
    # Without a wildcard the config has no extra lookup.
    plain = render(translate(snapshot(objects[1]), settings).model, settings)
    assert "regsub" not in plain.config


def test_render_command_prints_no_key_material(
    ca: trustme.CA, default_cert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    objects = [
        service("web", annotations={**TERM, P + "lb.ssl-secret": "w"}),
        secret_for(ca, "w", "web.example"),
    ]
    (manifests / "a.yaml").write_text(yaml.safe_dump_all(objects))
    args = ["render", "--manifests", str(manifests), "--run-dir", str(tmp_path / "run")]
    assert cli.main([*args, "--tls-secrets", "--ssl-cert", str(default_cert)]) == 0
    captured = capsys.readouterr()
    assert "# ==> certs.list <==" in captured.out and "default_w_" in captured.out
    for text in (captured.out, captured.err):
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    assert not (tmp_path / "run").exists()  # render writes nothing
