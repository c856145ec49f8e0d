"""Email alerts check the SMTP server's certificate and name (issue #12: `starttls()` without
a context verifies nothing), over STARTTLS and over implicit TLS (port 465, RFC 8314)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.mailer import send_email
from tests.conftest import make_settings


class Inbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode())
        return "250 OK"


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed server certificate for `name` (an IP address or a DNS name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Any]:
    """Start an SMTP server on loopback: `start(mode, cert_name)` -> (port, inbox, cert)."""
    controllers: list[Controller] = []

    def start(mode: str, cert_name: str = "127.0.0.1") -> tuple[int, Inbox, Path]:
        cert, key = _certificate(tmp_path, cert_name)
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        inbox, port = Inbox(), _free_port()
        if mode == "starttls":
            controller = Controller(inbox, hostname="127.0.0.1", port=port,
                                    tls_context=server_tls, require_starttls=True)
        else:  # implicit TLS from the first byte
            controller = Controller(inbox, hostname="127.0.0.1", port=port,
                                    ssl_context=server_tls, server_hostname=cert_name)
        controller.start()
        controllers.append(controller)
        return port, inbox, cert

    yield start
    for controller in controllers:
        controller.stop(no_assert=True)


def _settings(tmp_path: Path, port: int, security: str, ca_file: Path | None) -> Any:
    return make_settings(tmp_path / "instance", "sqlite://", "redis://unused",
                         smtp_host="127.0.0.1", smtp_port=port, smtp_security=security,
                         smtp_ca_file=str(ca_file or ""))


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_server_with_an_unknown_certificate_gets_no_email(smtp_server: Any, tmp_path: Path,
                                                            security: str) -> None:
    port, inbox, _ = smtp_server(security)
    with pytest.raises(ssl.SSLCertVerificationError):
        send_email(_settings(tmp_path, port, security, None), "a@example.com", "Hi", "secret")
    assert inbox.messages == []


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_trusted_certificate_delivers(smtp_server: Any, tmp_path: Path, security: str) -> None:
    port, inbox, cert = smtp_server(security)
    send_email(_settings(tmp_path, port, security, cert), "a@example.com", "Hi", "review items")
    (message,) = inbox.messages
    assert "review items" in message


def test_a_certificate_for_another_host_is_refused(smtp_server: Any, tmp_path: Path) -> None:
    # Trusted CA, wrong name: 127.0.0.1 presents a certificate for mail.example.com.
    port, inbox, cert = smtp_server("starttls", cert_name="mail.example.com")
    with pytest.raises(ssl.SSLCertVerificationError):
        send_email(_settings(tmp_path, port, "starttls", cert), "a@example.com", "Hi", "x")
    assert inbox.messages == []


def test_port_465_means_implicit_tls_unless_told(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite://", "redis://unused", smtp_port=465)
    assert settings.smtp_security == "tls"
    explicit = make_settings(tmp_path, "sqlite://", "redis://unused", smtp_port=465,
                             smtp_security="starttls")
    assert explicit.smtp_security == "starttls"
