"""render(): model + settings -> config text and map files.

Every config rendered here goes through the real `haproxy -c` (factories.render_checked),
with the files written to tmp_path and settings.run_dir pointing there.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import trustme
from factories import assert_haproxy_accepts, block, haproxy_check, render_checked, snapshot
from objects import endpoint, endpoint_slice, endpoints, ep_port, port, service, subset

from service_loadbalancer.flag_values import parse_tcp_services
from service_loadbalancer.haproxy.render import (
    CONFIG_FILE,
    ERROR_PAGE,
    HOSTS_MAP,
    PATHS_MAP,
    RUNTIME_SOCKET,
    SERVER_OPTIONS,
    Rendered,
    TemplateError,
    bind_spec,
    builtin_template,
    check_template,
    haproxy_time,
    prefix_regex,
    render,
    server_endpoint,
    strip_regex,
    template_context,
)
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import (
    Algorithm,
    Backend,
    HttpRoute,
    LoadBalancer,
    Mode,
    Protocol,
    Server,
    Stickiness,
    TcpFrontend,
)
from service_loadbalancer.settings import ENV_STATS_PASSWORD, ENV_STATS_USER, Settings
from service_loadbalancer.translate import translate

P = "serviceloadbalancer/"
WEB = ObjectKey("Service", "default", "web")


def srv(address: str, port_number: int = 8080) -> Server:
    name = f"s_{address.replace('.', '_').replace(':', '_')}_{port_number}"
    return Server(name, address, port_number)


def http_backend(
    name: str = "http_default_web_80",
    *servers: Server,
    algorithm: Algorithm = Algorithm.ROUNDROBIN,
    stickiness: Stickiness = Stickiness.NONE,
    timeout: int = 10800,
    strip: tuple[str, ...] = (),
) -> Backend:
    return Backend(
        name=name,
        mode=Mode.HTTP,
        service=WEB,
        port=80,
        algorithm=algorithm,
        servers=servers,
        stickiness=stickiness,
        stickiness_timeout=timeout,
        strip_prefixes=strip,
    )


def tcp_backend(name: str, *servers: Server, stickiness: Stickiness = Stickiness.NONE) -> Backend:
    return Backend(
        name=name,
        mode=Mode.TCP,
        service=ObjectKey("Service", "default", "mysql"),
        port=3306,
        algorithm=Algorithm.LEASTCONN,
        servers=servers,
        stickiness=stickiness,
    )


def one_backend(backend: Backend) -> LoadBalancer:
    return LoadBalancer(
        backends=(backend,),
        http_routes=(HttpRoute("/web", backend.name, strip=bool(backend.strip_prefixes)),),
    )


# --- Map files ------------------------------------------------------------------------------


def scenario_model() -> LoadBalancer:
    """A translated model using paths, aclMatch, lb.host and a TCP service."""
    snap = snapshot(
        service("web", port(80, name="http", target=8080), port(8443, name="alt")),
        endpoint_slice(
            "web",
            "10.0.0.1",
            endpoint("10.0.0.2", ready=False),
            "fd00::1",
            ports=[ep_port(8080, name="http"), ep_port(8443, name="alt")],
        ),
        service("web", 80, namespace="team", session_affinity="ClientIP"),
        service(
            "api",
            8080,
            namespace="team",
            annotations={P + "lb.host": "API.example.com", P + "lb.aclMatch": "/v1/"},
        ),
        service("home", annotations={P + "lb.aclMatch": "/", P + "lb.algorithm": "source"}),
        service(
            "shop",
            annotations={P + "lb.host": "shop.example.com", P + "lb.cookie-sticky-session": "true"},
            session_affinity="ClientIP",
        ),
        endpoints("shop", subset("10.0.2.1", "10.0.2.2")),
        service("mysql", port(3306, name="mysql")),
        endpoints("mysql", subset("10.0.3.1", ports=[ep_port(3306, name="mysql")])),
    )
    return translate(snap, Settings(tcp_services=parse_tcp_services("mysql:3306"))).model


def test_paths_map(tmp_path: Path) -> None:
    rendered = render_checked(scenario_model(), Settings(), tmp_path)
    assert rendered.files[PATHS_MAP] == (
        "/ http_default_home_80|0|s\n"
        "/default/shop/ http_default_shop_80|1|s\n"
        "/default/web/ http_default_web_80|1|s\n"
        "/default/web:8443/ http_default_web_8443|1|s\n"
        "/shop/ http_default_shop_80|1|s\n"
        "/team/web/ http_team_web_80|1|s\n"
        "/v1/ http_team_api_8080|0|s\n"
        "/web/ http_default_web_80|1|s\n"
        "/web:8443/ http_default_web_8443|1|s\n"
    )
    for line in rendered.files[PATHS_MAP].splitlines():
        key, value = line.split(" ")
        assert key.endswith("/")
        assert not key.endswith("//")
        assert value.endswith(("|0|s", "|1|s"))


def test_hosts_map(tmp_path: Path) -> None:
    rendered = render_checked(scenario_model(), Settings(), tmp_path)
    assert rendered.files[HOSTS_MAP] == (
        "api.example.com/v1/ http_team_api_8080|0|s\nshop.example.com/ http_default_shop_80|0|s\n"
    )


def test_map_files_written_next_to_config_and_referenced_by_name(tmp_path: Path) -> None:
    rendered = render_checked(scenario_model(), Settings(), tmp_path)
    assert set(rendered.files) == {CONFIG_FILE, PATHS_MAP, HOSTS_MAP}
    assert f"map_beg({PATHS_MAP})" in rendered.config
    assert f"map_beg({HOSTS_MAP})" in rendered.config
    assert (tmp_path / PATHS_MAP).read_text() == rendered.files[PATHS_MAP]


def test_empty_model(tmp_path: Path) -> None:
    rendered = render_checked(LoadBalancer(), Settings(), tmp_path)
    assert rendered.files[PATHS_MAP] == ""
    assert rendered.files[HOSTS_MAP] == ""
    assert "\nbackend default_backend\n" in rendered.config
    assert rendered.config.count("\nbackend ") == 1
    assert "frontend tcp_" not in rendered.config


def test_scenario_config_sections(tmp_path: Path) -> None:
    config = render_checked(scenario_model(), Settings(), tmp_path).config
    assert block(config, "backend http_default_web_80") == (
        "backend http_default_web_80\n"
        "    mode http\n"
        "    balance roundrobin\n"
        "    # X-Forwarded-Prefix: the prefix stripped (unless a trusted proxy sent one).\n"
        "    http-request set-var(txn.set_prefix) bool(true)"
        " if { var(txn.route),field(2,|) -m str 1 }"
        " !{ req.hdr(X-Forwarded-Prefix) -m found }\n"
        "    http-request set-header X-Forwarded-Prefix %[path]"
        " if { var(txn.set_prefix) -m bool }\n"
        "    http-request replace-header X-Forwarded-Prefix ^(/(?:default/web|web))(?:/|$).* \\1"
        " if { var(txn.set_prefix) -m bool }\n"
        "    http-request replace-path ^/(?:default/web|web)(?:/|$)(.*) /\\1"
        " if { var(txn.route),field(2,|) -m str 1 }\n"
        f"    server s_10_0_0_1_8080 10.0.0.1:8080 {SERVER_OPTIONS}\n"
        f"    server s_fd00__1_8080 [fd00::1]:8080 {SERVER_OPTIONS}\n"
    )
    assert block(config, "backend http_default_home_80") == (
        "backend http_default_home_80\n"
        "    mode http\n"
        "    balance source\n"
        "    hash-type consistent\n"
    )
    assert block(config, "backend http_team_web_80") == (
        "backend http_team_web_80\n"
        "    mode http\n"
        "    balance roundrobin\n"
        "    stick-table type ip size 100k expire 10800s\n"
        "    stick on src\n"
        "    # X-Forwarded-Prefix: the prefix stripped (unless a trusted proxy sent one).\n"
        "    http-request set-var(txn.set_prefix) bool(true)"
        " if { var(txn.route),field(2,|) -m str 1 }"
        " !{ req.hdr(X-Forwarded-Prefix) -m found }\n"
        "    http-request set-header X-Forwarded-Prefix %[path]"
        " if { var(txn.set_prefix) -m bool }\n"
        "    http-request replace-header X-Forwarded-Prefix ^(/(?:team/web))(?:/|$).* \\1"
        " if { var(txn.set_prefix) -m bool }\n"
        "    http-request replace-path ^/(?:team/web)(?:/|$)(.*) /\\1"
        " if { var(txn.route),field(2,|) -m str 1 }\n"
    )
    assert block(config, "backend http_default_shop_80") == (
        "backend http_default_shop_80\n"
        "    mode http\n"
        "    balance roundrobin\n"
        "    cookie SERVERID insert indirect nocache\n"
        "    # X-Forwarded-Prefix: the prefix stripped (unless a trusted proxy sent one).\n"
        "    http-request set-var(txn.set_prefix) bool(true)"
        " if { var(txn.route),field(2,|) -m str 1 }"
        " !{ req.hdr(X-Forwarded-Prefix) -m found }\n"
        "    http-request set-header X-Forwarded-Prefix %[path]"
        " if { var(txn.set_prefix) -m bool }\n"
        "    http-request replace-header X-Forwarded-Prefix ^(/(?:default/shop|shop))(?:/|$).* \\1"
        " if { var(txn.set_prefix) -m bool }\n"
        "    http-request replace-path ^/(?:default/shop|shop)(?:/|$)(.*) /\\1"
        " if { var(txn.route),field(2,|) -m str 1 }\n"
        f"    server s_10_0_2_1_8080 10.0.2.1:8080 cookie s_10_0_2_1_8080 {SERVER_OPTIONS}\n"
        f"    server s_10_0_2_2_8080 10.0.2.2:8080 cookie s_10_0_2_2_8080 {SERVER_OPTIONS}\n"
    )
    assert block(config, "frontend tcp_3306") == (
        "frontend tcp_3306\n"
        "    mode tcp\n"
        "    bind :3306\n"
        "    default_backend tcp_default_mysql_3306\n"
    )
    assert block(config, "backend tcp_default_mysql_3306") == (
        "backend tcp_default_mysql_3306\n"
        "    mode tcp\n"
        "    balance roundrobin\n"
        f"    server s_10_0_3_1_3306 10.0.3.1:3306 {SERVER_OPTIONS}\n"
    )


def test_render_is_deterministic(tmp_path: Path) -> None:
    first = render_checked(scenario_model(), Settings(), tmp_path)
    assert render(scenario_model(), dataclasses.replace(Settings(), run_dir=tmp_path)) == first


# --- The strip regex ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefixes", "regex"),
    [
        (("/web",), "^/(?:web)(?:/|$)(.*)"),
        (("/default/web", "/web"), "^/(?:default/web|web)(?:/|$)(.*)"),
        (("/web:8080",), "^/(?:web:8080)(?:/|$)(.*)"),
        (("/team/my-svc",), r"^/(?:team/my\-svc)(?:/|$)(.*)"),
    ],
    ids=["one", "two", "port-suffix", "hyphen-escaped"],
)
def test_strip_regex_text(prefixes: tuple[str, ...], regex: str) -> None:
    assert strip_regex(prefixes) == regex


@pytest.mark.parametrize(
    ("prefixes", "path", "stripped"),
    [
        (("/default/web", "/web"), "/web", "/"),
        (("/default/web", "/web"), "/web/", "/"),
        (("/default/web", "/web"), "/web/a/b", "/a/b"),
        (("/default/web", "/web"), "/default/web", "/"),
        (("/default/web", "/web"), "/default/web/x", "/x"),
        (("/default/web", "/web"), "/web/default/web/x", "/default/web/x"),
        (("/default/web", "/web"), "/webx", None),
        (("/default/web", "/web"), "/other/web", None),
        (("/web:8080",), "/web:8080/a?b", "/a?b"),
        (("/web:8080",), "/web:80801", None),
        (("/team/my-svc",), "/team/my-svc/x", "/x"),
        (("/a/a", "/a"), "/a/a/x", "/x"),
        (("/a/a", "/a"), "/a/b", "/b"),
    ],
    ids=[
        "bare",
        "trailing-slash",
        "deeper",
        "long-form-bare",
        "long-form",
        "once-only",
        "not-on-boundary",
        "not-anchored",
        "port-suffix",
        "port-suffix-boundary",
        "hyphen",
        "longest-first",
        "shorter",
    ],
)
def test_strip_regex_semantics(prefixes: tuple[str, ...], path: str, stripped: str | None) -> None:
    """The regex as HAProxy's replace-path applies it (`/\\1`), checked with Python's re,
    whose syntax agrees with PCRE2 for this subset."""
    regex = re.compile(strip_regex(prefixes))
    result = regex.sub(r"/\1", path, count=1) if regex.match(path) else None
    assert result == stripped


def test_no_strip_line_without_prefixes(tmp_path: Path) -> None:
    config = render_checked(one_backend(http_backend()), Settings(), tmp_path).config
    assert "replace-path" not in config


# --- Balancing and stickiness -----------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "lines", "absent"),
    [
        (
            http_backend("b", srv("10.0.0.1"), algorithm=Algorithm.SOURCE),
            ["    balance source", "    hash-type consistent"],
            ["stick", "cookie"],
        ),
        (
            http_backend("b", srv("10.0.0.1"), algorithm=Algorithm.LEASTCONN),
            ["    balance leastconn"],
            ["hash-type", "stick", "cookie"],
        ),
        (
            http_backend("b", srv("10.0.0.1"), algorithm=Algorithm.FIRST),
            ["    balance first"],
            ["hash-type"],
        ),
        (
            http_backend("b", srv("10.0.0.1"), stickiness=Stickiness.SOURCE_IP, timeout=600),
            ["    stick-table type ip size 100k expire 600s", "    stick on src"],
            ["cookie"],
        ),
        (
            http_backend("b", srv("fd00::1"), stickiness=Stickiness.SOURCE_IP),
            ["    stick-table type ipv6 size 100k expire 10800s", "    stick on src"],
            ["cookie"],
        ),
        (
            http_backend("b", srv("10.0.0.1"), srv("fd00::1"), stickiness=Stickiness.SOURCE_IP),
            ["    stick-table type ipv6 size 100k expire 10800s"],
            ["type ip "],
        ),
        (
            http_backend("b", srv("10.0.0.1"), srv("10.0.0.2"), stickiness=Stickiness.COOKIE),
            [
                "    cookie SERVERID insert indirect nocache",
                f"    server s_10_0_0_1_8080 10.0.0.1:8080 cookie s_10_0_0_1_8080 {SERVER_OPTIONS}",
                f"    server s_10_0_0_2_8080 10.0.0.2:8080 cookie s_10_0_0_2_8080 {SERVER_OPTIONS}",
            ],
            ["stick"],
        ),
        (
            tcp_backend("b", srv("10.0.0.1", 3306), stickiness=Stickiness.SOURCE_IP),
            [
                "    mode tcp",
                "    balance leastconn",
                "    stick-table type ip size 100k expire 10800s",
                "    stick on src",
                f"    server s_10_0_0_1_3306 10.0.0.1:3306 {SERVER_OPTIONS}",
            ],
            ["cookie", "replace-path"],
        ),
    ],
    ids=[
        "source-hash-consistent",
        "leastconn",
        "first",
        "source-ip-stick-table",
        "source-ip-ipv6-table",
        "mixed-families-ipv6-table",
        "cookie",
        "tcp-stick-table",
    ],
)
def test_backend_lines(
    tmp_path: Path, backend: Backend, lines: list[str], absent: list[str]
) -> None:
    config = render_checked(LoadBalancer(backends=(backend,)), Settings(), tmp_path).config
    section = block(config, "backend b").splitlines()
    for line in lines:
        assert line in section
    for fragment in absent:
        assert not any(fragment in line for line in section), fragment


def test_ipv6_server(tmp_path: Path) -> None:
    model = one_backend(http_backend("http_default_web_80", srv("fd00::1"), srv("10.0.0.1")))
    config = render_checked(model, Settings(), tmp_path).config
    assert f"    server s_fd00__1_8080 [fd00::1]:8080 {SERVER_OPTIONS}\n" in config
    assert f"    server s_10_0_0_1_8080 10.0.0.1:8080 {SERVER_OPTIONS}\n" in config


def test_backend_without_servers(tmp_path: Path) -> None:
    model = one_backend(http_backend(strip=("/default/web", "/web")))
    config = render_checked(model, Settings(), tmp_path).config
    section = block(config, "backend http_default_web_80")
    assert "server" not in section
    assert section.startswith("backend http_default_web_80\n    mode http\n")


# --- TCP frontends --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind_address", "bind"),
    [("", ":3306"), ("127.0.0.1", "127.0.0.1:3306"), ("::1", "[::1]:3306")],
    ids=["any", "ipv4", "ipv6"],
)
def test_tcp_frontend(tmp_path: Path, bind_address: str, bind: str) -> None:
    model = LoadBalancer(
        backends=(tcp_backend("tcp_default_mysql_3306", srv("10.0.0.1", 3306)),),
        tcp_frontends=(TcpFrontend(3306, "tcp_default_mysql_3306"),),
    )
    config = render_checked(model, Settings(bind_address=bind_address), tmp_path).config
    assert block(config, "frontend tcp_3306") == (
        f"frontend tcp_3306\n    mode tcp\n    bind {bind}\n"
        "    default_backend tcp_default_mysql_3306\n"
    )


def test_tcp_frontends_in_port_order_with_tcplog(tmp_path: Path) -> None:
    model = LoadBalancer(
        backends=(tcp_backend("tcp_a"), tcp_backend("tcp_b")),
        tcp_frontends=(TcpFrontend(3306, "tcp_b"), TcpFrontend(5432, "tcp_a")),
    )
    config = render_checked(model, Settings(syslog=True), tmp_path).config
    assert config.index("frontend tcp_3306") < config.index("frontend tcp_5432")
    assert "    option tcplog\n" in block(config, "frontend tcp_5432")


# --- Global settings: binds, stats, syslog, error page ---------------------------------------


@pytest.mark.parametrize(
    ("address", "port_number", "spec"),
    [
        ("", 80, ":80"),
        ("127.0.0.1", 80, "127.0.0.1:80"),
        ("0.0.0.0", 1, "0.0.0.0:1"),
        ("::1", 8080, "[::1]:8080"),
        ("::", 80, "[::]:80"),
    ],
    ids=["any", "ipv4", "ipv4-any", "ipv6", "ipv6-any"],
)
def test_bind_spec(address: str, port_number: int, spec: str) -> None:
    assert bind_spec(address, port_number) == spec


@pytest.mark.parametrize(
    ("server", "endpoint_text"),
    [
        (Server("a", "10.0.0.1", 80), "10.0.0.1:80"),
        (Server("a", "fd00::1", 80), "[fd00::1]:80"),
        (Server("a", "::ffff:10.0.0.1", 1), "[::ffff:10.0.0.1]:1"),
    ],
    ids=["ipv4", "ipv6", "ipv4-mapped"],
)
def test_server_endpoint(server: Server, endpoint_text: str) -> None:
    assert server_endpoint(server) == endpoint_text


def test_stats_without_credentials_bind_loopback_only(tmp_path: Path) -> None:
    config = render_checked(
        LoadBalancer(), Settings(bind_address="", stats_port=1937), tmp_path
    ).config
    assert block(config, "frontend stats").splitlines()[1] == "    bind 127.0.0.1:1937"
    assert "userlist" not in config
    assert "http-request auth" not in config
    assert "    http-request use-service prometheus-exporter if { path /metrics }" in config


@pytest.mark.parametrize(
    ("bind_address", "bind"),
    [("", ":1936"), ("127.0.0.2", "127.0.0.2:1936"), ("::1", "[::1]:1936")],
    ids=["any", "ipv4", "ipv6"],
)
def test_stats_with_credentials(tmp_path: Path, bind_address: str, bind: str) -> None:
    settings = Settings(
        bind_address=bind_address, stats_user="opsuser", stats_password="s3cr3t-Pass!"
    )
    rendered = render_checked(LoadBalancer(), settings, tmp_path)
    config = rendered.config
    assert block(config, "userlist stats_users") == (
        "userlist stats_users\n"
        '    user "${SLB_STATS_USER}" insecure-password "${SLB_STATS_PASSWORD}"\n'
    )
    stats = block(config, "frontend stats")
    assert f"    bind {bind}\n" in stats
    assert "    http-request auth realm stats unless { http_auth(stats_users) }\n" in stats
    for text in rendered.files.values():  # secrets travel in the environment only
        assert "s3cr3t" not in text
        assert "opsuser" not in text


def test_stats_credentials_reach_haproxy_through_haproxy_env_alone(tmp_path: Path) -> None:
    """cli and the reconciler pass exactly settings.haproxy_env() to haproxy: it must
    carry the variables the template reads (it once held SLB_STATS_AUTH instead)."""
    settings = Settings(run_dir=tmp_path, stats_user="admin", stats_password="pw")
    result = haproxy_check(render(LoadBalancer(), settings), tmp_path, settings.haproxy_env())
    assert result.returncode == 0, result.stderr


def test_template_reads_the_variables_settings_export() -> None:
    template = builtin_template()
    for name in Settings(stats_user="u", stats_password="p").haproxy_env():
        assert "${" + name + "}" in template
    assert set(re.findall(r"\$\{(\w+)\}", template)) == {ENV_STATS_USER, ENV_STATS_PASSWORD}


def test_runtime_socket_in_run_dir(tmp_path: Path) -> None:
    config = render_checked(LoadBalancer(), Settings(), tmp_path).config
    assert f"    stats socket {tmp_path / RUNTIME_SOCKET} mode 600 level admin" in config


@pytest.mark.parametrize("syslog", [False, True], ids=["no-syslog", "syslog"])
def test_syslog(tmp_path: Path, syslog: bool) -> None:
    config = render_checked(scenario_model(), Settings(syslog=syslog), tmp_path).config
    for line in (
        "    log stdout format raw local0",
        "    log global",
        "    option httplog",
        "    option tcplog",
    ):
        assert (line in config.splitlines()) is syslog, line


#: gRPC clients get a gRPC status (12, UNIMPLEMENTED) instead of an HTML page.
GRPC_ANSWER = (
    "    # A gRPC client gets a gRPC answer (a headers-only response, status 12, UNIMPLEMENTED)\n"
    "    # rather than an HTML page it cannot read. HAProxy drops the content-type of a reply\n"
    "    # without payload, so it is set after the reply is made.\n"
    "    http-request return status 200 hdr grpc-status 12 "
    'hdr grpc-message "no route for this request" '
    "if { req.hdr(content-type) -m beg application/grpc }\n"
    "    http-after-response set-header content-type application/grpc "
    "if { res.hdr(grpc-status) -m found } !{ res.hdr(content-type) -m found }\n"
)


@pytest.mark.parametrize("code", [404, 503, 200], ids=["404", "503", "200"])
def test_default_backend_without_error_page(tmp_path: Path, code: int) -> None:
    rendered = render_checked(LoadBalancer(), Settings(default_return_code=code), tmp_path)
    assert block(rendered.config, "backend default_backend") == (
        f"backend default_backend\n{GRPC_ANSWER}    http-request return status {code}\n"
    )
    assert ERROR_PAGE not in rendered.files


def test_error_page_file(tmp_path: Path) -> None:
    page = '<!doctype html>\n<h1>Not here</h1>\n<p>"quotes" & {{ braces }} %[src]</p>\n'
    settings = Settings(error_page=page, default_return_code=503)
    rendered = render_checked(LoadBalancer(), settings, tmp_path)
    assert rendered.files[ERROR_PAGE] == page
    assert (tmp_path / ERROR_PAGE).read_text() == page
    assert block(rendered.config, "backend default_backend") == (
        "backend default_backend\n"
        + GRPC_ANSWER
        + '    http-request return status 503 content-type "text/html; charset=utf-8" '
        "file error-page.html\n"
    )
    assert "Not here" not in rendered.config


# --- Settings matrix: every combination renders a valid config --------------------------------

MATRIX = {
    "defaults": Settings(),
    "ports": Settings(http_port=8080, stats_port=9000, healthz_port=9001),
    "loopback": Settings(bind_address="127.0.0.1"),
    "ipv6": Settings(bind_address="::1"),
    "syslog": Settings(syslog=True),
    "auth": Settings(stats_user="u", stats_password="p@ss#word"),
    "error-page": Settings(error_page="<h1>x</h1>", default_return_code=502),
    "everything": Settings(
        bind_address="127.0.0.1",
        syslog=True,
        stats_user="ops",
        stats_password="x",
        error_page="gone",
        default_return_code=410,
    ),
}


@pytest.mark.parametrize("settings", MATRIX.values(), ids=MATRIX.keys())
def test_settings_matrix_passes_haproxy_check(tmp_path: Path, settings: Settings) -> None:
    rendered = render_checked(scenario_model(), settings, tmp_path)
    assert f"    bind {bind_spec(settings.bind_address, settings.http_port)}\n" in rendered.config


def test_end_to_end_from_translation(tmp_path: Path) -> None:
    snap = snapshot(
        service(
            "web",
            port(80, name="http"),
            port(9090, name="metrics"),
            port(53, name="dns", protocol="UDP"),
            annotations={P + "lb.algorithm": "first"},
        ),
        endpoint_slice(
            "web",
            "10.0.0.1",
            endpoint("10.0.0.2", ready=None),
            endpoint("10.0.0.3", ready=False),
            ports=[ep_port(8080, name="http"), ep_port(9090, name="metrics")],
        ),
        service("web", namespace="other"),
        service("db", 5432, namespace="data", session_affinity="ClientIP"),
        service("kubernetes", 443),
    )
    settings = Settings(tcp_services=parse_tcp_services("data/db:5432"))
    translation = translate(snap, settings)
    rendered = render_checked(translation.model, settings, tmp_path)
    config = rendered.config
    assert "backend http_default_web_80" in config
    assert "backend http_other_web_80" in config
    assert "kubernetes" not in config
    assert f"    server s_10_0_0_2_8080 10.0.0.2:8080 {SERVER_OPTIONS}\n" in config
    assert "10.0.0.3" not in config
    assert "stick on src" in block(config, "backend tcp_data_db_5432")
    assert "    bind :5432\n" in block(config, "frontend tcp_5432")


# --- Templates ----------------------------------------------------------------------------------

USER_TEMPLATE = """\
# custom template
global
    default-path config

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend http
    bind {{ http_bind }}
    http-request set-var(txn.route) path,concat(/),map_beg({{ paths_map }})
    use_backend %[var(txn.route),field(1,|)] if { var(txn.route) -m found }
{% for backend in backends %}

