"""Settings: one frozen object built from flags, the environment and the --cfg file.

The --cfg file keeps the keys of the original controller's loadbalancer.json
(`name`, `config`, `template`, `algorithm`, `startSyslog`, `reloadCmd`) so that its
users can bring theirs along, and adds the stats credentials and the run directory.
It is validated with pydantic; every mistake becomes one `SettingsError` line.

Precedence: an explicit flag, then the environment, then the file, then the default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service_loadbalancer.kube.names import DNS1123_LABEL
from service_loadbalancer.model import Algorithm

# `\Z`, not `$`: `$` also matches before a trailing newline, which would let
# "web\n" through into the config.
STATS_USER_RE = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
#: The password reaches HAProxy through its environment, never the config text, but
#: HAProxy still parses it: keep it to printable ASCII without blanks or quotes.
STATS_PASSWORD_RE = re.compile(r"[!#-&(-~]{1,128}\Z")

ENV_STATS_USER = "SLB_STATS_USER"
ENV_STATS_PASSWORD = "SLB_STATS_PASSWORD"
ENV_STATS_PASSWORD_FILE = "SLB_STATS_PASSWORD_FILE"


class SettingsError(ValueError):
    """A flag, variable or config file value that cannot be used; one line, no traceback."""


@dataclass(frozen=True, slots=True, order=True)
class ServiceRef:
    """A Service named on the command line: `name` or `namespace/name`."""

    name: str
    namespace: str | None = None

    def matches(self, namespace: str, name: str) -> bool:
        return self.name == name and self.namespace in (None, namespace)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True, order=True)
class TcpService:
    """A `--tcp-services` entry: this Service port is served as TCP on the same port."""

    service: ServiceRef
    port: int


@dataclass(frozen=True, slots=True)
class Settings:
    http_port: int = 80
    stats_port: int = 1936
    healthz_port: int = 8081
    #: Address HAProxy and the status server bind to; "" means every address.
    bind_address: str = ""
    tcp_services: tuple[TcpService, ...] = ()
    target_service: ServiceRef | None = None
    forward_services: bool = False
    balance_algorithm: Algorithm = Algorithm.ROUNDROBIN
    default_return_code: int = 404
    #: The content of --error-page, read once at start.
    error_page: str | None = None
    syslog: bool = False
    #: Namespaces to serve; empty means all.
    namespaces: tuple[str, ...] = ()
    manifests: Path | None = None
    haproxy_bin: str = "haproxy"
    #: A user's Jinja2 template replacing the built-in one (its text).
    template: str | None = None
    config_path: Path = Path("/etc/haproxy/haproxy.cfg")
    run_dir: Path = Path("/var/run/service-loadbalancer")
    stats_user: str | None = None
    stats_password: str | None = field(default=None, repr=False)
    dry: bool = False
    #: Port of the HTTPS frontend (termination and SNI passthrough share it).
    https_port: int = 443
    #: The default certificate (PEM with its key), checked at start; referenced, not copied.
    ssl_cert: Path | None = None
    #: CA certificates that client certificates must chain to (verify required).
    ssl_ca_cert: Path | None = None
    #: Whether Secrets named by lb.ssl-secret may be read (and their keys written to disk).
    tls_secrets: bool = False
    #: TLS session tickets on terminated connections (off: forward secrecy, no key to rotate).
    tls_tickets: bool = False
    #: Status of the redirect to HTTPS (lb.sslRedirect).
    ssl_redirect_code: int = 308
    #: Longest wait, in seconds, for a removed endpoint's connections to end before
    #: they are cut and the server deleted.
    drain_timeout: float = 30.0

    @property
    def stats_auth(self) -> bool:
        return self.stats_user is not None and self.stats_password is not None

    def haproxy_env(self) -> dict[str, str]:
        """Environment for every haproxy invocation: secrets travel here, not in the
        config text, so a printed or leaked config holds no password."""
        if self.stats_user is None or self.stats_password is None:
            return {}
        return {ENV_STATS_USER: self.stats_user, ENV_STATS_PASSWORD: self.stats_password}


class LoadBalancerConfig(BaseModel):
    """The --cfg file (JSON or YAML), the original loadbalancer.json plus our keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Literal["haproxy"] = "haproxy"
    config: Path | None = None
    template: Path | None = None
    algorithm: Algorithm | None = None
    startSyslog: bool = False
    reloadCmd: str | None = None
    statsUser: str | None = Field(default=None)
    statsPassword: str | None = Field(default=None, repr=False)
    statsPasswordFile: Path | None = None
    runDir: Path | None = None

    @field_validator("statsUser")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not STATS_USER_RE.match(value):
            raise ValueError("must be 1-64 characters of letters, digits and . _ -")
        return value


