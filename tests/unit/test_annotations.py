"""The annotation registry: every annotation's valid and invalid values, hostile input,
and the README table generated from the registry."""

from __future__ import annotations

from typing import Any

import pytest

from service_loadbalancer import annotations as ann
from service_loadbalancer.annotations import (
    ACL_MATCH,
    AFFINITY,
    ALGORITHM,
    AUTOSCALE_MAX,
    AUTOSCALE_MIN,
    AUTOSCALE_TARGET_CONCURRENCY,
    AUTOSCALE_TARGET_RPS,
    BACKEND_PROTOCOL,
    COOKIE_STICKY,
    GLOBAL,
    HOST,
    HSTS,
    MIN_LOCAL,
    PREFIX,
    REGISTRY,
    SSL_PASSTHROUGH,
    SSL_REDIRECT,
    SSL_SECRET,
    SSL_TERM,
    TIMEOUT_CONNECT,
    TIMEOUT_SERVER,
    Annotation,
    AnnotationError,
    markdown_table,
    unknown_keys,
)
from service_loadbalancer.model import Affinity, Algorithm, Protocol

#: The keys of the original service-loadbalancer that users bring along unchanged.
ORIGINAL_KEYS = {
    "serviceloadbalancer/lb.algorithm",
    "serviceloadbalancer/lb.host",
    "serviceloadbalancer/lb.aclMatch",
    "serviceloadbalancer/lb.cookie-sticky-session",
    "serviceloadbalancer/lb.sslTerm",
}


def get(annotation: Annotation[Any], value: str) -> Any:
    return annotation.get({annotation.key: value})


# --- Valid values -----------------------------------------------------------------------------

VALID: list[tuple[Annotation[Any], str, object]] = [
    (ALGORITHM, "roundrobin", Algorithm.ROUNDROBIN),
    (ALGORITHM, "leastconn", Algorithm.LEASTCONN),
    (ALGORITHM, "first", Algorithm.FIRST),
    (ALGORITHM, "source", Algorithm.SOURCE),
    (ALGORITHM, " leastconn ", Algorithm.LEASTCONN),
    (HOST, "example.com", "example.com"),
    (HOST, "a", "a"),
    (HOST, "EXAMPLE.Com", "example.com"),
    (HOST, "my-app.svc-1.example.com", "my-app.svc-1.example.com"),
    (HOST, "1.2.3.4", "1.2.3.4"),
    (HOST, "0a.b9", "0a.b9"),
    (HOST, "a" * 63 + ".com", "a" * 63 + ".com"),
    (HOST, ".".join(["a" * 61] * 4) + ".abcd", ".".join(["a" * 61] * 4) + ".abcd"),
    (HOST, " example.com ", "example.com"),
    (HOST, "*.example.com", "*.example.com"),
    (HOST, "*.A.b", "*.a.b"),
    (ACL_MATCH, "/", "/"),
    (ACL_MATCH, "/api", "/api"),
    (ACL_MATCH, "/api/", "/api"),
    (ACL_MATCH, "/api/v1", "/api/v1"),
    (ACL_MATCH, "/api/v1/", "/api/v1"),
    (ACL_MATCH, "/a.b", "/a.b"),
    (ACL_MATCH, "/~user", "/~user"),
    (ACL_MATCH, "/A-Z_a-z.0-9~", "/A-Z_a-z.0-9~"),
    (ACL_MATCH, "/...", "/..."),
    (ACL_MATCH, "/.well-known", "/.well-known"),
    (ACL_MATCH, "/" + "a" * 511, "/" + "a" * 511),
    (ACL_MATCH, " /api ", "/api"),
    (COOKIE_STICKY, "true", True),
    (COOKIE_STICKY, "false", False),
    (COOKIE_STICKY, "True", True),
    (COOKIE_STICKY, "FALSE", False),
    (COOKIE_STICKY, " true ", True),
    (SSL_TERM, "true", True),
    (SSL_PASSTHROUGH, "False", False),
    (SSL_REDIRECT, "TRUE", True),
    (SSL_SECRET, "web-tls", "web-tls"),
    (SSL_SECRET, "web.tls.v2", "web.tls.v2"),
    (SSL_SECRET, "0", "0"),
    (SSL_SECRET, " a-b ", "a-b"),
    (SSL_SECRET, "a" * 253, "a" * 253),
    (HSTS, "1", 1),
    (HSTS, "31536000", 31536000),
    (HSTS, "63072000", 63072000),
    (HSTS, " 600 ", 600),
    # Times: milliseconds, whatever the unit; the bounds are included.
    (TIMEOUT_SERVER, "1ms", 1),
    (TIMEOUT_SERVER, "2s", 2000),
    (TIMEOUT_SERVER, "2000ms", 2000),
    (TIMEOUT_SERVER, "5m", 300_000),
    (TIMEOUT_SERVER, "24h", 86_400_000),
    (TIMEOUT_SERVER, "1440m", 86_400_000),
    (TIMEOUT_SERVER, " 30s\n", 30_000),
    (TIMEOUT_SERVER, "007s", 7000),
    (TIMEOUT_CONNECT, "1ms", 1),
    (TIMEOUT_CONNECT, "500ms", 500),
    (TIMEOUT_CONNECT, "1h", 3_600_000),
    (TIMEOUT_CONNECT, "3600s", 3_600_000),
    (BACKEND_PROTOCOL, "h1", Protocol.H1),
    (BACKEND_PROTOCOL, "h2c", Protocol.H2C),
    (BACKEND_PROTOCOL, " H2C\n", Protocol.H2C),
    (BACKEND_PROTOCOL, "h2", Protocol.H2),
    (BACKEND_PROTOCOL, "HTTPS", Protocol.HTTPS),
    (GLOBAL, "true", True),
    (GLOBAL, "False", False),
    (AFFINITY, "local", Affinity.LOCAL),
    (AFFINITY, " None\n", Affinity.NONE),
    (AFFINITY, "remote", Affinity.REMOTE),
    (MIN_LOCAL, "1", 1),
    (MIN_LOCAL, " 3\n", 3),
    (MIN_LOCAL, "10000", 10000),
]