backend {{ backend.name }}
    balance {{ backend.algorithm }}
{% for server in backend.servers %}
    server {{ server.name }} {{ server.endpoint }}
{% endfor %}
{% endfor %}
"""


def test_user_template_replaces_builtin(tmp_path: Path) -> None:
    model = one_backend(http_backend("http_default_web_80", srv("10.0.0.1"), srv("fd00::1")))
    settings = Settings(template=USER_TEMPLATE, http_port=8000)
    check_template(USER_TEMPLATE)
    rendered = render_checked(model, settings, tmp_path)
    assert rendered.config == (
        "# custom template\n"
        "global\n"
        "    default-path config\n"
        "\n"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 5s\n"
        "    timeout client 30s\n"
        "    timeout server 30s\n"
        "\n"
        "frontend http\n"
        "    bind :8000\n"
        "    http-request set-var(txn.route) path,concat(/),map_beg(paths.map)\n"
        "    use_backend %[var(txn.route),field(1,|)] if { var(txn.route) -m found }\n"
        "\n"
        "backend http_default_web_80\n"
        "    balance roundrobin\n"
        "    server s_10_0_0_1_8080 10.0.0.1:8080\n"
        "    server s_fd00__1_8080 [fd00::1]:8080\n"
    )
    # the map files come with any template
    assert rendered.files[PATHS_MAP] == "/web/ http_default_web_80|0|s\n"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% for x in %}\n{% endfor %}", "template line 1:"),
        ("global\n{% if syslog %}\n  log stdout\n", "template line 3:"),
        ("{{ backends | nosuchfilter }}", "template line 1: No filter named 'nosuchfilter'"),
        ("line\n{{ }}", "template line 2:"),
    ],
    ids=["empty-for", "unclosed-if", "unknown-filter", "empty-expression"],
)
def test_template_syntax_error(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as found:
        check_template(source)
    assert str(found.value).startswith(message)
    with pytest.raises(TemplateError) as again:
        render(LoadBalancer(), Settings(template=source))
    assert str(again.value).startswith(message)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ no_such_variable }}", "'no_such_variable' is undefined"),
        ("{{ backends[0].name }}", "template: list object has no element 0"),
        ("{% for b in backends %}{{ b.nope }}{% endfor %}", "has no attribute 'nope'"),
    ],
    ids=["undefined-variable", "index-out-of-range", "undefined-attribute"],
)
def test_template_render_error(source: str, message: str) -> None:
    check_template(source)  # compiles
    model = LoadBalancer(backends=(http_backend(),)) if "b.nope" in source else LoadBalancer()
    with pytest.raises(TemplateError, match=re.escape(message)):
        render(model, Settings(template=source))


@pytest.mark.parametrize(
    "source", ["{{ 1 // 0 }}", '{% include "other.j2" %}'], ids=["zero-division", "include"]
)
def test_template_runtime_exception_is_template_error(source: str) -> None:
    with pytest.raises(TemplateError):
        render(LoadBalancer(), Settings(template=source))


def test_template_context_variables() -> None:
    settings = Settings(error_page="x", stats_user="a", stats_password="b", bind_address="::1")
    model = LoadBalancer(
        backends=(
            http_backend("h", srv("10.0.0.1"), strip=("/web",), stickiness=Stickiness.COOKIE),
            tcp_backend("t"),
        ),
        tcp_frontends=(TcpFrontend(3306, "t"),),
    )
    context = template_context(model, settings)
    assert set(context) == {
        "runtime_socket",
        "timeout_tunnel",
        "hard_stop_after",
        "server_state_file",
        "syslog",
        "stats_auth",
        "stats_bind",
        "http_bind",
        "trusted_proxies",
        "paths_map",
        "hosts_map",
        "retry_on",
        "idempotent_methods",
        "server_options",
        "wildcard_hosts",
        "host_routes",
        "default_return_code",
        "error_page",
        "backends",
        "tcp_frontends",
        "https",
        "resolvers",
        "ingress",
    }
    assert context["https"] is None  # nothing asks for TLS
    assert context["resolvers"] is None  # no external name
    assert context["stats_bind"] == "[::1]:1936"
    assert context["http_bind"] == "[::1]:80"
    assert context["error_page"] == ERROR_PAGE
    assert context["tcp_frontends"] == [
        {"port": 3306, "backend": "t", "bind": "[::1]:3306", "allowed_sources": ""}
    ]
    assert context["backends"][0] == {
        "name": "h",
        "mode": "http",
        "algorithm": "roundrobin",
        "stickiness": "cookie",
        "stickiness_timeout": 10800,
        "stick_table_type": "ip",
        "strip_regex": "^/(?:web)(?:/|$)(.*)",
        "prefix_regex": "^(/(?:web))(?:/|$).*",
        "servers": [{"name": "s_10_0_0_1_8080", "endpoint": "10.0.0.1:8080", "backup": False}],
        "all_backups": False,
        "cookie": True,
        "ssl_redirect": False,
        "service_route": "s",
        "hsts_max_age": None,
        "timeout_server": None,
        "timeout_connect": None,
        "resolve": "",
        "proto": "",
        "allowed_sources": "",
        "tls": "",
        "tls_ca_file": None,
    }
    assert context["trusted_proxies"] == ""
    assert context["backends"][1]["mode"] == "tcp"
    assert context["backends"][1]["strip_regex"] == ""


def test_rendered_config_property() -> None:
    rendered = Rendered(files={CONFIG_FILE: "x", PATHS_MAP: ""})
    assert rendered.config == "x"


def test_check_helper_reports_haproxy_errors(tmp_path: Path) -> None:
    """The helper itself: a broken config must fail, or every check above means nothing."""
    broken = Rendered(files={CONFIG_FILE: "global\n    no-such-keyword\n"})
    result = haproxy_check(broken, tmp_path, {})
    assert result.returncode != 0
    assert "no-such-keyword" in result.stdout + result.stderr
    with pytest.raises(AssertionError, match="haproxy -c failed"):
        assert_haproxy_accepts(broken, Settings(run_dir=tmp_path))


@pytest.mark.parametrize(
    ("routes", "lookups"),
    [
        pytest.param(
            (HttpRoute("/web", "b", strip=True),),
            ["    http-request set-var(txn.route) path,concat(/),map_beg(paths.map)"],
            id="paths-only-one-lookup",
        ),
        pytest.param(
            (HttpRoute("/web", "b", strip=True), HttpRoute("/", "b", host="a.example.com")),
            [
                "    http-request set-var(txn.lookup_path) path,concat(/)",
                "    http-request set-var(txn.route) req.hdr(host),field(1,:),lower,"
                "concat(,txn.lookup_path),map_beg(hosts.map) if { req.hdr(host) -m found }",
                "    http-request set-var(txn.route) var(txn.lookup_path),map_beg(paths.map)"
                " unless { var(txn.route) -m found }",
            ],
            id="host-then-path",
        ),
    ],
)
def test_host_lookup_only_when_some_service_routes_by_host(
    tmp_path: Path, routes: tuple[HttpRoute, ...], lookups: list[str]
) -> None:
    model = LoadBalancer(backends=(http_backend("b", strip=("/web",)),), http_routes=routes)
    frontend = block(render_checked(model, Settings(), tmp_path).config, "frontend http")
    assert [line for line in frontend.splitlines() if "set-var" in line] == lookups


# --- Forwarding headers and timeouts --------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [(1, "1ms"), (1500, "1500ms"), (2000, "2s"), (90_000, "90s"), (120_000, "2m"),
     (3_600_000, "1h"), (86_400_000, "24h")],
)  # fmt: skip
def test_haproxy_time_uses_the_largest_exact_unit(ms: int, text: str) -> None:
    assert haproxy_time(ms) == text


def test_backend_timeouts(tmp_path: Path) -> None:
    timed = dataclasses.replace(http_backend(), timeout_server_ms=2000, timeout_connect_ms=1500)
    tcp = dataclasses.replace(tcp_backend("tcp_default_mysql_3306"), timeout_server_ms=3_600_000)
    model = LoadBalancer(backends=(timed, tcp), tcp_frontends=(TcpFrontend(3306, tcp.name),))
    config = render_checked(model, Settings(), tmp_path).config
    assert block(config, "backend http_default_web_80") == (
        "backend http_default_web_80\n"
        "    mode http\n"
        "    balance roundrobin\n"
        "    timeout connect 1500ms\n"
        "    timeout server 2s\n"
    )
    assert "    timeout server 1h\n" in block(config, "backend tcp_default_mysql_3306")
    assert "timeout" not in block(render(one_backend(http_backend()), Settings()).config,
                                  "backend http_default_web_80")  # fmt: skip


def test_prefix_regex_captures_the_prefix_that_strip_regex_removes() -> None:
    prefixes = ("/default/web:8080", "/web:8080")
    found = re.match(prefix_regex(prefixes), "/default/web:8080/a/b")
    assert found is not None and found.group(1) == "/default/web:8080"
    found = re.match(prefix_regex(prefixes), "/web:8080")
    assert found is not None and found.group(1) == "/web:8080"
    assert re.match(prefix_regex(prefixes), "/web:80801") is None


@pytest.mark.parametrize("trusted", [(), ("10.0.0.0/8", "2001:db8::/32")], ids=["none", "cidrs"])
def test_forwarding_headers_in_both_http_frontends(
    tmp_path: Path, trusted: tuple[str, ...]
) -> None:
    """Client-sent X-Forwarded-* go (unless trusted) before ours are set; the
    terminating frontend says https."""
    cert = tmp_path / "default.pem"
    issued = trustme.CA().issue_cert("default.example")
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    backend = http_backend(strip=("/web",))
    model = dataclasses.replace(
        one_backend(backend), https_routes=(HttpRoute("/web", backend.name, strip=True),)
    )
    settings = Settings(trusted_proxies=trusted, ssl_cert=cert)
    config = render_checked(model, settings, tmp_path).config
    unless = " unless trusted_proxy" if trusted else ""
    for frontend, proto in (("frontend http", "http"), ("frontend https_terminated", "https")):
        lines = [line.strip() for line in block(config, frontend).splitlines()]
        at = lines.index("option forwardfor")
        expected = [
            "option forwardfor",
            *(["acl trusted_proxy src 10.0.0.0/8 2001:db8::/32"] if trusted else []),
            f"http-request del-header X-Forwarded-For{unless}",
            f"http-request del-header X-Forwarded-Proto{unless}",
            f"http-request del-header X-Forwarded-Host{unless}",
            f"http-request del-header X-Forwarded-Prefix{unless}",
            f"http-request set-header X-Forwarded-Proto {proto}"
            " unless { req.hdr(X-Forwarded-Proto) -m found }",
            "http-request set-header X-Forwarded-Host %[req.hdr(host)]"
            " if { req.hdr(host) -m found } !{ req.hdr(X-Forwarded-Host) -m found }",
        ]
        assert lines[at : at + len(expected)] == expected, frontend
        # Before any routing: a backend's rules come after every frontend rule anyway.
        assert all("txn.route" not in line for line in lines[:at])


def test_passive_health_off_keeps_the_retries_and_drops_the_check(tmp_path: Path) -> None:
    model = one_backend(http_backend("http_default_web_80", srv("10.0.0.1")))
    config = render_checked(model, Settings(passive_health=False), tmp_path).config
    assert "    server s_10_0_0_1_8080 10.0.0.1:8080\n" in config
    assert " check" not in config
    assert "    retries 3\n    option redispatch 1\n" in config


def test_h2c_backend_servers_speak_http2(tmp_path: Path) -> None:
    """`proto h2` on the server line (so `add server` gets it too), HTTP backends only."""
    h2 = dataclasses.replace(
        http_backend("http_default_web_80", srv("10.0.0.1")), protocol=Protocol.H2C
    )
    tcp = dataclasses.replace(
        tcp_backend("tcp_default_mysql_3306", srv("10.0.0.2", 3306)), protocol=Protocol.H2C
    )
    model = LoadBalancer(
        backends=(h2, tcp),
        http_routes=(HttpRoute("/web", h2.name),),
        tcp_frontends=(TcpFrontend(3306, tcp.name),),
    )
    config = render_checked(model, Settings(), tmp_path).config
    assert " proto h2 " in block(config, "backend http_default_web_80")
    assert "proto" not in block(config, "backend tcp_default_mysql_3306")
    web = http_backend("http_default_web_80", srv("10.0.0.1"))
    plain = render(one_backend(web), Settings()).config
    assert "proto" not in block(plain, "backend http_default_web_80")
    assert "s_10_0_0_1_8080" in block(plain, "backend http_default_web_80")
    h2_only = render(one_backend(h2), Settings(passive_health=False)).config
    assert block(h2_only, "backend http_default_web_80").rstrip().endswith(" proto h2")


def test_tls_backend_servers_speak_tls_verified_or_not(tmp_path: Path) -> None:
    """`ssl` with `verify required ca-file` (--backend-ca) or `verify none`, an SNI, and
    `alpn h2` for HTTP/2 over TLS: on the server line, so `add server` gets them too; the
    CA file is also loaded by a `default-server` line, for a backend with no server yet
    (`add server` cannot load a file HAProxy has not read)."""
    ca = trustme.CA()
    ca_file = tmp_path / "pods-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    https = dataclasses.replace(
        http_backend("http_default_web_80", srv("10.0.0.1")), protocol=Protocol.HTTPS
    )
    named = dataclasses.replace(
        http_backend("http_default_api_80", srv("10.0.0.2")),
        protocol=Protocol.H2,
        tls_server_name="api.example",
    )
    empty = dataclasses.replace(http_backend("http_default_none_80"), protocol=Protocol.H2)
    model = LoadBalancer(
        backends=(named, empty, https),
        http_routes=tuple(HttpRoute(f"/{b.name}", b.name) for b in (named, empty, https)),
    )
    verified = render_checked(model, Settings(backend_ca=ca_file), tmp_path / "v").config
    web = block(verified, "backend http_default_web_80")
    assert f" ssl verify required ca-file {ca_file} sni req.hdr(host),field(1,:) check " in web
    api = block(verified, "backend http_default_api_80")
    assert f" ssl verify required ca-file {ca_file} sni str(api.example) alpn h2 check " in api
    for backend in ("web", "api", "none"):
        section = block(verified, f"backend http_default_{backend}_80")
        assert f"    default-server ca-file {ca_file}\n" in section
    unverified = render_checked(model, Settings(), tmp_path / "u").config
    assert " ssl verify none sni req.hdr(host),field(1,:) check " in unverified
    assert " ssl verify none sni str(api.example) alpn h2 check " in unverified
    assert "ca-file" not in unverified and "default-server" not in unverified
    # Clear-text backends get none of it.
    plain = render(one_backend(http_backend("http_default_web_80", srv("10.0.0.1"))),
                   Settings(backend_ca=ca_file)).config  # fmt: skip
    assert " ssl" not in plain and "ca-file" not in plain


def test_timeout_tunnel_and_hard_stop_after(tmp_path: Path) -> None:
    model = one_backend(http_backend("http_default_web_80", srv("10.0.0.1")))
    default = render_checked(model, Settings(), tmp_path / "d").config
    assert "    timeout tunnel 1h\n" in block(default, "defaults")
    assert "hard-stop-after" not in default
    settings = Settings(timeout_tunnel_ms=90_000, hard_stop_after_ms=1_800_000)
    config = render_checked(model, settings, tmp_path / "s").config
    assert "    timeout tunnel 90s\n" in block(config, "defaults")
    assert "    hard-stop-after 30m\n" in block(config, "global")
