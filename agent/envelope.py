"""The signed envelope: canonical bytes, sealing and verification. Pure functions only.

Wire format (see docs/protocol.md): one JSON object, RFC 8785 (JCS) canonical, holding
`v, alg, kid, node, topic, kind, session, seq, ts, body` and `sig`. The signature is
Ed25519 over `SIGNING_CONTEXT + JCS(object without "sig")`.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.keys import TrustStore

VERSION = 1
ALGORITHM = "Ed25519"
SIGNING_CONTEXT = b"edge-agent-envelope-v1\n"
SIGNED_FIELDS = ("v", "alg", "kid", "node", "topic", "kind", "session", "seq", "ts", "body")
MAX_SAFE_INTEGER = 2**53 - 1


class _NeedsFullJcs(Exception):
    pass


def _fast_form(value: Any) -> Any:
    """Value ready for json.dumps such that its output equals JCS, or raise _NeedsFullJcs.

    JCS writes numbers as ECMAScript does: integral floats without ".0", and exponents
    outside [1e-6, 1e21). Python's repr agrees on the shortest digits for 1e-4 <= |x| < 1e16,
    so only those floats take the fast path; keys must be ASCII so code-point order equals
    JCS's UTF-16 order.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise _NeedsFullJcs
            out[key] = _fast_form(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_fast_form(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"integer {value} is beyond 2^53: send it as a string")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be sent: JSON has no NaN or infinity")
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        if 1e-4 <= abs(value) < 1e16:
            return value
        raise _NeedsFullJcs
    raise TypeError(f"cannot put a {type(value).__name__} in a message")


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of `value`."""
    try:
        form = _fast_form(value)
    except _NeedsFullJcs:
        return rfc8785.dumps(value)
    return json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(
    private_key: Ed25519PrivateKey,
    *,
    kid: str,
    node: str,
    topic: str,
    kind: str,
    session: str,
    seq: int,
    ts_ms: int,
    body: dict[str, Any],
) -> bytes:
    """The bytes to publish on `topic`: a canonical JSON envelope with its signature."""
    fields = {
        "v": VERSION, "alg": ALGORITHM, "kid": kid, "node": node, "topic": topic,
        "kind": kind, "session": session, "seq": seq, "ts": ts_ms, "body": body,
    }
    signed = canonical(fields)
    fields["sig"] = _b64(private_key.sign(SIGNING_CONTEXT + signed))
    return canonical(fields)


# Rejection reasons: stable strings that consumers may match on.
MALFORMED = "malformed"
UNSUPPORTED_VERSION = "unsupported_version"
UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
UNKNOWN_KEY = "unknown_key"
REVOKED_KEY = "revoked_key"
BAD_SIGNATURE = "bad_signature"
TOPIC_MISMATCH = "topic_mismatch"
NODE_NOT_ALLOWED = "node_not_allowed"
CLOCK_SKEW = "clock_skew"


@dataclass(frozen=True)
class Verdict:
    """The outcome of opening one message. `fields` is set whenever the JSON parsed."""

    valid: bool
    reason: str | None = None
    detail: str = ""
    fields: dict[str, Any] | None = None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Two parsers could disagree on which value counts: refuse the message.
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _shape_problem(fields: dict[str, Any]) -> str | None:
    expected = {
        "v": int, "alg": str, "kid": str, "node": str, "topic": str, "kind": str,
        "session": str, "seq": int, "ts": int, "body": dict, "sig": str,
    }
    for name, kind in expected.items():
        if name not in fields:
            return f"missing field {name!r}"
        if not isinstance(fields[name], kind) or isinstance(fields[name], bool):
            return f"field {name!r} must be a JSON {kind.__name__}"
    extra = set(fields) - set(expected)
    if extra:
        return f"unexpected fields {sorted(extra)}"
    return None


def parse(payload: bytes) -> dict[str, Any] | str:
    """The envelope's fields, or a description of why the bytes are not an envelope."""
    try:
        fields = json.loads(payload, object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError) as exc:
        return f"not JSON: {exc}"[:200]
    if not isinstance(fields, dict):
        return "not a JSON object"
    if fields.get("v") != VERSION:
        return f"version {fields.get('v')!r}"
    return _shape_problem(fields) or fields


def open_envelope(
    payload: bytes,
    topic: str,
    trust: TrustStore,
    *,
    now_ms: int | None = None,
    max_skew_ms: int | None = None,
) -> Verdict:
    """Verify one received message against the topic it arrived on and the trust store."""
    parsed = parse(payload)
    if isinstance(parsed, str):
        reason = UNSUPPORTED_VERSION if parsed.startswith("version ") else MALFORMED
        return Verdict(False, reason, parsed)
    fields = parsed
    if fields["alg"] != ALGORITHM:
        return Verdict(False, UNSUPPORTED_ALGORITHM, f"alg {fields['alg']!r}", fields)
    if fields["kid"] in trust.revoked:
        return Verdict(False, REVOKED_KEY, f"key {fields['kid']} is revoked", fields)
    trusted = trust.keys.get(fields["kid"])
    if trusted is None:
        return Verdict(False, UNKNOWN_KEY, f"key {fields['kid']} is not in the trust store", fields)
    unsigned = {name: fields[name] for name in SIGNED_FIELDS}
    try:
        signature = _unb64(fields["sig"])
        trusted.public_key.verify(signature, SIGNING_CONTEXT + canonical(unsigned))
    except (InvalidSignature, ValueError, TypeError):
        return Verdict(False, BAD_SIGNATURE, "signature does not match the content", fields)
    if fields["topic"] != topic:
        return Verdict(False, TOPIC_MISMATCH, f"signed for {fields['topic']!r}, arrived on {topic!r}", fields)
    if trusted.nodes is not None and fields["node"] not in trusted.nodes:
        return Verdict(False, NODE_NOT_ALLOWED, f"key {fields['kid']} may not speak for {fields['node']!r}", fields)
    if now_ms is not None and max_skew_ms is not None and abs(now_ms - fields["ts"]) > max_skew_ms:
        return Verdict(False, CLOCK_SKEW, f"timestamp {fields['ts']} is {now_ms - fields['ts']} ms from now", fields)
    return Verdict(True, None, "", fields)
