"""Throwaway PKI for real-broker TLS tests (generated with ``cryptography``).

``make_pki(dir, clients)`` writes, into ``dir``:

* ``ca.crt`` / ``ca.key``            -- the trusted test CA;
* ``server.crt`` / ``server.key``    -- broker certificate, CN ``127.0.0.1``,
  SAN ``IP:127.0.0.1``, ``IP:::1`` and ``DNS:localhost``;
* ``client-<name>.crt`` / ``.key``   -- one client certificate per name, signed
  by the CA, whose subject CN is ``<name>`` (a store id, or ``cloud``). With
  mosquitto's ``use_identity_as_username true`` the CN becomes the username;
* ``wrong-ca.crt`` / ``wrong-ca.key`` -- a second, unrelated CA: a client that
  trusts it must fail the TLS handshake against the broker;
* ``untrusted-client.crt`` / ``.key`` -- a client certificate claiming CN
  ``store-a`` but signed by the *wrong* CA (an impersonation attempt): a broker
  with ``require_certificate true`` must refuse it.

All keys are EC P-256, unencrypted PEM (PKCS#8). Validity: now - 1 day to
now + 30 days.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsFiles", "make_pki", "UNTRUSTED_CLIENT_CN"]

#: CN carried by the certificate signed by the wrong CA (impersonates a store).
UNTRUSTED_CLIENT_CN = "store-a"


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a generated test PKI (see module docstring)."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    wrong_ca_file: Path | None = None
    #: (cert, key) with CN ``store-a`` signed by the wrong CA.
    untrusted_client: tuple[Path, Path] | None = None

    def client(self, name: str) -> tuple[Path, Path]:
        """``(cert_path, key_path)`` of the client certificate for ``name``."""
        try:
            return self.clients[name]
        except KeyError:
            raise KeyError(
                f"no client certificate for {name!r}; generated: {sorted(self.clients)}"
            ) from None


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str = "Store Edge Agent tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _validity() -> tuple[_dt.datetime, _dt.datetime]:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now - _dt.timedelta(days=1), now + _dt.timedelta(days=30)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    not_before, not_after = _validity()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    cn: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    server: bool,
    san: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    not_before, not_after = _validity()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(dir: Path, clients: Iterable[str] = ("store-a", "store-b", "cloud")) -> TlsFiles:  # noqa: A002
    """Generate a complete throwaway PKI into ``dir`` (created if needed)."""
    dir = Path(dir)  # noqa: A001
    dir.mkdir(parents=True, exist_ok=True)

    ca_cert, ca_key = _make_ca("Store Edge Agent test CA")
    _write_cert(dir / "ca.crt", ca_cert)
    _write_key(dir / "ca.key", ca_key)

    server_cert, server_key = _make_leaf(
        "127.0.0.1",
        ca_cert,
        ca_key,
        server=True,
        san=[
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            x509.DNSName("localhost"),
        ],
    )
    _write_cert(dir / "server.crt", server_cert)
    _write_key(dir / "server.key", server_key)

    client_files: dict[str, tuple[Path, Path]] = {}
    for name in clients:
        if not name or "/" in name or "+" in name or "#" in name:
            raise ValueError(f"client name {name!r} is not usable as an MQTT topic level")
        cert, key = _make_leaf(name, ca_cert, ca_key, server=False)
        cert_path, key_path = dir / f"client-{name}.crt", dir / f"client-{name}.key"
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
        client_files[name] = (cert_path, key_path)

    wrong_ca_cert, wrong_ca_key = _make_ca("Unrelated CA")
    _write_cert(dir / "wrong-ca.crt", wrong_ca_cert)
    _write_key(dir / "wrong-ca.key", wrong_ca_key)

    rogue_cert, rogue_key = _make_leaf(UNTRUSTED_CLIENT_CN, wrong_ca_cert, wrong_ca_key, server=False)
    _write_cert(dir / "untrusted-client.crt", rogue_cert)
    _write_key(dir / "untrusted-client.key", rogue_key)

    return TlsFiles(
        ca_file=dir / "ca.crt",
        server_cert=dir / "server.crt",
        server_key=dir / "server.key",
        clients=client_files,
        wrong_ca_file=dir / "wrong-ca.crt",
        untrusted_client=(dir / "untrusted-client.crt", dir / "untrusted-client.key"),
    )
