"""Which certificate HAProxy may show for which SNI name: the crt-list's filters. Pure.

HAProxy picks a certificate by the client's SNI name among the names it indexed for each
crt-list line: the line's SNI filters when it has some, else the certificate's own names
(CN and subjectAltName). Two certificates with the same name are a toss-up (the first
loaded wins), so ownership must be written down, not left to file order:

- a host given HTTPS by an Ingress's spec.tls belongs to the certificate of its owner
  (ingress_tls.py); that certificate's line lists exactly the hosts it owns;
- a Service's certificate (lb.ssl-secret) lists its own names (subjectAltName, else
  CN) minus those an Ingress owns with another certificate, plus `!host` for such a
  host that only one of its wildcards covers; none left: `!*`. (A line with filters
  is indexed by its filters alone: negative ones do not carve names out of the
  certificate's own, as HAProxy 2.6 behaves whatever its documentation suggests.)
- the default certificate (--ssl-cert) is the first line, the fallback for any name
  nothing else matches; it lists the Ingress hosts it serves (spec.tls without a
  secretName), or `!*` (HAProxy's "fallback only" filter) so that its own names never
  beat a certificate that owns them.

A certificate used both by a Service and by an Ingress is one line, with the Service's
form (its own names include the Ingress hosts it serves: translation checked it covers
them). Hosts are validated DNS names or `*.<name>` (a certificate's names that are not
are left out), safe to write as filters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace

from service_loadbalancer.certificates import covers, dns_names
from service_loadbalancer.kube.ingress_spec import host_error
from service_loadbalancer.model import Certificate

#: The filter that keeps a line's own names out of the SNI index: a fallback only.
FALLBACK_ONLY = "!*"


def sni_filters(
    service_certificates: Iterable[Certificate],
    ingress_certificates: Iterable[Certificate],
    owners: Mapping[str, str | None],
) -> tuple[list[Certificate], tuple[str, ...]]:
    """The certificates with their SNI filters, sorted by name, and the filters of the
    default certificate. `owners`: Ingress TLS host -> its certificate's name (None:
    the default one)."""
    services = {c.name: c for c in service_certificates}
    everything = {**{c.name: c for c in ingress_certificates}, **services}
    hosts_of: dict[str | None, list[str]] = defaultdict(list)  # one pass, not one per cert
    for host, owner in owners.items():
        hosts_of[owner].append(host)
    result: list[Certificate] = []
    for name in sorted(everything):
        cert = everything[name]
        if name in services:
            taken = {h for h, o in owners.items() if o != name and covers(cert, h)}
            # A Secret's names go into a config file: DNS names only, nothing else.
            own = {n for n in dns_names(cert) if not host_error(n)}
            left = own - taken
            negative = sorted(f"!{h}" for h in taken - own)
            sni = (*sorted(left), *negative) if left else (FALLBACK_ONLY,)
        else:
            sni = tuple(sorted(hosts_of.get(name, ())))
        result.append(replace(cert, sni=sni))
    default = tuple(sorted(hosts_of.get(None, ()))) or (FALLBACK_ONLY,)
    return result, default
