"""The Kubernetes name formats (kube/names.py) as tables: each format's pattern and length
limit, and the host names built from labels."""

from __future__ import annotations

import pytest

from service_loadbalancer.kube.names import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    NameFormat,
    is_host_name,
)

LABEL_63 = "a" * 63


@pytest.mark.parametrize(
    ("name_format", "value", "expected"),
    [
        (DNS1123_LABEL, "web", True),
        (DNS1123_LABEL, "0web-1", True),
        (DNS1123_LABEL, LABEL_63, True),
        (DNS1123_LABEL, LABEL_63 + "a", False),
        (DNS1123_LABEL, "", False),
        (DNS1123_LABEL, "-web", False),
        (DNS1123_LABEL, "web-", False),
        (DNS1123_LABEL, "Web", False),
        (DNS1123_LABEL, "web.v2", False),
        (DNS1123_LABEL, "web\n", False),  # what `$` instead of `\Z` would let through
        (DNS1123_LABEL, "wéb", False),
        (DNS1123_SUBDOMAIN, "web.v2", True),
        (DNS1123_SUBDOMAIN, "web", True),
        (DNS1123_SUBDOMAIN, f"{LABEL_63}a.b", True),  # labels are not limited to 63 here
        (DNS1123_SUBDOMAIN, ".".join(["a" * 50] * 5)[:253], True),
        (DNS1123_SUBDOMAIN, "a" * 254, False),
        (DNS1123_SUBDOMAIN, "web..v2", False),
        (DNS1123_SUBDOMAIN, "web.", False),
        (DNS1123_SUBDOMAIN, "web_v2", False),
        (DNS1035_LABEL, "web", True),
        (DNS1035_LABEL, "1web", False),
        (DNS1035_LABEL, "web.v2", False),
        (DNS1035_LABEL, "w" * 64, False),
    ],
)
def test_name_formats(name_format: NameFormat, value: str, expected: bool) -> None:
    assert name_format.matches(value) is expected


def test_limits_are_the_api_servers() -> None:
    assert (DNS1123_LABEL.max_length, DNS1123_SUBDOMAIN.max_length) == (63, 253)
    assert DNS1035_LABEL.max_length == 63


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", True),
        ("a", True),
        (f"{LABEL_63}.com", True),
        (f"{LABEL_63}a.com", False),  # a host name's labels are at most 63 long
        (".".join([LABEL_63] * 4)[:253], True),
        (".".join([LABEL_63] * 4), False),  # 255 in all
        ("", False),
        ("example..com", False),
        ("example.com.", False),
        ("*.example.com", False),  # the wildcard is the annotation's business
    ],
)
def test_host_names(value: str, expected: bool) -> None:
    assert is_host_name(value) is expected
