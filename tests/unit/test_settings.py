"""Settings: flag parsers (flag_values.py), the --cfg file (JSON and YAML) and the stats
credentials (config.py), and the pure core's independence from both file formats.

Every mistake is a SettingsError whose message is one line naming the flag or file.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from service_loadbalancer.config import LoadBalancerConfig, load_config_file, stats_credentials
from service_loadbalancer.flag_values import (
    parse_namespaces,
    parse_port,
    parse_service_ref,
    parse_tcp_services,
    parse_trusted_proxies,
)
from service_loadbalancer.model import Algorithm
from service_loadbalancer.settings import (
    ENV_STATS_PASSWORD,
    ENV_STATS_PASSWORD_FILE,
    ENV_STATS_USER,
    ServiceRef,
    Settings,
    SettingsError,
    TcpService,
)


def one_line(err: pytest.ExceptionInfo[SettingsError]) -> str:
    message = str(err.value)
    assert message
    assert "\n" not in message
    assert "\r" not in message
    return message


# --- parse_trusted_proxies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        (" , ", ()),
        ("10.0.0.0/8", ("10.0.0.0/8",)),
        (
            " 10.0.0.0/8 ,192.168.1.7, 2001:DB8::/32",
            ("10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"),
        ),
        ("10.0.0.0/8,10.0.0.0/8", ("10.0.0.0/8",)),
        ("0.0.0.0/0", ("0.0.0.0/0",)),
        ("::1", ("::1/128",)),
    ],
    ids=["empty", "blanks", "one", "mixed-normalised", "duplicate", "everyone", "v6-host"],
)
def test_parse_trusted_proxies(text: str, expected: tuple[str, ...]) -> None:
    assert parse_trusted_proxies(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10.0.0.0/33", "'10.0.0.0/33' is not a CIDR"),
        ("10.0.0.1/8", "'10.0.0.1/8' is not a CIDR (host bits set)"),
        ("10.0.0.0/8 192.168.0.0/16", "is not a CIDR"),
        ("10.0.0.0/8;", "is not a CIDR"),
        ("example.com", "'example.com' is not a CIDR"),
        ("10.0.0.0/8\n    acl x src 0.0.0.0/0", "is not a CIDR"),
        ("fe80::1%eth0", "is not a CIDR"),
        ("10.0.0.0/\u0668", "is not a CIDR"),
    ],
    ids=[
        "prefix-too-long",
        "host-bits",
        "space",
        "semicolon",
        "name",
        "newline",
        "zone",
        "non-ascii",
    ],
)
def test_parse_trusted_proxies_errors(text: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_trusted_proxies(text)
    message = one_line(err)
    assert message.startswith("--trusted-proxies: ")
    assert fragment in message


# --- parse_tcp_services -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "mysql:3306,db/pg:5432",
            (
                TcpService(ServiceRef("mysql"), 3306),
                TcpService(ServiceRef("pg", "db"), 5432),
            ),
        ),
        ("", ()),
        (" , ,", ()),
        (
            " mysql:3306 , ,nginxsvc:443,",
            (TcpService(ServiceRef("mysql"), 3306), TcpService(ServiceRef("nginxsvc"), 443)),
        ),
        ("a:1,a:65535", (TcpService(ServiceRef("a"), 1), TcpService(ServiceRef("a"), 65535))),
        ("kubernetes:443", (TcpService(ServiceRef("kubernetes"), 443),)),
    ],
    ids=["original-example", "empty", "only-separators", "spaces-and-empties", "port-range", "api"],
)
def test_parse_tcp_services(text: str, expected: tuple[TcpService, ...]) -> None:
    assert parse_tcp_services(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("mysql", "'mysql' is not name:port"),
        (":3306", "':3306' is not name:port"),
        ("mysql:", "'' is not a port number"),
        ("mysql:abc", "'abc' is not a port number"),
        ("mysql:0", "0 is not a port number (1-65535)"),
        ("mysql:65536", "65536 is not a port number (1-65535)"),
        ("mysql:-1", "'-1' is not a port number"),
        ("My_SQL:3306", "'My_SQL' is not a service name or namespace/name"),
        ("a/b/c:1", "'a/b/c' is not a service name"),
        ("/mysql:1", "'/mysql' is not a service name"),
        ("db/:1", "'db/' is not a service name"),
        ("mysql:33:06", "'mysql:33' is not a service name"),
        ("ok:1,bad", "'bad' is not name:port"),
        ("mysql:3306\nx", "is not a port number"),
    ],
    ids=[
        "no-port",
        "no-name",
        "empty-port",
        "port-word",
        "port-zero",
        "port-too-big",
        "port-negative",
        "bad-name",
        "too-many-slashes",
        "empty-namespace-part",
        "empty-name-part",
        "two-colons",
        "second-item",
        "newline",
    ],
)
def test_parse_tcp_services_errors(text: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_tcp_services(text)
    message = one_line(err)
    assert message.startswith("--tcp-services: ")
    assert fragment in message


# --- parse_namespaces -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b", ("a", "b")),
        (" b , a ,a,", ("a", "b")),
        ("", ()),
        ("kube-system", ("kube-system",)),
        ("a" * 63, ("a" * 63,)),
    ],
    ids=["two", "sorted-deduplicated", "empty", "hyphen", "max-length"],
)
def test_parse_namespaces(text: str, expected: tuple[str, ...]) -> None:
    assert parse_namespaces(text) == expected


@pytest.mark.parametrize(
    "bad",
    ["Default", "a_b", "a/b", "-a", "a-", "a" * 64, "a b", "\u00e9"],
    ids=[
        "upper",
        "underscore",
        "slash",
        "leading-hyphen",
        "trailing-hyphen",
        "too-long",
        "space",
        "unicode",
    ],
)
def test_parse_namespaces_errors(bad: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_namespaces(f"ok,{bad}")
    assert one_line(err) == f"--namespace: {bad!r} is not a namespace name"


# --- parse_service_ref ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web", ServiceRef("web")),
        ("team/web", ServiceRef("web", "team")),
        ("a1-b2", ServiceRef("a1-b2")),
    ],
    ids=["name", "namespace-name", "hyphen-digits"],
)
def test_parse_service_ref(text: str, expected: ServiceRef) -> None:
    assert parse_service_ref(text, flag="--target-service") == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    "bad",
    ["", "/", "a/", "/a", "a/b/c", "Web", "a b", "a" * 64, "a.b", "a\nb"],
    ids=[
        "empty",
        "slash",
        "empty-name",
        "empty-namespace",
        "three-parts",
        "upper",
        "space",
        "too-long",
        "dot",
        "newline-inside",
    ],
)
def test_parse_service_ref_errors(bad: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_service_ref(bad, flag="--target-service")
    assert one_line(err) == f"--target-service: {bad!r} is not a service name or namespace/name"


@pytest.mark.parametrize(
    "bad", ["web\n", "team/web\n", "team\n/web"], ids=["name", "ns-name", "ns"]
)
def test_parse_service_ref_trailing_newline(bad: str) -> None:
    with pytest.raises(SettingsError):
        parse_service_ref(bad, flag="--target-service")


@pytest.mark.parametrize(
    ("ref", "namespace", "name", "matches"),
    [
        (ServiceRef("web"), "default", "web", True),
        (ServiceRef("web"), "team", "web", True),
        (ServiceRef("web", "team"), "team", "web", True),
        (ServiceRef("web", "team"), "default", "web", False),
        (ServiceRef("web"), "default", "api", False),
    ],
    ids=["any-ns-default", "any-ns-other", "same-ns", "other-ns", "other-name"],
)
def test_service_ref_matches(ref: ServiceRef, namespace: str, name: str, matches: bool) -> None:
    assert ref.matches(namespace, name) is matches


# --- parse_port -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "port"), [("80", 80), ("1", 1), ("65535", 65535)])
def test_parse_port(text: str, port: int) -> None:
    assert parse_port(text, flag="--http-port") == port


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "--http-port: 0 is not a port number (1-65535)"),
        ("65536", "--http-port: 65536 is not a port number (1-65535)"),
        ("-80", "--http-port: '-80' is not a port number"),
        ("http", "--http-port: 'http' is not a port number"),
        ("", "--http-port: '' is not a port number"),
        ("80.0", "--http-port: '80.0' is not a port number"),
        ("0x50", "--http-port: '0x50' is not a port number"),
        ("8\n0", "--http-port: '8\\n0' is not a port number"),
    ],
    ids=["zero", "too-big", "negative", "word", "empty", "float", "hex", "newline"],
)
def test_parse_port_errors(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_port(text, flag="--http-port")
    assert one_line(err) == message


@pytest.mark.parametrize("text", ["8_0", "\u0668\u0660"], ids=["underscore", "arabic-indic"])
def test_parse_port_rejects_non_decimal_ascii(text: str) -> None:
    with pytest.raises(SettingsError):
        parse_port(text, flag="--http-port")


# --- load_config_file -----------------------------------------------------------------------

ORIGINAL_JSON = {
    "name": "haproxy",
    "config": "/etc/haproxy/haproxy.cfg",
    "template": "template.cfg",
    "algorithm": "roundrobin",
    "startSyslog": False,
    "reloadCmd": "./haproxy_reload",
}

ORIGINAL_YAML = """\
name: haproxy
config: /etc/haproxy/haproxy.cfg
template: template.cfg
algorithm: roundrobin
startSyslog: false
reloadCmd: ./haproxy_reload
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("loadbalancer.json", json.dumps(ORIGINAL_JSON, indent=2)),
        ("loadbalancer.yaml", ORIGINAL_YAML),
        ("loadbalancer.yml", ORIGINAL_YAML),
        ("loadbalancer.cfg", json.dumps(ORIGINAL_JSON)),  # YAML reads JSON too
    ],
    ids=["json", "yaml", "yml", "json-without-suffix"],
)
def test_load_original_keys(tmp_path: Path, name: str, text: str) -> None:
    cfg = load_config_file(write(tmp_path, name, text))
    assert cfg == LoadBalancerConfig(
        name="haproxy",
        config=Path("/etc/haproxy/haproxy.cfg"),
        template=Path("template.cfg"),
        algorithm=Algorithm.ROUNDROBIN,
        startSyslog=False,
        reloadCmd="./haproxy_reload",
    )


