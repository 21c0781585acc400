"""Kubernetes name formats, written once, as k8s.io/apimachinery/pkg/util/validation has them.

Why a module of its own: the manifest checks, the flags (--namespace, --tcp-services),
translation and the annotation validators all ask whether a string is a valid name, and a
pattern copied into each of them drifts (a length limit here, a `$` that lets a trailing
newline through there). Each format is the pattern, the length limit and the API server's
own explanation, so a caller chooses its message but not its rules. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class NameFormat:
    """One of the API server's name formats."""

    pattern: re.Pattern[str]
    max_length: int
    #: The API server's explanation when `pattern` does not match.
    rule: str

    def matches(self, value: str) -> bool:
        """Whether `value` has this format (the length is checked first: it bounds the
        work the pattern does)."""
        return len(value) <= self.max_length and self.pattern.fullmatch(value) is not None


_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"

#: Namespaces, and most names: one label of lowercase alphanumerics and inner hyphens.
DNS1123_LABEL: Final = NameFormat(
    re.compile(_LABEL),
    63,
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
    "'-', and must start and end with an alphanumeric character",
)
#: Secrets, Endpoints, EndpointSlices: dot-separated labels.
DNS1123_SUBDOMAIN: Final = NameFormat(
    re.compile(rf"{_LABEL}(\.{_LABEL})*"),
    253,
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character",
)
#: Services: a label that starts with a letter (it becomes a DNS name and an env variable).
DNS1035_LABEL: Final = NameFormat(
    re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?"),
    63,
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
    "with an alphabetic character, and end with an alphanumeric character",
)


def is_host_name(value: str) -> bool:
    """An RFC 1123 host name: a DNS-1123 subdomain whose every label is a DNS-1123 label
    (at most 63 characters each, 253 in all)."""
    return 0 < len(value) <= DNS1123_SUBDOMAIN.max_length and all(
        DNS1123_LABEL.matches(label) for label in value.split(".")
    )
