"""Ingress spec.tls: which hosts get HTTPS, with which certificate. Pure.

Each `spec.tls[]` entry names hosts and a Secret (`kubernetes.io/tls`, in the Ingress's
namespace) whose certificate serves them, chosen by SNI from the same certificate list
as the Services' lb.ssl-secret (certificates.py parses and re-encodes it). Without a
secretName the default certificate (--ssl-cert) serves the hosts.

A host has one owner, the oldest Ingress that lists it *with a usable certificate* (one
that is found, valid and covers the host). A missing or invalid Secret, or Secrets not
being read (--tls-secrets off), takes away the HTTPS of that entry's hosts only, with a
problem (an Event) on the Ingress naming the Secret; their plain HTTP routes stay,
without the redirect. Such an entry claims nothing: a newer Ingress that lists the host
with a good certificate serves it (HTTPS is a property of the host, as the maps are).
An old Ingress whose Secret is deleted cannot so take HTTPS away from a host another
one can serve.

The owner's certificate is the only one shown for the host: the crt-list gives each
certificate explicit SNI filters (sni_filters.py), so a newer Ingress's certificate, or
a Service's, that also names the host is never chosen for it.
"""

from __future__ import annotations

from typing import Any

from service_loadbalancer.certificates import CertificateError, certificate_from_secret, covers
from service_loadbalancer.kube.ingress_spec import host_error, secret_name_error
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import Certificate
from service_loadbalancer.translation_run import TranslationRun


def tls_hosts(
    served: list[tuple[ObjectKey, dict[str, Any]]], out: TranslationRun
) -> tuple[list[Certificate], dict[str, str | None]]:
    """The certificates to load, and the hosts served over HTTPS, each with the name of
    the certificate that serves it (None: the default one, --ssl-cert). `served` is the
    (Ingress, spec) pairs that are ours, oldest first."""
    certificates: dict[str, Certificate] = {}
    secure: dict[str, str | None] = {}
    owners: dict[str, ObjectKey] = {}
    for key, spec in served:
        entries = spec.get("tls")
        if entries is None:
            continue
        if not isinstance(entries, list):
            out.problem(key, "spec.tls is not a list; no HTTPS served")
            continue
        for i, entry in enumerate(entries):
            where = f"spec.tls[{i}]"
            hosts = _hosts(key, where, entry, owners, out)
            if not hosts:
                continue
            assert isinstance(entry, dict)  # _hosts made sure
            usable = _certificate(key, where, entry.get("secretName"), hosts, out)
            if usable is False:
                continue
            name: str | None = None
            if isinstance(usable, Certificate):
                secret = str(entry.get("secretName"))
                hosts = _covered(
                    key, f"{where}: Secret {key.namespace}/{secret}", usable, hosts, out
                )
                name = usable.name
            # Claimed only now, with a certificate that serves them; a host listed twice
            # by one Ingress keeps its first entry's certificate.
            claimed = [h for h in hosts if h not in secure]
            for host in claimed:
                owners[host] = key
                secure[host] = name
            if isinstance(usable, Certificate) and claimed:
                certificates[usable.name] = usable
    return list(certificates.values()), secure


def _hosts(
    key: ObjectKey,
    where: str,
    entry: object,
    owners: dict[str, ObjectKey],
    out: TranslationRun,
) -> list[str]:
    """The valid hosts of one entry that no other Ingress owns already."""
    if not isinstance(entry, dict):
        out.problem(key, f"{where} is not a mapping; skipped")
        return []
    raw = entry.get("hosts")
    if not raw:
        out.problem(
            key,
            f"{where} lists no hosts: a certificate is chosen by SNI host here, so this "
            "entry serves no HTTPS",
        )
        return []
    if not isinstance(raw, list):
        out.problem(key, f"{where}.hosts is not a list; skipped")
        return []
    hosts: list[str] = []
    for host in raw:
        error = host_error(host)
        if error:
            out.problem(key, f"{where}.hosts: {error}; skipped")
            continue
        owner = owners.get(host, key)
        if owner != key:
            out.problem(
                key,
                f"{where}: TLS for {host} is already given by Ingress "
                f"{owner.namespace}/{owner.name}, which comes first (oldest, then by name); "
                "ignored",
            )
            continue
        hosts.append(host)
    return hosts


def _covered(
    key: ObjectKey, where: str, cert: Certificate, hosts: list[str], out: TranslationRun
) -> list[str]:
    """The hosts the certificate is valid for; the others get no HTTPS (HAProxy would
    show them another certificate, which their clients would refuse)."""
    covered = [h for h in hosts if covers(cert, h)]
    for host in hosts:
        if host not in covered:
            out.problem(key, f"{where}: its certificate is not valid for {host}; no HTTPS for it")
    return covered


def _certificate(
    key: ObjectKey, where: str, secret: object, hosts: list[str], out: TranslationRun
) -> Certificate | bool:
    """The entry's certificate; True for the default one (--ssl-cert); False (with a
    problem) when the hosts get no HTTPS."""
    settings = out.settings
    shown = ", ".join(hosts)
    if secret in (None, ""):
        if settings.ssl_cert is None:
            out.problem(key, f"{where}: no secretName and no --ssl-cert; no HTTPS for {shown}")
            return False
        return True
    if not isinstance(secret, str) or secret_name_error(secret):
        out.problem(key, f"{where}.secretName is not a Secret name; no HTTPS for {shown}")
        return False
    if not settings.tls_secrets:
        out.problem(
            key,
            f"{where}: Secret {secret!r} named but --tls-secrets is off; no HTTPS for {shown}",
        )
        return False
    found = out.secrets.get((key.namespace, secret))
    if found is None:
        out.problem(
            key, f"{where}: Secret {key.namespace}/{secret} not found; no HTTPS for {shown}"
        )
        return False
    try:
        return certificate_from_secret(found)
    except CertificateError as err:
        out.problem(key, f"{where}: Secret {key.namespace}/{secret} {err}; no HTTPS for {shown}")
        return False