def test_load_our_keys_yaml(tmp_path: Path) -> None:
    cfg = load_config_file(
        write(
            tmp_path,
            "lb.yaml",
            "algorithm: leastconn\nstartSyslog: true\nstatsUser: ops\n"
            "statsPassword: pw\nstatsPasswordFile: /run/secrets/pw\nrunDir: /run/slb\n",
        )
    )
    assert cfg.algorithm is Algorithm.LEASTCONN
    assert cfg.startSyslog is True
    assert cfg.statsUser == "ops"
    assert cfg.statsPassword == "pw"
    assert cfg.statsPasswordFile == Path("/run/secrets/pw")
    assert cfg.runDir == Path("/run/slb")
    assert "statsPassword=" not in repr(cfg)


@pytest.mark.parametrize(
    "text",
    ["", "# only a comment\n", "null\n", "{}"],
    ids=["empty", "comment", "null", "empty-map"],
)
def test_load_empty_file_gives_defaults(tmp_path: Path, text: str) -> None:
    assert load_config_file(write(tmp_path, "lb.yaml", text)) == LoadBalancerConfig()


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("lb.json", '{"name": "haproxy", "extra": 1}', "extra: Extra inputs are not permitted"),
        ("lb.yaml", "reloadcmd: x\n", "reloadcmd: Extra inputs are not permitted"),
        ("lb.yaml", "algorithm: random\n", "algorithm: Input should be 'roundrobin'"),
        ("lb.json", '{"algorithm": "ROUNDROBIN"}', "algorithm: Input should be"),
        ("lb.json", '{"name": "nginx"}', "name: Input should be 'haproxy'"),
        ("lb.yaml", "name: HAProxy\n", "name: Input should be 'haproxy'"),
        ("lb.yaml", "startSyslog: maybe\n", "startSyslog: Input should be a valid boolean"),
        ("lb.yaml", "statsUser: 'a b'\n", "statsUser: Value error, must be 1-64 characters"),
        ("lb.yaml", "- a\n- b\n", "must be a mapping of keys to values"),
        ("lb.json", "[1]", "must be a mapping of keys to values"),
        ("lb.yaml", "just a string\n", "must be a mapping of keys to values"),
        ("lb.json", '{"name": ', "not valid JSON or YAML"),
        ("lb.json", "name: haproxy\n", "not valid JSON or YAML"),
        ("lb.yaml", "a: [1,\nb: 2\n  c: 3\n", "not valid JSON or YAML"),
    ],
    ids=[
        "unknown-key-json",
        "unknown-key-case",
        "bad-algorithm",
        "bad-algorithm-case",
        "name-nginx",
        "name-case",
        "bad-bool",
        "bad-stats-user",
        "yaml-list",
        "json-list",
        "scalar",
        "truncated-json",
        "yaml-in-json-file",
        "broken-yaml",
    ],
)
def test_load_config_errors(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(SettingsError) as err:
        load_config_file(path)
    message = one_line(err)
    assert message.startswith(f"--cfg {path}: ")
    assert fragment in message


@pytest.mark.parametrize("kind", ["missing", "directory", "not-utf8"])
def test_load_config_unreadable(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "lb.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SettingsError) as err:
        load_config_file(path)
    assert one_line(err).startswith(f"--cfg {path}: cannot read: ")


# --- stats_credentials ------------------------------------------------------------------------


def cfg(**values: object) -> LoadBalancerConfig:
    return LoadBalancerConfig.model_validate(values)


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        (cfg(), {}, (None, None)),
        (cfg(statsUser="fu", statsPassword="fp"), {}, ("fu", "fp")),
        (
            cfg(statsUser="fu", statsPassword="fp"),
            {ENV_STATS_USER: "eu", ENV_STATS_PASSWORD: "ep"},
            ("eu", "ep"),
        ),
        (cfg(statsUser="fu", statsPassword="fp"), {ENV_STATS_USER: "eu"}, ("eu", "fp")),
        (cfg(statsUser="fu", statsPassword="fp"), {ENV_STATS_PASSWORD: "ep"}, ("fu", "ep")),
        (cfg(), {ENV_STATS_USER: "eu", ENV_STATS_PASSWORD: "ep"}, ("eu", "ep")),
        (
            cfg(statsUser="fu", statsPassword="fp"),
            {ENV_STATS_USER: "", ENV_STATS_PASSWORD: ""},
            ("fu", "fp"),
        ),
        (
            cfg(),
            {ENV_STATS_USER: "a.b_c-D9", ENV_STATS_PASSWORD: "!#$%&()*+,-./:;<=>?@[]^_`{|}~"},
            ("a.b_c-D9", "!#$%&()*+,-./:;<=>?@[]^_`{|}~"),
        ),
    ],
    ids=[
        "none",
        "file",
        "env-beats-file",
        "env-user-file-password",
        "file-user-env-password",
        "env-only",
        "empty-env-falls-back",
        "character-sets",
    ],
)
def test_stats_credentials_precedence(
    config: LoadBalancerConfig, env: dict[str, str], expected: tuple[str | None, str | None]
) -> None:
    assert stats_credentials(cfg=config, env=env) == expected


