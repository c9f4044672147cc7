"""Node keys: Ed25519 key files, key ids, and the consumers' trust store."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyError_(Exception):
    """A key file that cannot be used; the message says which file and why."""


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 bytes of SHA-256 over the raw 32-byte public key, as 32 hex digits."""
    return hashlib.sha256(raw_public(public_key)).hexdigest()[:32]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def generate(path: Path) -> tuple[Ed25519PrivateKey, str]:
    """Write a new private key (0600, never overwriting) and `<path>.pub`; return key and id."""
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyError_(f"{path}: a key already exists there; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    pub_path = Path(f"{path}.pub")
    pub_path.write_bytes(public_pem(private_key.public_key()))
    return private_key, key_id(private_key.public_key())


def load_private(path: Path, *, check_mode: bool = True) -> Ed25519PrivateKey:
    """Load the node's private key, refusing one that group or others can read."""
    try:
        info = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise KeyError_(f"{path}: cannot read the signing key: {exc.strerror}; create one with "
                        f"`edge-agent keygen --key {path}`") from None
    if check_mode and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_(f"{path}: the signing key is readable by group or others "
                        f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyError_(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{path}: not an Ed25519 key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
        key = serialization.load_pem_public_key(data)
    except OSError as exc:
        raise KeyError_(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError:
        if b"PRIVATE KEY" in data:
            raise KeyError_(f"{path}: this is a private key; give its public half (the .pub file keygen "
                            "wrote beside it), and never copy a private key off its node") from None
        raise KeyError_(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyError_(f"{path}: not an Ed25519 public key")
    return key


@dataclass(frozen=True)
class TrustedKey:
    public_key: Ed25519PublicKey
    nodes: frozenset[str] | None = None  # None: any node id may use this key (tests, demos)
    announced_by: str | None = None  # kid whose signed rotation notice introduced this key


REVOCATION_FILE = "revoked"
ANNOUNCED_BY_SUFFIX = ".announced-by"
_KEY_ID = re.compile(r"[0-9a-f]{32}")


def parse_revocations(text: str, source: str) -> set[str]:
    """Key ids from a revocation list: one per line; blank lines and `#` comments ignored."""
    revoked = set()
    for number, line in enumerate(text.splitlines(), 1):
        kid = line.split("#", 1)[0].strip()
        if not kid:
            continue
        if not _KEY_ID.fullmatch(kid):
            raise KeyError_(f"{source}:{number}: {kid[:40]!r} is not a key id (32 lowercase hex digits)")
        revoked.add(kid)
    return revoked


@dataclass
class TrustStore:
    """Public keys consumers accept, by key id, each bound to the node ids it may speak for.

    On disk see `key_files`; `revoked` lists key ids that are refused even if a key file is
    still present.
    """

    keys: dict[str, TrustedKey] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)

    def add(self, public_key: Ed25519PublicKey, nodes: frozenset[str] | None = None,
            announced_by: str | None = None) -> str:
        """Trust `public_key` for `nodes` as well as for any nodes it already speaks for."""
        kid = key_id(public_key)
        known = self.keys.get(kid)
        if known is not None:
            nodes = None if known.nodes is None or nodes is None else known.nodes | nodes
            announced_by = known.announced_by if announced_by is None else announced_by
        self.keys[kid] = TrustedKey(public_key, nodes, announced_by)
        return kid

    def is_revoked(self, kid: str) -> bool:
        """Revoked itself, or learned from a rotation notice signed by a revoked key (or by one
        learned so, and so on): whoever stole a key cannot escape its revocation by rotating."""
        seen: set[str] = set()
        while kid not in seen:
            if kid in self.revoked:
                return True
            seen.add(kid)
            known = self.keys.get(kid)
            if known is None or known.announced_by is None:
                return False
            kid = known.announced_by
        return False

    def announced_from(self, kid: str) -> list[str]:
        """The keys introduced by `kid`'s rotation notices, and by theirs, and so on."""
        found: list[str] = []
        frontier = [kid]
        while frontier:
            parent = frontier.pop()
            for child, known in sorted(self.keys.items()):
                if known.announced_by == parent and child not in found and child != kid:
                    found.append(child)
                    frontier.append(child)
        return found

    @classmethod
    def load(cls, directory: Path) -> "TrustStore":
        store = cls()
        for entry in key_files(directory):
            store.add(entry.public_key, frozenset({entry.node}), entry.announced_by)
        store.revoked = read_revocations(directory)
        return store


@dataclass(frozen=True)
class KeyFile:
    """One key file of a trust store folder."""

    node: str  # the node id it may speak for: its file name, or its folder's name
    kid: str
    path: Path
    public_key: Ed25519PublicKey
    announced_by: str | None  # the kid whose rotation notice introduced it


def key_files(directory: Path) -> list[KeyFile]:
    """The layout (docs/protocol.md, "Trust store"): `<node>.pub` is a key of node `<node>`;
    `<node>/<name>.pub` another key of it, with `<node>/<name>.announced-by` holding the key
    id whose rotation notice introduced it. Nothing else in the folder counts."""
    if not directory.is_dir():
        raise KeyError_(f"{directory}: trust store folder not found; create one with "
                        f"`edge-agent trust add NODE KEYFILE --trust {directory}`")
    if (directory / "agent.toml").exists():  # its state/node.key.pub would speak for a node called "state"
        hint = f"; its trust store is {directory / 'trust'}" if (directory / "trust").is_dir() else ""
        raise KeyError_(f"{directory}: an agent's folder (it holds agent.toml), not a trust store{hint}")
    out = []
    for pub in sorted(directory.glob("*.pub")):
        public = load_public(pub)
        out.append(KeyFile(pub.name.removesuffix(".pub"), key_id(public), pub, public, None))
    for pub in sorted(directory.glob("*/*.pub")):
        marker = pub.with_suffix(ANNOUNCED_BY_SUFFIX)
        announced_by = marker.read_text().strip() if marker.exists() else None
        public = load_public(pub)
        out.append(KeyFile(pub.parent.name, key_id(public), pub, public, announced_by))
    return out


def read_revocations(directory: Path) -> set[str]:
    revocations = directory / REVOCATION_FILE
    try:
        text = revocations.read_text()
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyError_(f"{revocations}: cannot read the revocation list: {exc}") from None
    return parse_revocations(text, str(revocations))


def file_key(directory: Path, node: str, public_key: Ed25519PublicKey) -> Path | None:
    """File `public_key` as a key of `node`: as `<node>.pub`, or as `<node>/<kid>.pub` when
    the node already has another key. None if the node has this key already."""
    if any(e.node == node and e.kid == key_id(public_key) for e in key_files(directory)):
        return None
    path = directory / f"{node}.pub"
    if path.exists():
        path = directory / node / f"{key_id(public_key)}.pub"
        path.parent.mkdir(exist_ok=True)
    _write_atomic(path, public_pem(public_key))
    return path


def revoke(directory: Path, kid: str, note: str = "") -> bool:
    """Add `kid` to the folder's revocation list; False if it is listed already."""
    if not _KEY_ID.fullmatch(kid):
        raise KeyError_(f"{kid[:40]!r} is not a key id (32 lowercase hex digits)")
    if kid in read_revocations(directory):
        return False
    path = directory / REVOCATION_FILE
    old = path.read_bytes() if path.exists() else b""
    line = f"{kid}  # {note}\n" if note else f"{kid}\n"
    _write_atomic(path, old + (b"" if old.endswith(b"\n") or not old else b"\n") + line.encode())
    return True


def write_trusted(directory: Path, node: str, public_key: Ed25519PublicKey, announced_by: str | None = None) -> Path:
    """Record `public_key` as a key of `node` in a trust store folder; atomic, idempotent.

    `announced_by` (the kid whose rotation notice introduced it) goes beside it in
    `<kid>.announced-by`, so revoking that kid later revokes this key too.
    """
    path = directory / node / f"{key_id(public_key)}.pub"
    path.parent.mkdir(parents=True, exist_ok=True)
    if announced_by is not None:
        _write_atomic(path.with_suffix(ANNOUNCED_BY_SUFFIX), f"{announced_by}\n".encode())
    _write_atomic(path, public_pem(public_key))
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
