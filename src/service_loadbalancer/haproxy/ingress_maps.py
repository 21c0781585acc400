"""Ingress routes as HAProxy maps and the look-ups that read them. Pure.

A request costs the same with 10 or 10,000 Ingress rules: there is no ACL per rule, only
at most six map look-ups, each a tree search (`map_str` is an exact-match tree,
`map_beg` a prefix tree that returns the *longest* matching key, whatever the order
of the file: checked in tests/integration/test_ingress.py). Two maps:

- `ingress-exact.map`: `<host><path>` -> value, for Exact rules (looked up with the
  request's path as it is: `/foo` is not `/foo/`, and case matters);
- `ingress-prefix.map`: `<host><path>/` -> value, for Prefix rules, looked up with the
  request's path plus "/": `/aaa/` is a prefix of `/aaa/`, `/aaa//` and `/aaa/ccc/` but
  not of `/aaaccc/`, which is the element-wise match the spec asks for; the longest key
  wins, which is the longest prefix.

`<host>` is "" for a rule without a host, so those keys begin with "/" and a key with a
host never does: one map holds both without any key of one being a prefix of the
other's. The order of the look-ups is the precedence: the exact host, then the wildcard
(`*.` and the request's host minus its first label, so exactly one label), then any
host; within each, Exact before Prefix (an Exact match is as long as the whole path, so
it is never shorter than a Prefix one). The first look-up that finds a route wins.

The value is `<backend>|0|<redirect>`: the backend, "0" (never strip a prefix: the
backends read that field for the Service routes), and "1" when plain HTTP must be
redirected to HTTPS. The HTTPS frontend has maps of its own, with the routes of the
hosts that have a certificate.

Keys are safe to write: hosts are DNS names (or `*.` and one), paths are RFC 3986 path
characters only, checked by translation (ingress.py); no blank, no `#`, no quote.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from service_loadbalancer.model import IngressRoute, LoadBalancer, PathMatch
from service_loadbalancer.settings import Settings

EXACT_MAP: Final = "ingress-exact.map"
PREFIX_MAP: Final = "ingress-prefix.map"
HTTPS_EXACT_MAP: Final = "https-ingress-exact.map"
HTTPS_PREFIX_MAP: Final = "https-ingress-prefix.map"

#: The request's host (lower case, without a port), set only when it cannot be taken
#: for a path: a Host header with a "/" in it gets no host look-up at all.
HOST_VAR: Final = "txn.host"
PATH_VAR: Final = "txn.path"
#: The path plus "/", for the prefix look-ups (as for the Service routes).
LOOKUP_PATH_VAR: Final = "txn.lookup_path"
_WILDCARD: Final = "regsub(^[^.]*,*)"


def key(route: IngressRoute) -> str:
    if route.match is PathMatch.EXACT:
        return f"{route.host}{route.path}"
    return f"{route.host}{route.path.rstrip('/')}/"


def _value(route: IngressRoute, *, https: bool) -> str:
    return f"{route.backend}|0|{int(route.redirect and not https)}"


def map_text(entries: Iterable[tuple[str, str]]) -> str:
    """A map file: one `key value` line per entry, sorted so that the same routes always
    give the same bytes (and no reload). render.py writes the Service routes' maps with it."""
    lines = sorted(f"{k} {v}" for k, v in entries)
    return "".join(line + "\n" for line in lines)


def _map_text(routes: Iterable[IngressRoute], match: PathMatch, *, https: bool) -> str:
    return map_text((key(r), _value(r, https=https)) for r in routes if r.match is match)


def ingress_files(model: LoadBalancer) -> dict[str, str]:
    """The maps of the HTTP frontend, and of the HTTPS one when it terminates."""
    routes = model.ingress_routes
    files = {
        EXACT_MAP: _map_text(routes, PathMatch.EXACT, https=False),
        PREFIX_MAP: _map_text(routes, PathMatch.PREFIX, https=False),
    }
    if model.terminates:
        secure = [r for r in routes if r.https]
        files[HTTPS_EXACT_MAP] = _map_text(secure, PathMatch.EXACT, https=True)
        files[HTTPS_PREFIX_MAP] = _map_text(secure, PathMatch.PREFIX, https=True)
    return files


def lookups(routes: Iterable[IngressRoute], exact_map: str, prefix_map: str) -> list[str]:
    """The `set-var(txn.route)` arguments, in precedence order, for the kinds of rules
    there are (a kind without rules costs no look-up). Each runs only while no route
    is found; the host ones only when the request has a usable host."""
    kinds = {(_host_kind(r.host), r.match) for r in routes}
    host = f"var({HOST_VAR})"
    sources = {
        "name": host,
        "wildcard": f"{host},{_WILDCARD}",
        "any": "",
    }
    found: list[str] = []
    for host_kind in ("name", "wildcard", "any"):
        for match in (PathMatch.EXACT, PathMatch.PREFIX):
            if (host_kind, match) not in kinds:
                continue
            path_var = PATH_VAR if match is PathMatch.EXACT else LOOKUP_PATH_VAR
            converter = "map_str" if match is PathMatch.EXACT else "map_beg"
            the_map = exact_map if match is PathMatch.EXACT else prefix_map
            source = sources[host_kind]
            fetch = f"{source},concat(,{path_var})" if source else f"var({path_var})"
            condition = "!{ var(txn.route) -m found }"
            if host_kind != "any":
                condition = f"{{ var({HOST_VAR}) -m found }} {condition}"
            found.append(f"{fetch},{converter}({the_map}) if {condition}")
    return found


def _host_kind(host: str) -> str:
    if not host:
        return "any"
    return "wildcard" if host.startswith("*.") else "name"


def ingress_context(model: LoadBalancer, settings: Settings) -> dict[str, Any]:
    """What the frontends need for the Ingress routes (see the template)."""
    routes = model.ingress_routes
    secure = [r for r in routes if r.https]
    default = f"{model.ingress_default}|0" if model.ingress_default else None
    return {
        "any": bool(routes) or default is not None,
        "lookups": lookups(routes, EXACT_MAP, PREFIX_MAP),
        "https_lookups": lookups(secure, HTTPS_EXACT_MAP, HTTPS_PREFIX_MAP),
        "default": default,
        "redirect": any(r.redirect for r in routes),
        "redirect_code": settings.ssl_redirect_code,
        "port_suffix": "" if settings.https_port == 443 else f":{settings.https_port}",
    }