@pytest.mark.parametrize(
    ("annotation", "raw", "expected"),
    VALID,
    ids=[f"{a.key.removeprefix(PREFIX)}={raw[:20]!r}" for a, raw, _ in VALID],
)
def test_valid_values(annotation: Annotation[Any], raw: str, expected: object) -> None:
    assert get(annotation, raw) == expected


@pytest.mark.parametrize("annotation", REGISTRY, ids=[a.key for a in REGISTRY])
def test_absent_gives_default(annotation: Annotation[Any]) -> None:
    assert annotation.get({}) == annotation.default
    assert annotation.get({"other/" + annotation.key: "x"}) == annotation.default


def test_defaults() -> None:
    assert ALGORITHM.default is None  # None: --balance-algorithm applies
    assert HOST.default is None
    assert ACL_MATCH.default is None
    assert COOKIE_STICKY.default is False


# --- Invalid values ---------------------------------------------------------------------------


def invalid(annotation: Annotation[Any], raw: str, fragment: str, marks: Any = ()) -> Any:
    key = annotation.key.removeprefix(PREFIX)
    return pytest.param(annotation, raw, fragment, marks=marks, id=f"{key}={raw[:20]!r}")


INVALID = [
    invalid(ALGORITHM, "", "is not one of roundrobin, leastconn, first, source"),
    invalid(ALGORITHM, "random", "is not one of"),
    invalid(ALGORITHM, "RoundRobin", "is not one of"),
    invalid(ALGORITHM, "static-rr", "is not one of"),
    invalid(ALGORITHM, "uri", "is not one of"),
    invalid(ALGORITHM, "source consistent", "is not one of"),
    invalid(HOST, "", "is not an RFC 1123 host name"),
    invalid(HOST, "-a.com", "RFC 1123"),
    invalid(HOST, "a-.com", "RFC 1123"),
    invalid(HOST, "a..com", "RFC 1123"),
    invalid(HOST, ".a.com", "RFC 1123"),
    invalid(HOST, "a.com.", "RFC 1123"),
    invalid(HOST, "a_b.com", "RFC 1123"),
    invalid(HOST, "*", "RFC 1123"),
    invalid(HOST, "*.", "RFC 1123"),
    invalid(HOST, "*example.com", "RFC 1123"),
    invalid(HOST, "a.*.example.com", "RFC 1123"),
    invalid(HOST, "*.*.example.com", "RFC 1123"),
    invalid(HOST, "**.example.com", "RFC 1123"),
    invalid(HOST, "*." + ".".join(["a" * 63] * 4), "RFC 1123"),
    invalid(HOST, "example.com:80", "RFC 1123"),
    invalid(HOST, "example.com/path", "RFC 1123"),
    invalid(HOST, "a" * 64 + ".com", "RFC 1123"),
    invalid(HOST, ".".join(["a" * 63] * 4) + ".ab", "RFC 1123"),
    invalid(HOST, "[::1]", "RFC 1123"),
    invalid(HOST, "user@example.com", "RFC 1123"),
    invalid(ACL_MATCH, "", "is not a path prefix"),
    invalid(ACL_MATCH, "api", "is not a path prefix"),
    invalid(ACL_MATCH, "//", "is not a path prefix"),
    invalid(ACL_MATCH, "//api", "is not a path prefix"),
    invalid(ACL_MATCH, "/a//b", "is not a path prefix"),
    invalid(ACL_MATCH, "/api//", "is not a path prefix"),
    invalid(ACL_MATCH, "/.", "has a dot segment"),
    invalid(ACL_MATCH, "/..", "has a dot segment"),
    invalid(ACL_MATCH, "/./a", "has a dot segment"),
    invalid(ACL_MATCH, "/a/../b", "has a dot segment"),
    invalid(ACL_MATCH, "/a/..", "has a dot segment"),
    invalid(ACL_MATCH, "/a/./", "has a dot segment"),
    invalid(ACL_MATCH, "/a?b=c", "is not a path prefix"),
    invalid(ACL_MATCH, "/a;b", "is not a path prefix"),
    invalid(ACL_MATCH, "/a%2fb", "is not a path prefix"),
    invalid(ACL_MATCH, "/a:b", "is not a path prefix"),
    invalid(ACL_MATCH, "/a+b", "is not a path prefix"),
    invalid(ACL_MATCH, "/a|b", "is not a path prefix"),
    invalid(ACL_MATCH, "/" + "a" * 512, "is not a path prefix"),
    invalid(ACL_MATCH, "http://example.com/a", "is not a path prefix"),
    invalid(COOKIE_STICKY, "", "is not a boolean (true or false)"),
    invalid(COOKIE_STICKY, "yes", "is not a boolean"),
    invalid(COOKIE_STICKY, "1", "is not a boolean"),
    invalid(COOKIE_STICKY, "on", "is not a boolean"),
    invalid(COOKIE_STICKY, "t", "is not a boolean"),
    invalid(COOKIE_STICKY, "truee", "is not a boolean"),
    invalid(SSL_TERM, "yes", "is not a boolean"),
    invalid(SSL_PASSTHROUGH, "1", "is not a boolean"),
    invalid(SSL_REDIRECT, "308", "is not a boolean"),
    invalid(SSL_SECRET, "", "is not a Secret name"),
    invalid(SSL_SECRET, "Web-TLS", "is not a Secret name"),
    invalid(SSL_SECRET, "-a", "is not a Secret name"),
    invalid(SSL_SECRET, "a.", "is not a Secret name"),
    invalid(SSL_SECRET, "a..b", "is not a Secret name"),
    invalid(SSL_SECRET, "a_b", "is not a Secret name"),
    invalid(SSL_SECRET, "ns/a", "is not a Secret name"),
    invalid(SSL_SECRET, "a" * 254, "is not a Secret name"),
    invalid(HSTS, "", "is not a number of seconds"),
    invalid(HSTS, "0", "is not between 1 and 63072000"),
    invalid(HSTS, "63072001", "is not between"),
    invalid(HSTS, "-1", "is not a number of seconds"),
    invalid(HSTS, "1e6", "is not a number of seconds"),
    invalid(HSTS, "1_000", "is not a number of seconds"),
    invalid(HSTS, "\u0661\u0662", "is not a number of seconds"),
    invalid(HSTS, "9" * 10, "is not a number of seconds"),
    invalid(HSTS, "max-age=600", "is not a number of seconds"),
    invalid(TIMEOUT_SERVER, "", "is not a time (digits then ms, s, m or h)"),
    invalid(TIMEOUT_SERVER, "30", "is not a time"),  # HAProxy's default unit: not allowed
    invalid(TIMEOUT_SERVER, "0s", "is not between 1ms and 24h"),
    invalid(TIMEOUT_SERVER, "0ms", "is not between 1ms and 24h"),
    invalid(TIMEOUT_SERVER, "25h", "is not between 1ms and 24h"),
    invalid(TIMEOUT_SERVER, "86400001ms", "is not between"),
    invalid(TIMEOUT_SERVER, "1d", "is not a time"),
    invalid(TIMEOUT_SERVER, "100us", "is not a time"),
    invalid(TIMEOUT_SERVER, "1m30s", "is not a time"),
    invalid(TIMEOUT_SERVER, "1.5s", "is not a time"),
    invalid(TIMEOUT_SERVER, "-1s", "is not a time"),
    invalid(TIMEOUT_SERVER, "+1s", "is not a time"),
    invalid(TIMEOUT_SERVER, "1 s", "is not a time"),
    invalid(TIMEOUT_SERVER, "1S", "is not a time"),
    invalid(TIMEOUT_SERVER, "1_0s", "is not a time"),
    invalid(TIMEOUT_SERVER, "\u0661s", "is not a time"),
    invalid(TIMEOUT_SERVER, "9" * 10 + "ms", "is not a time"),
    invalid(TIMEOUT_SERVER, "2s timeout connect 1s", "is not a time"),
    invalid(TIMEOUT_CONNECT, "61m", "is not between 1ms and 1h"),
    invalid(TIMEOUT_CONNECT, "3600001ms", "is not between 1ms and 1h"),
    invalid(TIMEOUT_CONNECT, "0h", "is not between"),
    invalid(TIMEOUT_CONNECT, "5", "is not a time"),
    invalid(BACKEND_PROTOCOL, "h3", "is not one of h1, h2c, h2, https"),
    invalid(BACKEND_PROTOCOL, "grpc", "is not one of h1, h2c, h2, https"),
    invalid(BACKEND_PROTOCOL, "ssl", "is not one of"),
    invalid(BACKEND_PROTOCOL, "h2c proto h2", "is not one of"),
    invalid(BACKEND_PROTOCOL, "", "is not one of"),
    invalid(GLOBAL, "yes", "is not a boolean"),
    invalid(AFFINITY, "nearest", "is not one of local, none, remote"),
    invalid(AFFINITY, "", "is not one of"),
    invalid(MIN_LOCAL, "0", "is not a whole number from 1 to 10000"),
    invalid(MIN_LOCAL, "10001", "is not a whole number"),
    invalid(MIN_LOCAL, "-1", "is not a whole number"),
    invalid(MIN_LOCAL, "1.5", "is not a whole number"),
    invalid(MIN_LOCAL, "\u0663", "is not a whole number"),
    invalid(MIN_LOCAL, "9" * 5000, "is not a whole number"),
]


