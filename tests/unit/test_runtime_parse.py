"""Parsing what HAProxy 2.6's Runtime API answers, and the reconciler's config helpers.
The texts are HAProxy 2.6.12's own answers, captured from a real worker."""

from __future__ import annotations

import pytest

from service_loadbalancer.haproxy.files import filter_server_state
from service_loadbalancer.haproxy.plan import OpKind, ServerOp
from service_loadbalancer.haproxy.runtime import (
    RuntimeApiError,
    ServerState,
    parse_servers_state,
    parse_stat_sessions,
    server_commands,
)
from service_loadbalancer.haproxy.sections import split_servers
from service_loadbalancer.model import Server

HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
    "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
    "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
    "srv_agent_port"
)
STATE = f"""1
{HEADER}
3 rr 1 a 127.0.0.1 2 0 1 1 5 1 0 2 0 0 0 0 - 9001 - 0 0 - - 0
3 rr 2 x 127.0.0.2 0 1 1 1 1 1 0 0 0 0 0 0 - 9002 - 0 0 - - 0
3 rr 3 z ::1 2 8 1 1 0 1 0 0 0 0 0 0 - 80 - 0 0 - - 0
"""


def test_parse_servers_state() -> None:
    rows = parse_servers_state(STATE)
    assert rows == [
        ServerState("rr", "a", "127.0.0.1", 9001, 2, 0),
        ServerState("rr", "x", "127.0.0.2", 9002, 0, 1),
        ServerState("rr", "z", "::1", 80, 2, 8),
    ]
    assert [(r.ready, r.maint, r.drain) for r in rows] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2\n# be_name\n", "unknown"),
        ("1\n3 rr 1 a 127.0.0.1 2 0\n", "without a header"),
        (f"1\n{HEADER}\n3 rr 1 a 127.0.0.1 two 0 1 1 5 1 0 2 0 0 0 0 - 9001\n", "bad"),
    ],
    ids=["version", "no-header", "bad-number"],
)
def test_parse_servers_state_refuses_what_it_does_not_know(text: str, message: str) -> None:
    with pytest.raises(RuntimeApiError, match=message):
        parse_servers_state(text)


def test_parse_servers_state_empty() -> None:
    assert parse_servers_state("") == []


def test_parse_stat_sessions() -> None:
    text = (
        "# pxname,svname,qcur,qmax,scur,smax,slim,stot\n"
        "rr,a,0,0,2,3,,10\n"
        "rr,x,1,1,0,0,,1\n"
        "rr,y,0,0,0,0,,1\n"
        "rr,BACKEND,0,0,2,3,,11\n"
    )
    assert parse_stat_sessions(text) == {("rr", "a"): 2, ("rr", "x"): 1, ("rr", "y"): 0}


CONFIG = """global
    stats socket /run/s.sock
defaults
    mode http
frontend http
    bind :80
backend web
    balance roundrobin
    server s1 127.0.0.1:80 cookie s1
    server s2 [::1]:81
backend empty
    balance roundrobin
"""


def test_split_servers() -> None:
    rest, servers = split_servers(CONFIG)
    assert servers == {("web", "s1"): "127.0.0.1:80 cookie s1", ("web", "s2"): "[::1]:81"}
    assert "server" not in rest.replace("stats socket", "")
    assert rest.splitlines()[-1] == "    balance roundrobin"


def test_filter_server_state_keeps_only_wanted_servers() -> None:
    text = filter_server_state(STATE, {("rr", "a"), ("rr", "z")})
    assert [(r.backend, r.name) for r in parse_servers_state(text)] == [("rr", "a"), ("rr", "z")]
    assert filter_server_state("1\n", set()) == "1\n"


def test_server_commands_enable_the_check_of_added_servers() -> None:
    """A dynamic server gets its rendered arguments; HAProxy 2.6 starts its check
    stopped, so one with `check` gets `enable health` after `ready` (not one without)."""
    a, b, c = (Server(f"s{i}", f"127.0.0.{i}", 80) for i in (1, 2, 3))
    ops = [
        ServerOp("web", OpKind.ADD, a),
        ServerOp("web", OpKind.ADD, b),
        ServerOp("web", OpKind.DRAIN, c),
    ]
    args = {("web", "s1"): "127.0.0.1:80 check inter 1h", ("web", "s2"): "127.0.0.2:80"}
    assert server_commands(ops, args) == (
        [
            "add server web/s1 127.0.0.1:80 check inter 1h",
            "set server web/s1 state ready",
            "enable health web/s1",
            "add server web/s2 127.0.0.2:80",
            "set server web/s2 state ready",
            "set server web/s3 state drain",
        ],
        ["New server registered.", "", "", "New server registered.", "", ""],
    )
    assert server_commands([ServerOp("x", OpKind.ADD, a)], args) == (
        "server x/s1 is not in the rendered config"
    )
