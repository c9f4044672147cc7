"""What the board access tests share: a test CA and a server certificate for 127.0.0.1 (and a
client certificate), made with cryptography; a small HTTP client on http.client that keeps the
cookie and can send from another loopback address (127.0.0.2 plays the trusted proxy)."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    leaf_spki_sha256: str  # base64 of the leaf's public key hash, as Chromium's SPKI allow-list wants it


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    path.with_suffix(".key").chmod(0o600)


def _issue(subject: str, ca_key, issuer: x509.Name, *, ca: bool, usage, san=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
    return key, builder.sign(ca_key or key, hashes.SHA256())


def make_pki(folder: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost signed by it, and a client certificate."""
    import base64

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _issue("edge board test CA", None, _name("edge board test CA"), ca=True, usage=None)
    _write(folder / "ca", ca_key, ca_cert)
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    key, cert = _issue("127.0.0.1", ca_key, ca_cert.subject, ca=False, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                       san=san)
    _write(folder / "board", key, cert)
    client_key, client_cert = _issue("operator", ca_key, ca_cert.subject, ca=False,
                                     usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    _write(folder / "client", client_key, client_cert)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Pki(folder / "ca.crt", folder / "board.crt", folder / "board.key", folder / "client.crt",
               folder / "client.key", base64.b64encode(hashlib.sha256(spki).digest()).decode())


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Client:
    """One browser-like client of a board at 127.0.0.1:`port`: keeps its session cookie."""
    port: int
    source: str = "127.0.0.1"
    context: ssl.SSLContext | None = None
    cookie: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, *, form: dict[str, str] | None = None, headers: dict[str, str] | None = None,
             origin: bool = True, stream: bool = False) -> Reply:
        cls = http.client.HTTPSConnection if self.context else http.client.HTTPConnection
        kwargs = {"context": self.context} if self.context else {}
        conn = cls("127.0.0.1", self.port, timeout=20, source_address=(self.source, 0), **kwargs)
        sent = {**self.extra, **(headers or {})}
        if self.cookie:
            sent["Cookie"] = f"board_session={self.cookie}"
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if method == "POST" and origin:
            sent.setdefault("Origin", self.origin)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = b"" if stream else response.read()
            reply = Reply(response.status, response.getheaders(), data)
        finally:
            conn.close()
        for value in reply.all("set-cookie"):
            if value.startswith("board_session="):
                token = value.split(";", 1)[0].split("=", 1)[1].strip('"')
                self.cookie = token or None
        return reply

    def login(self, username: str, password: str = PASSWORD) -> Reply:
        return self.call("POST", "/login", form={"username": username, "password": password})