@pytest.mark.parametrize(
    ("annotation", "raw", "fragment"),
    INVALID,
)
def test_invalid_values(annotation: Annotation[Any], raw: str, fragment: str) -> None:
    with pytest.raises(AnnotationError) as found:
        get(annotation, raw)
    message = str(found.value)
    assert message.startswith(f"annotation {annotation.key}: ")
    assert fragment in message


# --- Hostile values ---------------------------------------------------------------------------

#: A value each annotation accepts, to build hostile variants around.
BASE = {
    ALGORITHM: "roundrobin",
    HOST: "example.com",
    ACL_MATCH: "/api",
    COOKIE_STICKY: "true",
    SSL_TERM: "true",
    SSL_SECRET: "web-tls",
    SSL_PASSTHROUGH: "true",
    SSL_REDIRECT: "false",
    HSTS: "600",
    TIMEOUT_SERVER: "30s",
    TIMEOUT_CONNECT: "500ms",
    BACKEND_PROTOCOL: "h2c",
    AUTOSCALE_TARGET_RPS: "50",
    AUTOSCALE_TARGET_CONCURRENCY: "2.5",
    AUTOSCALE_MIN: "2",
    AUTOSCALE_MAX: "20",
    GLOBAL: "true",
    AFFINITY: "local",
    MIN_LOCAL: "2",
}


