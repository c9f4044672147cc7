"""Key rotation: a new node key announced by a notice that the old key signs.

`edge-agent keygen --rotate` calls `rotate`: it writes a new key in place of the old one and
`<key>.rotation`, a sealed envelope of kind "key" signed by the old key. The daemon publishes
that notice (retained, QoS 1) at start-up through `pending_rotation_notice`, then calls
`rotation_notice_published` once it is safe in the spool. Consumers (agent.trust.verify.Verifier)
that trust the old key then trust the new one for the same node ids, without anyone editing
their trust store. The notice carries sequence number 0 in a session of its own: consumers
keep it outside their replay guard (repeating it teaches nothing new).
The old private key is gone once `rotate` returns: a stolen disk image later holds only the
new key.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.trust import envelope, keys

KIND = envelope.KEY_KIND
BODY_FIELDS = {"action", "alg", "new_kid", "public_key"}


def notice_path(key_path: Path) -> Path:
    return Path(f"{key_path}.rotation")


def rotation_body(new_public: Ed25519PublicKey) -> dict[str, Any]:
    raw = keys.raw_public(new_public)
    return {"action": "rotate", "alg": envelope.ALGORITHM, "new_kid": keys.key_id(new_public),
            "public_key": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


def parse_rotation(body: dict[str, Any]) -> Ed25519PublicKey | str:
    """The announced key, or why the body of a kind "key" message is not a rotation notice."""
    if set(body) != BODY_FIELDS:
        return f"a rotation notice's body has exactly the fields {sorted(BODY_FIELDS)}"
    if body.get("action") != "rotate" or body.get("alg") != envelope.ALGORITHM:
        return "not an Ed25519 rotation notice"
    text, kid = body.get("public_key"), body.get("new_kid")
    if not isinstance(text, str) or not isinstance(kid, str) or len(text) != 43:
        return "rotation notice needs new_kid and a 32-byte base64url public_key"
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(text + "="))
    except (binascii.Error, ValueError):
        return "rotation notice public_key is not an Ed25519 key"
    if keys.key_id(public) != kid:
        return "rotation notice new_kid does not match its public_key"
    return public


@dataclass(frozen=True)
class Rotation:
    old_kid: str
    new_kid: str
    notice: Path


def rotate(key_path: Path, *, node: str, topic_prefix: str,
           clock: Callable[[], float] = time.time) -> Rotation:
    """Replace the key at `key_path` with a new one and leave the signed notice beside it."""
    pending = notice_path(key_path)
    if pending.exists():
        raise keys.KeyError_(f"{pending}: an earlier rotation has not been published yet; start the "
                             "agent once so it publishes it, then rotate again")
    old = keys.load_private(key_path)
    old_kid = keys.key_id(old.public_key())
    staged = Path(f"{key_path}.new")
    new, new_kid = keys.generate(staged)  # refuses to overwrite a half-finished rotation
    payload = envelope.seal(
        old, kid=old_kid, node=node, topic=f"{topic_prefix}/{node}/{KIND}", kind=KIND,
        session=f"rotation-{new_kid[:16]}", seq=0, ts_ms=int(clock() * 1000),
        body=rotation_body(new.public_key()),
    )
    temporary = Path(f"{pending}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(payload)
    os.replace(temporary, pending)
    os.replace(staged, key_path)
    os.replace(f"{staged}.pub", f"{key_path}.pub")
    return Rotation(old_kid, new_kid, pending)


def pending_rotation_notice(key_path: Path) -> tuple[str, bytes] | None:
    """(topic, payload) of a rotation notice still to publish (retained, QoS 1), or None."""
    try:
        payload = notice_path(key_path).read_bytes()
    except FileNotFoundError:
        return None
    parsed = envelope.parse(payload)
    if isinstance(parsed, envelope.Verdict):
        raise keys.KeyError_(f"{notice_path(key_path)}: not a rotation notice ({parsed.reason}: {parsed.detail})")
    return parsed["topic"], payload


def rotation_notice_published(key_path: Path) -> None:
    """Call once the notice is safe: in the durable spool, or acknowledged by the broker."""
    notice_path(key_path).unlink(missing_ok=True)