@pytest.mark.parametrize("source", ["env", "cfg"])
def test_stats_password_file(tmp_path: Path, source: str) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n", encoding="utf-8")
    if source == "env":
        result = stats_credentials(
            cfg=cfg(statsUser="u"), env={ENV_STATS_PASSWORD_FILE: str(secret)}
        )
    else:
        result = stats_credentials(cfg=cfg(statsUser="u", statsPasswordFile=str(secret)), env={})
    assert result == ("u", "from-file")


def test_stats_password_beats_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file", encoding="utf-8")
    result = stats_credentials(
        cfg=cfg(statsUser="u", statsPasswordFile=str(secret)),
        env={ENV_STATS_PASSWORD: "from-env"},
    )
    assert result == ("u", "from-env")


def test_env_password_file_beats_cfg_password(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-env-file", encoding="utf-8")
    result = stats_credentials(
        cfg=cfg(statsUser="u", statsPassword="from-cfg"),
        env={ENV_STATS_PASSWORD_FILE: str(secret)},
    )
    assert result == ("u", "from-env-file")


@pytest.mark.parametrize(
    ("config", "env", "fragment"),
    [
        (cfg(statsUser="u"), {}, "a user needs a password and a password needs a user"),
        (cfg(statsPassword="p"), {}, "a user needs a password"),
        (cfg(), {ENV_STATS_USER: "u"}, "a user needs a password"),
        (cfg(), {ENV_STATS_PASSWORD: "p"}, "a user needs a password"),
        (cfg(), {ENV_STATS_USER: "a b", ENV_STATS_PASSWORD: "p"}, "stats user: must be 1-64"),
        (cfg(), {ENV_STATS_USER: "u" * 65, ENV_STATS_PASSWORD: "p"}, "stats user: must be 1-64"),
        (cfg(), {ENV_STATS_USER: "u", ENV_STATS_PASSWORD: "a b"}, "stats password: must be"),
        (cfg(), {ENV_STATS_USER: "u", ENV_STATS_PASSWORD: 'a"b'}, "stats password: must be"),
        (cfg(), {ENV_STATS_USER: "u", ENV_STATS_PASSWORD: "a'b"}, "stats password: must be"),
        (cfg(), {ENV_STATS_USER: "u", ENV_STATS_PASSWORD: "p" * 129}, "stats password: must be"),
        (cfg(), {ENV_STATS_USER: "u", ENV_STATS_PASSWORD: "p\u00e9"}, "stats password: must be"),
        (cfg(), {ENV_STATS_USER: "u", ENV_STATS_PASSWORD: "a\nb"}, "stats password: must be"),
    ],
    ids=[
        "user-without-password",
        "password-without-user",
        "env-user-only",
        "env-password-only",
        "user-space",
        "user-too-long",
        "password-space",
        "password-double-quote",
        "password-single-quote",
        "password-too-long",
        "password-unicode",
        "password-newline-inside",
    ],
)
def test_stats_credentials_errors(
    config: LoadBalancerConfig, env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(SettingsError) as err:
        stats_credentials(cfg=config, env=env)
    message = one_line(err)
    assert fragment in message
    if "password:" in fragment:  # the password is never echoed
        assert env[ENV_STATS_PASSWORD] not in message


@pytest.mark.parametrize("content", ["", "\n", "has space"], ids=["empty", "newline", "space"])
def test_stats_password_file_with_bad_content(tmp_path: Path, content: str) -> None:
    secret = tmp_path / "password"
    secret.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        stats_credentials(cfg=cfg(statsUser="u", statsPasswordFile=str(secret)), env={})
    assert one_line(err).startswith("stats password: must be")


def test_stats_password_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SettingsError) as err:
        stats_credentials(cfg=cfg(statsUser="u"), env={ENV_STATS_PASSWORD_FILE: str(missing)})
    assert one_line(err).startswith(f"stats password file {missing}: ")


@pytest.mark.parametrize(
    "env",
    [
        {ENV_STATS_USER: "admin\n", ENV_STATS_PASSWORD: "pw"},
        {ENV_STATS_USER: "admin", ENV_STATS_PASSWORD: "pw\n"},
    ],
    ids=["user", "password"],
)
def test_stats_credentials_trailing_newline_rejected(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        stats_credentials(cfg=cfg(), env=env)


# --- Settings -----------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = Settings()
    assert (settings.http_port, settings.stats_port, settings.healthz_port) == (80, 1936, 8081)
    assert settings.balance_algorithm is Algorithm.ROUNDROBIN
    assert settings.default_return_code == 404
    assert settings.stats_auth is False
    assert settings.haproxy_env() == {}


def test_config_path_follows_the_run_dir() -> None:
    """The README's default: `<run-dir>/haproxy.cfg`, also for a copy with another run_dir."""
    assert Settings().config_path == Path("/var/run/service-loadbalancer/haproxy.cfg")
    assert Settings(run_dir=Path("/run/slb")).config_path == Path("/run/slb/haproxy.cfg")
    moved = dataclasses.replace(Settings(), run_dir=Path("/tmp/x"))
    assert moved.config_path == Path("/tmp/x/haproxy.cfg")


def test_config_path_given_stays_put() -> None:
    settings = Settings(haproxy_config=Path("/etc/haproxy/haproxy.cfg"))
    assert dataclasses.replace(settings, run_dir=Path("/tmp/x")).config_path == Path(
        "/etc/haproxy/haproxy.cfg"
    )


@pytest.mark.parametrize(
    ("user", "password", "auth"),
    [("u", "p", True), ("u", None, False), (None, "p", False), (None, None, False)],
    ids=["both", "user-only", "password-only", "neither"],
)
def test_settings_stats_auth(user: str | None, password: str | None, auth: bool) -> None:
    settings = Settings(stats_user=user, stats_password=password)
    assert settings.stats_auth is auth
    assert bool(settings.haproxy_env()) is auth


def test_haproxy_env_carries_the_template_variables() -> None:
    settings = Settings(stats_user="ops", stats_password="pw")
    assert settings.haproxy_env() == {ENV_STATS_USER: "ops", ENV_STATS_PASSWORD: "pw"}


def test_settings_frozen_and_password_not_in_repr() -> None:
    settings = Settings(stats_user="u", stats_password="hunter2")
    assert "hunter2" not in repr(settings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.http_port = 1  # type: ignore[misc]


# --- the pure core ------------------------------------------------------------------------------

PURE_CORE = (
    "service_loadbalancer.settings",
    "service_loadbalancer.model",
    "service_loadbalancer.annotations",
    "service_loadbalancer.translate",
    "service_loadbalancer.translation_run",
    "service_loadbalancer.endpoints",
    "service_loadbalancer.routes",
    "service_loadbalancer.https",
    "service_loadbalancer.haproxy.render",
    "service_loadbalancer.haproxy.plan",
)


def test_pure_core_imports_neither_pydantic_nor_yaml() -> None:
    """Reading files (pydantic for the --cfg file, yaml for it and the manifests) is
    config.py's and the sources' business; the core only ever sees their values. A fresh
    interpreter, because this one has long imported both."""
    code = (
        f"import sys\nimport {', '.join(PURE_CORE)}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'yaml'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