def hostile(base: str) -> dict[str, str]:
    return {
        "newline": f"{base}\n    server evil 1.2.3.4:80",
        "newline-front": f"x\n{base}",
        "carriage-return": f"{base}\rx",
        "double-quote": f'{base}"',
        "single-quote": f"{base}'x'",
        "hash": f"{base}#comment",
        "braces": "{" + base + "}",
        "jinja": "{{ " + base + " }}",
        "space": f"{base} x",
        "tab": f"{base}\tx",
        "sample-fetch": f"{base}%[src]",
        "env": f"{base}${{HOME}}",
        "backslash": f"{base}\\x",
        "nul": f"{base}\x00",
        "unicode": f"{base}\u00e9",
        "unicode-only": "\u00e9\u00e8",
        "fullwidth": "\uff41\uff50\uff49",
        "rtl-override": f"{base}\u202e",
        "zero-width": f"{base}\u200b",
        "very-long": base * 5000,
        "very-long-valid-chars": "a" * 100_000,
    }


HOSTILE = [(a, name, value) for a in REGISTRY for name, value in hostile(BASE[a]).items()]


@pytest.mark.parametrize(
    ("annotation", "name", "value"),
    HOSTILE,
    ids=[f"{a.key.removeprefix(PREFIX)}-{name}" for a, name, _ in HOSTILE],
)
def test_hostile_values_rejected(annotation: Annotation[Any], name: str, value: str) -> None:
    with pytest.raises(AnnotationError) as found:
        get(annotation, value)
    message = str(found.value)
    # The message quotes the value escaped and shortened: it cannot forge a log line.
    assert "\n" not in message
    assert "\r" not in message
    assert "\x00" not in message
    assert len(message) < 400