def load_config_file(path: Path) -> LoadBalancerConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(f"--cfg {path}: cannot read: {err}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        detail = str(err).replace("\n", " ")
        raise SettingsError(f"--cfg {path}: not valid JSON or YAML: {detail}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"--cfg {path}: must be a mapping of keys to values")
    try:
        return LoadBalancerConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise SettingsError(f"--cfg {path}: {where}: {first['msg']}") from None


def parse_service_ref(text: str, *, flag: str) -> ServiceRef:
    parts = text.split("/")
    if len(parts) > 2 or not all(DNS1123_LABEL.matches(p) for p in parts):
        raise SettingsError(f"{flag}: {text!r} is not a service name or namespace/name")
    if len(parts) == 2:
        return ServiceRef(name=parts[1], namespace=parts[0])
    return ServiceRef(name=parts[0])


def port_number(text: str) -> int:
    """A port, 1-65535; ValueError says why not. The one port check, for flags and
    list entries alike."""
    # int() also takes "8_0" and non-ASCII digits; a port is plain ASCII digits.
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a port number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{port} is not a port number (1-65535)")
    return port


def parse_port(text: str, *, flag: str) -> int:
    try:
        return port_number(text)
    except ValueError as err:
        raise SettingsError(f"{flag}: {err}") from None


def parse_tcp_services(text: str) -> tuple[TcpService, ...]:
    """`mysql:3306,nginxsvc:443,db/pg:5432` as in the original controller."""
    result: list[TcpService] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        name, sep, port = item.rpartition(":")
        if not sep or not name:
            raise SettingsError(f"--tcp-services: {item!r} is not name:port")
        result.append(
            TcpService(
                service=parse_service_ref(name, flag="--tcp-services"),
                port=parse_port(port, flag="--tcp-services"),
            )
        )
    return tuple(result)


def parse_namespaces(text: str) -> tuple[str, ...]:
    names = tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))
    for name in names:
        if not DNS1123_LABEL.matches(name):
            raise SettingsError(f"--namespace: {name!r} is not a namespace name")
    return names


def stats_credentials(
    *, cfg: LoadBalancerConfig, env: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The stats user and password, from the environment first, then the --cfg file;
    a password may come from a file (a mounted Secret)."""
    user = env.get(ENV_STATS_USER) or cfg.statsUser
    password: str | None = None
    # Each source in turn, the environment first; a password file counts as its source.
    sources: tuple[tuple[str | None, str | Path | None], ...] = (
        (env.get(ENV_STATS_PASSWORD), env.get(ENV_STATS_PASSWORD_FILE)),
        (cfg.statsPassword, cfg.statsPasswordFile),
    )
    for value, path in sources:
        if value:
            password = value
        elif path:
            try:
                password = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as err:
                raise SettingsError(f"stats password file {path}: {err}") from None
        if password is not None:
            break
    if user is not None and not STATS_USER_RE.match(user):
        raise SettingsError("stats user: must be 1-64 characters of letters, digits and . _ -")
    if password is not None and not STATS_PASSWORD_RE.match(password):
        raise SettingsError(
            "stats password: must be 1-128 printable ASCII characters without blanks or quotes"
        )
    if (user is None) != (password is None):
        raise SettingsError("stats: a user needs a password and a password needs a user")
    return user, password
