"""The signed envelope: canonical bytes, sealing and verification. Pure functions only.

Wire format (see docs/protocol.md and docs/security.md): one JSON object, RFC 8785 (JCS)
canonical, holding `v, alg, kid, node, topic, kind, session, seq, ts, body` and `sig`. The
signature is Ed25519 over `SIGNING_CONTEXT + JCS(object without "sig")`.

Verification checks the exact bytes received, never a re-encoding: in canonical form the
"sig" member sits right before the top-level "topic" member, so removing it gives back the
signed bytes. Exactly one byte string verifies for each signed message, so a byte-identical
copy is the only possible duplicate.

Versioning: `v` is read before anything else. A consumer rejects a version it does not know
with `unsupported_version` (never `malformed`), and the signing context names the version,
so a v1 signature can never be taken for a v2 one. Upgrade consumers first, then nodes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust.keys import TrustStore

VERSION = 1
ALGORITHM = "Ed25519"
SIGNING_CONTEXT = b"edge-agent-envelope-v1\n"
SIGNED_FIELDS = ("v", "alg", "kid", "node", "topic", "kind", "session", "seq", "ts", "body")
MAX_SAFE_INTEGER = 2**53 - 1
MAX_PAYLOAD_BYTES = 256 * 1024  # far above any reading; bounds the parser's work
_SIG_MEMBER = b',"sig":"'
_TOPIC_MEMBER = b',"topic":'
_SIGNATURE_TEXT = re.compile(r"[A-Za-z0-9_-]{86}")  # 64 bytes, base64url without padding


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


def _signature_bytes(text: str) -> bytes | None:
    """The 64 signature bytes, or None unless `text` is their one canonical base64url form."""
    if not _SIGNATURE_TEXT.fullmatch(text):
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "==")
    except binascii.Error:
        return None
    # The last character carries 4 unused bits; only one spelling may verify.
    return raw if _b64(raw) == text else None


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
    signed = canonical({
        "v": VERSION, "alg": ALGORITHM, "kid": kid, "node": node, "topic": topic,
        "kind": kind, "session": session, "seq": seq, "ts": ts_ms, "body": body,
    })
    signature = _b64(private_key.sign(SIGNING_CONTEXT + signed))
    # "sig" sorts right before "topic"; the last `,"topic":` is the top-level one because
    # only "ts" and "v" (integers) follow it and a JSON string cannot hold an unescaped quote.
    at = signed.rfind(_TOPIC_MEMBER)
    return signed[:at] + _SIG_MEMBER + signature.encode() + b'"' + signed[at:]


# Rejection reasons: stable strings that consumers may match on (docs/security.md).
MALFORMED = "malformed"
UNSUPPORTED_VERSION = "unsupported_version"
UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
UNKNOWN_KEY = "unknown_key"
REVOKED_KEY = "revoked_key"
BAD_SIGNATURE = "bad_signature"
TOPIC_MISMATCH = "topic_mismatch"
NODE_NOT_ALLOWED = "node_not_allowed"
CLOCK_SKEW = "clock_skew"
DUPLICATE = "duplicate"  # set by agent.trust.verify.Verifier, which keeps per-session state
REPLAY = "replay"  # likewise
REASONS = (MALFORMED, UNSUPPORTED_VERSION, UNSUPPORTED_ALGORITHM, UNKNOWN_KEY, REVOKED_KEY,
           BAD_SIGNATURE, TOPIC_MISMATCH, NODE_NOT_ALLOWED, CLOCK_SKEW, DUPLICATE, REPLAY)


@dataclass(frozen=True)
class Verdict:
    """The outcome of opening one message. `fields` is set whenever the JSON parsed.

    Every reason after `bad_signature` in the order of checks describes authentic content.
    """

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


_SHAPE = {
    "v": int, "alg": str, "kid": str, "node": str, "topic": str, "kind": str,
    "session": str, "seq": int, "ts": int, "body": dict, "sig": str,
}


def _shape_problem(fields: dict[str, Any]) -> str | None:
    for name, kind in _SHAPE.items():
        if name not in fields:
            return f"missing field {name!r}"
        if not isinstance(fields[name], kind) or isinstance(fields[name], bool):
            return f"field {name!r} must be a JSON {kind.__name__}"
    extra = set(fields) - set(_SHAPE)
    if extra:
        return f"unexpected fields {sorted(extra)[:5]}"
    for name in ("seq", "ts"):
        if not 0 <= fields[name] <= MAX_SAFE_INTEGER:
            return f"field {name!r} must be between 0 and 2^53-1"
    return None


def parse(payload: bytes) -> dict[str, Any] | str:
    """The envelope's fields, or a description of why the bytes are not a v1 envelope.

    A description starting with "version " means a well-formed object of another version.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        return f"{len(payload)} bytes is over the {MAX_PAYLOAD_BYTES} byte limit"
    try:
        fields = json.loads(payload, object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return f"not JSON: {exc}"[:200]
    if not isinstance(fields, dict):
        return "not a JSON object"
    version = fields.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        return "missing field 'v'" if version is None else "field 'v' must be a JSON int"
    if version != VERSION:
        return f"version {version!r}"[:60]
    return _shape_problem(fields) or fields


def signed_bytes(payload: bytes, signature: str) -> bytes | None:
    """The bytes the signature covers: `payload` without its top-level "sig" member.

    None when the member is not where canonical form puts it. Soundness: if what remains
    verifies, it is a sealed object, which has no top-level "sig"; inserting a member
    anywhere but at a top-level boundary makes invalid JSON or leaves the top level without
    "sig", so the parsed fields are exactly the signed fields plus "sig".
    """
    member = _SIG_MEMBER + signature.encode() + b'"'
    at = payload.rfind(_SIG_MEMBER)
    if at < 0 or not payload.startswith(member + _TOPIC_MEMBER, at):
        return None
    return payload[:at] + payload[at + len(member):]


def _topic_problem(fields: dict[str, Any], topic: str) -> str | None:
    if fields["topic"] != topic:
        return f"signed for {fields['topic']!r}, arrived on {topic!r}"[:300]
    levels = topic.split("/")
    if len(levels) < 3 or levels[1] != fields["node"] or levels[2] != fields["kind"]:
        return f"topic {topic!r} does not name node {fields['node']!r} and kind {fields['kind']!r}"[:300]
    return None


def open_envelope(
    payload: bytes,
    topic: str,
    trust: TrustStore,
    *,
    now_ms: int | None = None,
    max_skew_ms: int | None = None,
    max_age_ms: int | None = None,
) -> Verdict:
    """Verify one received message against the topic it arrived on and the trust store.

    Stateless: replays and duplicates need memory, see agent.trust.verify.Verifier. With `now_ms`,
    a timestamp more than `max_skew_ms` ahead or more than `max_age_ms` behind is
    `clock_skew`; each bound left at None is not checked.
    """
    parsed = parse(payload)
    if isinstance(parsed, str):
        reason = UNSUPPORTED_VERSION if parsed.startswith("version ") else MALFORMED
        return Verdict(False, reason, parsed)
    fields = parsed
    if fields["alg"] != ALGORITHM:
        return Verdict(False, UNSUPPORTED_ALGORITHM, f"alg {fields['alg']!r}"[:80], fields)
    kid = fields["kid"]
    if trust.is_revoked(kid):
        return Verdict(False, REVOKED_KEY, f"key {kid} is revoked (or was announced by a revoked key)", fields)
    trusted = trust.keys.get(kid)
    if trusted is None:
        return Verdict(False, UNKNOWN_KEY, f"key {kid[:64]!r} is not in the trust store", fields)
    signature = _signature_bytes(fields["sig"])
    if signature is None:
        return Verdict(False, MALFORMED, "field 'sig' is not a base64url Ed25519 signature", fields)
    signed = signed_bytes(payload, fields["sig"])
    if signed is None:
        return Verdict(False, MALFORMED, "not in canonical form (RFC 8785)", fields)
    try:
        trusted.public_key.verify(signature, SIGNING_CONTEXT + signed)
    except InvalidSignature:
        return Verdict(False, BAD_SIGNATURE, "signature does not match the bytes (altered or re-encoded)", fields)
    problem = _topic_problem(fields, topic)
    if problem:
        return Verdict(False, TOPIC_MISMATCH, problem, fields)
    if trusted.nodes is not None and fields["node"] not in trusted.nodes:
        return Verdict(False, NODE_NOT_ALLOWED, f"key {kid} may not speak for {fields['node']!r}", fields)
    if now_ms is not None:
        ahead = fields["ts"] - now_ms
        if max_skew_ms is not None and ahead > max_skew_ms:
            detail = f"timestamp is {ahead} ms ahead of this clock, limit {max_skew_ms} ms"
            return Verdict(False, CLOCK_SKEW, detail, fields)
        if max_age_ms is not None and -ahead > max_age_ms:
            return Verdict(False, CLOCK_SKEW, f"timestamp is {-ahead} ms old, limit {max_age_ms} ms", fields)
    return Verdict(True, None, "", fields)