def test_registry_covers_hostile_table() -> None:
    assert set(BASE) == set(REGISTRY)


@pytest.mark.parametrize("annotation", REGISTRY, ids=[a.key for a in REGISTRY])
def test_surrounding_whitespace_is_trimmed_and_value_is_clean(
    annotation: Annotation[Any],
) -> None:
    """A YAML block scalar leaves a trailing newline: it is trimmed, never carried."""
    value = get(annotation, f"  {BASE[annotation]}\n")
    assert value == get(annotation, BASE[annotation])
    assert "\n" not in str(value)


def test_non_ascii_host_that_lowers_to_ascii_rejected() -> None:
    with pytest.raises(AnnotationError):
        get(HOST, "\u212aube.example.com")


def test_error_message_quotes_and_shortens() -> None:
    with pytest.raises(AnnotationError) as found:
        get(ALGORITHM, "x" * 1000)
    message = str(found.value)
    assert "'" + "x" * 61 + "...'" in message
    assert "x" * 62 not in message
    with pytest.raises(AnnotationError) as newline:
        get(HOST, "a\nb")
    assert "'a\\nb'" in str(newline.value)


# --- The parsers on their own ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("/", "/"), ("/a/", "/a"), ("/a/b/", "/a/b"), ("/a", "/a")],
    ids=["root", "trailing", "nested-trailing", "plain"],
)
def test_parse_path_normalises_trailing_slash(raw: str, expected: str) -> None:
    assert ann.parse_path(raw) == expected


def test_parse_errors_have_no_key_prefix() -> None:
    with pytest.raises(AnnotationError, match=r"^'maybe' is not a boolean"):
        ann.parse_bool("maybe")


# --- Registry, unknown keys and the README table --------------------------------------------


def test_registry_keys() -> None:
    keys = [a.key for a in REGISTRY]
    assert len(keys) == len(set(keys))
    assert all(k.startswith(PREFIX) for k in keys)
    assert set(keys) >= ORIGINAL_KEYS
    for a in REGISTRY:
        assert a.doc.strip()
        assert a.allowed.strip()
        for text in (a.doc, a.allowed):  # would break the markdown table
            assert "|" not in text
            assert "\n" not in text


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, []),
        ({PREFIX + "lb.algorithm": "first", "other/lb.x": "y"}, []),
        ({PREFIX + "lb.agorithm": "first"}, [PREFIX + "lb.agorithm"]),
        (
            {PREFIX + "z": "1", PREFIX + "a": "2", PREFIX + "lb.host": "a"},
            [PREFIX + "a", PREFIX + "z"],
        ),
        ({"serviceloadbalancer.io/lb.host": "a"}, []),
    ],
    ids=["none", "known-and-foreign", "typo", "sorted", "other-prefix"],
)
def test_unknown_keys(annotations: dict[str, str], expected: list[str]) -> None:
    assert unknown_keys(annotations) == expected


def test_markdown_table_lists_every_key() -> None:
    table = markdown_table()
    lines = table.splitlines()
    assert lines[0] == "| annotation | values | default | meaning |"
    assert lines[1] == "| --- | --- | --- | --- |"
    rows = lines[2:]
    assert len(rows) == len(REGISTRY)
    for row, a in zip(rows, REGISTRY, strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == f"`{a.key}`"
        assert cells[1] == a.allowed
        assert cells[3] == a.doc
        assert len(cells) == 4
    defaults = {a.key: row.split("|")[3].strip() for a, row in zip(REGISTRY, rows, strict=True)}
    assert defaults == {
        ALGORITHM.key: "-",
        HOST.key: "-",
        ACL_MATCH.key: "-",
        COOKIE_STICKY.key: "false",
        SSL_TERM.key: "false",
        SSL_SECRET.key: "-",
        SSL_PASSTHROUGH.key: "false",
        SSL_REDIRECT.key: "false",
        HSTS.key: "-",
        TIMEOUT_SERVER.key: "-",
        TIMEOUT_CONNECT.key: "-",
        BACKEND_PROTOCOL.key: "-",
        AUTOSCALE_TARGET_RPS.key: "-",
        AUTOSCALE_TARGET_CONCURRENCY.key: "-",
        AUTOSCALE_MIN.key: "1",
        AUTOSCALE_MAX.key: "10",
        GLOBAL.key: "false",
        AFFINITY.key: "local",
        MIN_LOCAL.key: "1",
    }
