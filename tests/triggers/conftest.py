"""Fixtures of the trigger tests: a Dovecot of each test's own (plain, or with a
self-signed certificate made at test time for the TLS modes), and a RabbitMQ vhost of
each test's own (the RabbitMQ tests' fixtures). A server missing or unusable skips the
tests locally and fails them in CI, as PostgreSQL does."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import unavailable
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rabbitmq.conftest import rabbitmq, vhost  # noqa: F401 (fixtures of these tests too)

from .dovecot import Dovecot, Tls, why_unusable

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture(scope="session")
def dovecot_usable() -> None:
    problem = why_unusable()
    if problem is not None:
        unavailable(problem)


@pytest.fixture
def dovecot(dovecot_usable: None) -> Iterator[Dovecot]:
    """A running Dovecot, plain IMAP on 127.0.0.1, with the users in ``USERS``."""
    server = Dovecot(USERS)
    try:
        yield server.start()
    finally:
        server.close()


def self_signed(directory: Path, name: str) -> Tls:
    """A certificate for ``name`` (an IP address or a host name) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    tls = Tls(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return tls


@pytest.fixture
def tls_dovecot(
    dovecot_usable: None, tmp_path: Path
) -> Iterator[tuple[Dovecot, ssl.SSLContext]]:
    """A Dovecot with a certificate for 127.0.0.1 (STARTTLS on ``port``, implicit TLS on
    ``ssl_port``), and a client context that trusts that certificate alone."""
    tls = self_signed(tmp_path, "127.0.0.1")
    server = Dovecot(USERS, tls=tls)
    try:
        yield server.start(), ssl.create_default_context(cafile=str(tls.cert))
    finally:
        server.close()
