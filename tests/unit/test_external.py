"""ExternalName Services: opt-in, refusals, their one server, and a config HAProxy accepts
(resolved at run time, so a name that does not resolve never fails `haproxy -c`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from factories import block, render_checked, snapshot
from objects import port, service

from service_loadbalancer.flag_values import parse_dns_servers
from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.model import Algorithm, Backend, LoadBalancer, Mode, Server
from service_loadbalancer.settings import Settings, SettingsError
from service_loadbalancer.store import Snapshot
from service_loadbalancer.translate import translate

ON = Settings(allow_external_names=True, dns_servers=("127.0.0.1:5353",))
DB = ObjectKey("Service", "default", "db")


def external(name: object, *ports: RawObject | int) -> Snapshot:
    svc = service(
        "db", *[port(p) if isinstance(p, int) else p for p in ports], type_="ExternalName"
    )
    svc["spec"].pop("selector")
    svc["spec"].pop("clusterIP")
    if name is not None:
        svc["spec"]["externalName"] = name
    return snapshot(svc)


def test_off_by_default_is_reported() -> None:
    result = translate(external("db.example.test", 5432), Settings())
    assert result.model.backends == ()
    assert [p.subject for p in result.problems] == [DB]
    assert "--allow-external-names" in result.problems[0].reason


def test_one_server_per_port_named_after_the_name() -> None:
    snap = external(
        "DB.Example.test.", port(80), port(5432, name="pg"), port(8443, name="x", target=9443)
    )
    result = translate(snap, ON)
    assert result.problems == ()
    by_port = {b.port: b for b in result.model.backends}
    assert by_port[80].servers == (Server("ext_80", "db.example.test", 80),)
    assert by_port[5432].servers == (Server("ext_5432", "db.example.test", 5432),)
    assert by_port[8443].servers == (Server("ext_9443", "db.example.test", 9443),)
    assert all(b.external_name == "db.example.test" for b in by_port.values())
    assert any(r.path == "/db" for r in result.model.http_routes)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("10.0.0.1", "IP address"),
        ("::1", "IP address"),
        ("localhost", "node itself"),
        ("a.localhost", "node itself"),
        ("web.default.svc", "cluster-internal"),
        ("web.default.svc.cluster.local", "cluster-internal"),
        ("web", "cluster-internal"),
        ("bad_name.example", "not a DNS name"),
        ("x.example;y", "not a DNS name"),
        (None, "without spec.externalName"),
    ],
)
def test_refused(name: object, why: str) -> None:
    result = translate(external(name, 80), ON)
    assert result.model.backends == ()
    assert [p.subject for p in result.problems] == [DB]
    assert why in result.problems[0].reason


def test_cluster_names_with_their_flag() -> None:
    settings = dataclasses.replace(ON, allow_cluster_external_names=True)
    result = translate(external("web.default.svc.cluster.local", 80), settings)
    assert result.problems == ()
    assert result.model.backends[0].servers[0].address == "web.default.svc.cluster.local"
    assert translate(external("localhost", 80), settings).model.backends == ()


def test_parse_dns_servers() -> None:
    assert parse_dns_servers("127.0.0.53, 127.0.1.1:5353,[::1]:53,::1") == (
        "127.0.0.53:53",
        "127.0.1.1:5353",
        "[::1]:53",
    )
    for bad in ("dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1]x"):
        with pytest.raises(SettingsError):
            parse_dns_servers(bad)


def test_render_is_accepted_by_haproxy(tmp_path: Path) -> None:
    model = translate(external("db.example.test", 80, 5432), ON).model
    config = render_checked(model, ON, tmp_path).config
    resolvers = block(config, "resolvers slb_dns")
    assert "nameserver dns1 127.0.0.1:5353" in resolvers
    assert "hold valid 10s" in resolvers
    server = block(config, "backend http_default_db_80")
    assert "server ext_80 db.example.test:80" in server
    assert "resolvers slb_dns resolve-prefer ipv4 init-addr last,none" in server


def test_render_default_nameservers_from_resolv_conf(tmp_path: Path) -> None:
    """Without --dns-servers, `init-addr` tries libc: `haproxy -c` then resolves the name
    through the system resolver, so the model is built by hand with a name /etc/hosts
    answers (translation would refuse it), and no query leaves the machine."""
    settings = Settings(allow_external_names=True)
    model = LoadBalancer(
        backends=(
            Backend(
                name="http_default_db_80",
                mode=Mode.HTTP,
                service=DB,
                port=80,
                algorithm=Algorithm.ROUNDROBIN,
                servers=(Server("ext_80", "localhost", 80),),
                external_name="localhost",
            ),
        )
    )
    config = render_checked(model, settings, tmp_path).config
    assert "parse-resolv-conf" in block(config, "resolvers slb_dns")
    assert "init-addr last,libc,none" in config


def test_no_resolvers_section_without_external_names(tmp_path: Path) -> None:
    model = translate(snapshot(service("web")), ON).model
    assert "\nresolvers " not in render_checked(model, ON, tmp_path).config
