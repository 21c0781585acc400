"""Flags to options: what the Kubernetes source is asked to read."""

from __future__ import annotations

import pytest

from service_loadbalancer.cli import build_parser, kube_options


@pytest.mark.parametrize(
    ("argv", "kinds"),
    [
        ([], ("Service", "EndpointSlice")),
        (["--tls-secrets"], ("Service", "EndpointSlice", "Secret")),
        (["--tls-secrets=false"], ("Service", "EndpointSlice")),
    ],
)
def test_secrets_are_watched_only_with_tls_secrets(argv: list[str], kinds: tuple[str, ...]) -> None:
    assert kube_options(build_parser().parse_args(argv)).kinds == kinds
