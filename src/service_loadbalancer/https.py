"""Which Services get HTTPS, and how: terminated with a certificate, or passed by SNI.

Pure, like the rest of translation. HTTPS is decided per Service: a missing or bad
certificate, or an SNI name another Service already has, takes away that Service's
HTTPS only, with a problem that names it; only TLS annotations that contradict each
other skip the whole Service. Turning a Secret into a certificate is certificates.py's.
"""

from __future__ import annotations

from service_loadbalancer import annotations as ann
from service_loadbalancer.certificates import CertificateError, certificate_from_secret
from service_loadbalancer.kube.objects import ObjectKey
from service_loadbalancer.model import Certificate, Mode, TlsPassthrough
from service_loadbalancer.translation_run import ServicePort, TranslationRun


def tls_conflict(term: bool, passthrough: bool, redirect: bool, host: str | None) -> str:
    """Combinations that cannot mean anything: the whole Service is skipped, since
    serving half of what was asked (plain HTTP for a "TLS only" Service) is worse."""
    if term and passthrough:
        return f"{ann.SSL_TERM.key} and {ann.SSL_PASSTHROUGH.key} exclude each other"
    if passthrough and host is None:
        return f"{ann.SSL_PASSTHROUGH.key} needs {ann.HOST.key} (the SNI name to route by)"
    if redirect and not (term or passthrough):
        return f"{ann.SSL_REDIRECT.key} needs {ann.SSL_TERM.key} or {ann.SSL_PASSTHROUGH.key}"
    return ""


def tls_termination(
    ports: list[ServicePort], out: TranslationRun
) -> tuple[list[Certificate], set[str]]:
    """The certificates of the sslTerm Services, and the backends served over HTTPS.

    Only Secrets named by an annotation are looked at (and only with --tls-secrets); a
    Service whose certificate is missing or bad loses HTTPS, not HTTP."""
    settings = out.settings
    certificates: dict[str, Certificate] = {}
    served: set[str] = set()
    failed: set[ObjectKey] = set()
    for port in sorted(ports, key=lambda p: p.sort_key):
        opts = port.options
        if not opts.ssl_term or port.mode is not Mode.HTTP or port.key in failed:
            continue
        if opts.ssl_secret is None:
            if settings.ssl_cert is None:
                out.problem(port.key, "HTTPS not served: no lb.ssl-secret and no --ssl-cert")
                failed.add(port.key)
                continue
        else:
            cert = _secret_certificate(port.key, opts.ssl_secret, out)
            if cert is None:
                failed.add(port.key)
                continue
            certificates[cert.name] = cert
        served.add(port.backend)
    return list(certificates.values()), served


def _secret_certificate(key: ObjectKey, name: str, out: TranslationRun) -> Certificate | None:
    subject = ObjectKey("Secret", key.namespace, name)
    if not out.settings.tls_secrets:
        out.problem(key, f"HTTPS not served: Secret {name!r} named but --tls-secrets is off")
        return None
    secret = out.secrets.get((key.namespace, name))
    if secret is None:
        out.problem(key, f"HTTPS not served: Secret {key.namespace}/{name} not found")
        return None
    try:
        return certificate_from_secret(secret)
    except CertificateError as err:
        out.problem(subject, f"{err}; HTTPS of Service {key.namespace}/{key.name} not served")
        return None


def tls_passthrough(ports: list[ServicePort], out: TranslationRun) -> list[TlsPassthrough]:
    """One SNI name, one Service: the first by namespace/name/port wins."""
    taken: dict[str, ServicePort] = {}
    result: list[TlsPassthrough] = []
    for port in sorted(ports, key=lambda p: p.sort_key):
        host = port.options.host
        assert host is not None  # tls_conflict made sure
        owner = taken.get(host)
        if owner is not None:
            out.problem(
                port.key,
                f"SNI name {host} is already passed to {owner.key.namespace}/{owner.key.name}; "
                "not passed",
            )
            continue
        taken[host] = port
        result.append(TlsPassthrough(host=host, backend=port.backend))
    return result


def passed_services(passthrough: list[TlsPassthrough], ports: list[ServicePort]) -> set[str]:
    """The Services (backend names of their ports) that pass TLS through."""
    passed = {t.backend for t in passthrough}
    services = {p.key for p in ports if p.backend in passed}
    return {p.backend for p in ports if p.key in services}
