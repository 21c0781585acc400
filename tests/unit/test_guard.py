"""The guard of ExternalName servers (haproxy/guard.py), --deny-external-cidrs and the
node's addresses: pure parts, with plain tables."""

from __future__ import annotations

import pytest

from service_loadbalancer import config
from service_loadbalancer.cli import build_parser
from service_loadbalancer.external import denied_by
from service_loadbalancer.flag_values import names_node, parse_deny_cidrs
from service_loadbalancer.haproxy.guard import ip_changed, judge
from service_loadbalancer.haproxy.runtime import ADMIN_FMAINT, ADMIN_RMAINT, ServerState
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import Problem
from service_loadbalancer.node_addresses import parse_fib_trie, parse_if_inet6
from service_loadbalancer.settings import DEFAULT_DENY_CIDRS, Settings, SettingsError

DB = ObjectKey("Service", "default", "db")
EXTERNAL = {"http_default_db_80": (DB, "db.example.com")}
CIDRS = parse_deny_cidrs("loopback,link-local,10.0.0.0/8")


def row(address: str, admin: int = 0, backend: str = "http_default_db_80") -> ServerState:
    return ServerState(backend, "ext_80", address, 80, op_state=2, admin_state=admin)


@pytest.mark.parametrize(
    ("address", "cidr"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("127.9.9.9", "127.0.0.0/8"),
        ("0.0.0.0", "0.0.0.0/32"),  # reaches the node itself
        ("::", "::/128"),
        ("::1", "::1/128"),
        ("::ffff:127.0.0.1", "127.0.0.0/8"),  # IPv4-mapped: judged as IPv4
        ("169.254.169.254", "169.254.0.0/16"),  # a cloud's metadata service
        ("fe80::1", "fe80::/10"),
        ("10.1.2.3", "10.0.0.0/8"),
        ("192.0.2.7", None),
        ("2001:db8::1", None),
        ("-", None),
        ("db.example.com", None),
    ],
)
def test_denied_by(address: str, cidr: str | None) -> None:
    assert denied_by(address, CIDRS) == cidr


def test_parse_deny_cidrs_words_and_node() -> None:
    assert parse_deny_cidrs("") == ()
    assert parse_deny_cidrs(" , ") == ()
    assert parse_deny_cidrs("loopback,link-local") == DEFAULT_DENY_CIDRS
    assert Settings().deny_external_cidrs == DEFAULT_DENY_CIDRS
    node = ["192.0.2.2", "fd00::2"]
    assert parse_deny_cidrs("node,192.0.2.2/32,10.0.0.0/8", node) == (
        "192.0.2.2/32",
        "fd00::2/128",
        "10.0.0.0/8",
    )
    assert parse_deny_cidrs("node") == ()  # no address known: nothing to add


@pytest.mark.parametrize(
    ("text", "named"),
    [("node", True), ("loopback, node", True), (" node ,10.0.0.0/8", True), ("nodes", False)],
)
def test_names_node_strips_like_parse_deny_cidrs(text: str, named: bool) -> None:
    assert names_node(text) is named


def test_spaced_node_word_still_denies_the_node_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `loopback, node` (a space after the comma) once dropped the node's addresses
    # silently: the guard failed open.
    monkeypatch.setattr(config, "read_node_addresses", lambda: {"192.0.2.2"})
    args = build_parser().parse_args(["--deny-external-cidrs", "loopback, node"])
    cidrs = config.build_settings(args, {}).deny_external_cidrs
    assert "192.0.2.2/32" in cidrs and "127.0.0.0/8" in cidrs


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10.0.0.1/8", "'10.0.0.1/8' is not a CIDR (host bits set)"),
        ("localhost", "'localhost' is not a CIDR nor one of loopback, link-local, node"),
        ("fe80::1%eth0", "is not a CIDR"),
        ("loopback;10.0.0.0/8", "is not a CIDR"),
    ],
)
def test_parse_deny_cidrs_errors(text: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_deny_cidrs(text)
    assert str(err.value).startswith("--deny-external-cidrs: ") and fragment in str(err.value)


def test_ip_changed_reads_haproxy_26_lines() -> None:
    line = (
        "[WARNING]  (19946) : http_default_db_80/ext_80 changed its IP from 127.0.9.1 "
        "to 127.0.9.2 by slb_dns/dns1."
    )
    assert ip_changed(line) == ("http_default_db_80", "ext_80", "127.0.9.2")
    first = "[WARNING]  (1) : b/s changed its IP from (none) to 10.0.0.1 by DNS cache."
    assert ip_changed(first) == ("b", "s", "10.0.0.1")
    assert ip_changed("[WARNING]  (1) : Server b/s is DOWN, reason: Layer4 timeout") is None


def test_judge_takes_denied_servers_out_and_brings_them_back() -> None:
    # Allowed and ready: nothing to do.
    assert judge([row("192.0.2.7")], EXTERNAL, CIDRS) == ([], frozenset())
    # Denied and ready: out of service, reported.
    commands, problems = judge([row("169.254.169.254")], EXTERNAL, CIDRS)
    assert commands == ["set server http_default_db_80/ext_80 state maint"]
    assert problems == {
        Problem(
            DB,
            "externalName db.example.com resolves to 169.254.169.254, which "
            "--deny-external-cidrs refuses (169.254.0.0/16); not served while it does",
        )
    }
    # Denied and already held: reported, no command.
    assert judge([row("127.0.0.1", ADMIN_FMAINT)], EXTERNAL, CIDRS)[0] == []
    # Allowed again: back in service.
    assert judge([row("192.0.2.7", ADMIN_FMAINT)], EXTERNAL, CIDRS) == (
        ["set server http_default_db_80/ext_80 state ready"],
        frozenset(),
    )
    # Not resolved yet (HAProxy's own maintenance), or not an external backend: left alone.
    assert judge([row("0.0.0.0", ADMIN_RMAINT)], EXTERNAL, CIDRS) == ([], frozenset())
    assert judge([row("127.0.0.1", backend="http_default_web_80")], EXTERNAL, CIDRS) == (
        [],
        frozenset(),
    )


def test_node_addresses_from_proc() -> None:
    fib_trie = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 192.0.2.2
        /32 host LOCAL
     |-- 192.0.2.255
        /32 link BROADCAST
"""
    assert parse_fib_trie(fib_trie) == {"127.0.0.1", "192.0.2.2"}
    if_inet6 = (
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fd000000000000000000000000000002 02 40 00 80     eth0\n"
        "garbage\n"
    )
    assert parse_if_inet6(if_inet6) == {"::1", "fd00::2"}
