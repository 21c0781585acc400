"""TLS Secrets to certificates HAProxy can load. Pure: no I/O, no logging.

A Secret is hostile input like any other object: its `tls.crt` and `tls.key` are parsed
with `cryptography` and the PEM handed to HAProxy is *re-encoded* from the parsed
objects, so nothing of the Secret's bytes reaches a file verbatim. The key must match
the first certificate (HAProxy would refuse the whole config otherwise, taking every
other Service down with it). Errors never quote key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from service_loadbalancer.kube.objects import TLS_SECRET_TYPE, RawObject, key_of
from service_loadbalancer.model import Certificate

#: The longest certificate file name. A namespace (63) and a Secret name (253) would pass
#: NAME_MAX (255 bytes) together, and a file that cannot be written would stop every
#: config from being installed; atomic_write's `.<name>.tmp` must fit too.
MAX_FILE_NAME = 128
#: A certificate bundle larger than this is refused (a chain is a few kB).
MAX_PEM_BYTES = 1 << 16
_PUBLIC = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class CertificateError(ValueError):
    """A Secret that cannot serve as a certificate; the message never holds key material."""


def certificate_from_secret(secret: RawObject) -> Certificate:
    """The certificate of a `kubernetes.io/tls` Secret, or CertificateError saying why."""
    if secret.get("type") != TLS_SECRET_TYPE:
        raise CertificateError(f"is not of type {TLS_SECRET_TYPE}")
    data = secret.get("data")
    if not isinstance(data, dict):
        raise CertificateError("has no data")
    crt, key = data.get("tls.crt"), data.get("tls.key")
    if not isinstance(crt, str) or not isinstance(key, str):
        raise CertificateError("needs data tls.crt and tls.key (base64 strings)")
    ident = key_of(secret)
    pem, digest = _parse(crt, key)
    return Certificate(name=file_name(ident.namespace, ident.name, digest), pem=pem)


def file_name(namespace: str, name: str, digest: str) -> str:
    """`<namespace>_<name>_<hash>.pem`, the readable part cut so that the whole stays within
    MAX_FILE_NAME. The hash of the content keeps names of different contents apart; two
    Secrets cut to the same name with the same content share one file, which is right."""
    tail = f"_{digest[:16]}.pem"
    return f"{namespace}_{name}"[: MAX_FILE_NAME - len(tail)] + tail


@lru_cache(maxsize=1024)
def _parse(crt_b64: str, key_b64: str) -> tuple[str, str]:
    """(re-encoded PEM: chain then key, sha256 of it). Cached: every sync sees the same
    Secrets again, and loading an RSA key costs milliseconds."""
    crt_pem = _b64(crt_b64, "tls.crt")
    key_pem = _b64(key_b64, "tls.key")
    try:
        chain = x509.load_pem_x509_certificates(crt_pem)
    except ValueError:
        raise CertificateError("tls.crt is not a PEM certificate chain") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise CertificateError("tls.key is not an unencrypted PEM private key") from None
    except Exception:  # cryptography raises UnsupportedAlgorithm and others
        raise CertificateError("tls.key is not a supported private key") from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise CertificateError("tls.key is not an RSA, EC or EdDSA key")
    if chain[0].public_key().public_bytes(*_PUBLIC) != key.public_key().public_bytes(*_PUBLIC):
        raise CertificateError("tls.key does not match the first certificate of tls.crt")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    pem += key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode("ascii"), hashlib.sha256(pem).hexdigest()


def _b64(value: str, field: str) -> bytes:
    if len(value) > MAX_PEM_BYTES * 4 // 3 + 4:
        raise CertificateError(f"{field} is larger than {MAX_PEM_BYTES} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError(f"{field} is not base64") from None


def covers(certificate: Certificate, host: str) -> bool:
    """Whether a client asking for `host` (a name, or `*.<name>` for a wildcard rule)
    would accept the certificate: a DNS name of its subjectAltName (else its common
    name) is the host, or a wildcard of exactly its first label. HAProxy chooses a
    certificate by these names, so one that does not cover a host is never chosen for it."""
    names = dns_names(certificate)
    if host in names:
        return True
    if host.startswith("*."):
        return False
    _, dot, rest = host.partition(".")
    return bool(dot) and f"*.{rest}" in names


def dns_names(certificate: Certificate) -> frozenset[str]:
    """The names (lower case) a client may ask for: subjectAltName, else common name."""
    return _dns_names(certificate.pem)


@lru_cache(maxsize=1024)
def _dns_names(pem: str) -> frozenset[str]:
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [
            str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        ]
    return frozenset(n.lower() for n in names)
