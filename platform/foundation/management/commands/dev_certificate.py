"""Make a development TLS certificate, for clients that insist on wss:// and https://.

Writes a small certificate authority and a certificate it signs for localhost,
127.0.0.1 and ::1 (plus any --host), under var/tls/ by default. Serve with it:

    KOE_TLS=1 ./scripts/run

and make clients trust the authority: NODE_EXTRA_CA_CERTS=var/tls/ca.pem for Node,
SSL_CERT_FILE=var/tls/ca.pem (or an ssl context's cafile) for Python. Never for
production: there, terminate TLS at the proxy in front of Koe.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Make a development TLS certificate (and its authority) under var/tls/."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--directory", default=str(Path(settings.VAR_DIR) / "tls"))
        parser.add_argument("--host", action="append", default=[], help="Another host name.")
        parser.add_argument("--force", action="store_true", help="Replace existing files.")

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["directory"])
        paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
        if all(path.exists() for path in paths.values()) and not options["force"]:
            self.stdout.write(f"Using the development certificate in {directory}.")
            return
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = _authority()
        key, cert = _leaf(ca_key, ca_cert, ["localhost", *options["host"]])
        paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths["key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        paths["key"].chmod(0o600)
        self.stdout.write(f"Wrote a development certificate to {directory}.")


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=365)


def _authority() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Koe development CA")])
    start, end = _validity()
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
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")]
    start, end = _validity()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
