"""Federation PKI: one CA per federation, a server certificate for the broker, one client
certificate per board. Pure functions from parameters to PEM bytes (``cryptography`` package)."""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyPair:
    """A private key and its certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes


def _x509():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _new_key():
    _, _, _, ec, _, _ = _x509()
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    _, _, serialization, _, _, _ = _x509()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert) -> bytes:
    _, _, serialization, _, _, _ = _x509()
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, org: str):
    x509, _, _, _, _, NameOID = _x509()
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(days: int):
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    return now, now + _dt.timedelta(days=days)


def make_ca(federation: str, days: int = 3650) -> KeyPair:
    """A self-signed CA for one federation.

    Args:
        federation: federation name (goes into the subject).
        days: validity.

    Returns:
        KeyPair of the CA.
    """
    x509, hashes, _, _, _, _ = _x509()
    key = _new_key()
    name = _name(f"edgefl {federation} CA", f"edgefl/{federation}")
    start, end = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_key_pem(key), _cert_pem(cert))


def _load_ca(ca: KeyPair):
    x509, _, serialization, _, _, _ = _x509()
    return serialization.load_pem_private_key(ca.key_pem, password=None), x509.load_pem_x509_certificate(
        ca.cert_pem
    )


def _san(hosts: list[str]):
    x509, *_ = _x509()
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue_cert(
    ca: KeyPair, common_name: str, *, server: bool, hosts: list[str] | None = None, days: int = 825
) -> KeyPair:
    """A leaf certificate signed by the federation CA.

    Args:
        ca: the federation CA.
        common_name: subject CN (the client id for boards, the host name for the broker).
        server: True for the broker (serverAuth + SAN of ``hosts``), False for a client (clientAuth).
        hosts: DNS names / IP addresses the broker is reached at (server certificates).
        days: validity.

    Returns:
        KeyPair of the new certificate.
    """
    x509, hashes, _, _, EKU, NameOID = _x509()
    ca_key, ca_cert = _load_ca(ca)
    org = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    key = _new_key()
    start, end = _validity(days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([EKU.SERVER_AUTH if server else EKU.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(_san(hosts or ["localhost", "127.0.0.1"]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(_key_pem(key), _cert_pem(cert))
