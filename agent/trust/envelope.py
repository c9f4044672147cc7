"""The signed envelope: canonical bytes, sealing and verification. Pure functions only.

Wire format (docs/protocol.md, which is the specification; docs/security.md): one JSON
object, RFC 8785 (JCS) canonical, holding `v, alg, kid, node, topic, kind, session, seq, ts,
body` and `sig`. The signature is Ed25519 over `SIGNING_CONTEXT + JCS(object without "sig")`.

One byte string per message: a payload is accepted only if its bytes are exactly the
canonical form of what they parse to (`non_canonical` otherwise, checked before the
signature). In canonical form the "sig" member sits right before the top-level "topic"
member, so cutting it out gives back the signed bytes without re-encoding anything, and a
byte-identical copy is the only possible duplicate.

Versioning: `v` is read before anything else. A consumer rejects a version it does not know
with `unsupported_version` (never `malformed`), and the signing context names the version,
so a v1 signature can never be taken for a v2 one. Upgrade consumers first, then nodes.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust.bridge import Bridges, added_prefix
from agent.trust.canonical import MAX_SAFE_INTEGER, canonical, read
from agent.trust.keys import TrustStore

VERSION = 1
ALGORITHM = "Ed25519"
SIGNING_CONTEXT = b"edge-agent-envelope-v1\n"
SIGNED_FIELDS = ("v", "alg", "kid", "node", "topic", "kind", "session", "seq", "ts", "body")
MAX_PAYLOAD_BYTES = 256 * 1024  # far above any reading; bounds the parser's work
_SIG_MEMBER = b',"sig":"'
_TOPIC_MEMBER = b',"topic":'
# 64 bytes in base64url without padding: the 86th character carries 2 bits and 4 unused ones,
# which must be zero (A, Q, g or w), so that only one spelling of a signature verifies.
_SIGNATURE_TEXT = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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


# Rejection reasons, in the order of the checks: stable strings that consumers may match on
# (docs/protocol.md, docs/security.md).
MALFORMED = "malformed"
UNSUPPORTED_VERSION = "unsupported_version"
NON_CANONICAL = "non_canonical"
UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
REVOKED_KEY = "revoked_key"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
TOPIC_MISMATCH = "topic_mismatch"
UNKNOWN_PREFIX = "unknown_prefix"  # arrived under levels no configured bridge prefix names
PREFIX_NOT_ALLOWED = "prefix_not_allowed"  # a node under a bridge prefix (or none) it is not bound to
NODE_NOT_ALLOWED = "node_not_allowed"
CLOCK_SKEW = "clock_skew"
DUPLICATE = "duplicate"  # set by agent.trust.verify.Verifier, which keeps state per node
REPLAY = "replay"  # likewise
REASONS = (MALFORMED, UNSUPPORTED_VERSION, NON_CANONICAL, UNSUPPORTED_ALGORITHM, REVOKED_KEY, UNKNOWN_KEY,
           BAD_SIGNATURE, TOPIC_MISMATCH, UNKNOWN_PREFIX, PREFIX_NOT_ALLOWED, NODE_NOT_ALLOWED, CLOCK_SKEW,
           DUPLICATE, REPLAY)
NO_BRIDGES = Bridges()

# Kinds that have no age limit: a key rotation notice stays true however old it is, and a
# death ("status" whose body says "offline": the Last Will, sealed when its connection
# opened, or a goodbye) only ever claims a node is gone, which anyone who can drop traffic
# achieves anyway. Everything else older than max_age is `clock_skew`.
KEY_KIND = "key"
STATUS_KIND = "status"


@dataclass(frozen=True)
class Verdict:
    """The outcome of opening one message. `fields` is set once the envelope's shape is valid.

    Every reason after `bad_signature` in the order of checks describes authentic content.
    """

    valid: bool
    reason: str | None = None
    detail: str = ""
    fields: dict[str, Any] | None = None


_SHAPE = {
    "v": int, "alg": str, "kid": str, "node": str, "topic": str, "kind": str,
    "session": str, "seq": int, "ts": int, "body": dict, "sig": str,
}


_JSON_TYPES = {int: "integer", str: "string", dict: "object"}


def _shape_problem(fields: dict[str, Any]) -> str | None:
    if fields.keys() != _SHAPE.keys():
        missing = [name for name in _SHAPE if name not in fields]
        if missing:
            return f"missing field {missing[0]!r}"
        return f"unexpected fields {sorted(fields.keys() - _SHAPE.keys())[:5]}"
    for name, kind in _SHAPE.items():
        if type(fields[name]) is not kind:  # what JSON parses to: exact types (a bool is no int here)
            return f"field {name!r} must be a JSON {_JSON_TYPES[kind]}"
    for name in ("seq", "ts"):
        if not 0 <= fields[name] <= MAX_SAFE_INTEGER:
            return f"field {name!r} must be between 0 and 2^53-1"
    if not _SIGNATURE_TEXT.fullmatch(fields["sig"]):
        return "field 'sig' is not the base64url spelling of a 64-byte Ed25519 signature"
    return None


def parse(payload: bytes) -> dict[str, Any] | Verdict:
    """The fields of a well-formed, canonical v1 envelope, or the Verdict rejecting it
    (`malformed`, `unsupported_version` or `non_canonical`; `fields` set for the last)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Verdict(False, MALFORMED, f"{len(payload)} bytes is over the {MAX_PAYLOAD_BYTES} byte limit")
    try:
        fields, difference = read(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return Verdict(False, MALFORMED, f"not strict JSON: {exc}"[:200])
    if not isinstance(fields, dict):
        return Verdict(False, MALFORMED, "not a JSON object")
    version = fields.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        return Verdict(False, MALFORMED, "missing field 'v'" if version is None else "field 'v' must be a JSON integer")
    if version != VERSION:
        return Verdict(False, UNSUPPORTED_VERSION, f"version {version!r}; this verifier reads {VERSION}"[:80])
    problem = _shape_problem(fields)
    if problem:
        return Verdict(False, MALFORMED, problem)
    if difference:
        return Verdict(False, NON_CANONICAL, difference[:300], fields)
    return fields


def signed_bytes(payload: bytes, signature: str) -> bytes:
    """The bytes the signature covers: canonical `payload` without its top-level "sig" member.

    In canonical form that member stands right before the top-level `,"topic":`; the last
    `,"sig":"` is the top-level one, because only "topic" (a string, which cannot hold an
    unescaped quote), "ts" and "v" follow it.
    """
    at = payload.rfind(_SIG_MEMBER)
    return payload[:at] + payload[at + len(_SIG_MEMBER) + len(signature) + 1:]


def _topic_problem(fields: dict[str, Any], topic: str, bridges: Bridges) -> tuple[str, str] | None:
    """Step 8: the arrival topic is the signed topic, directly or under a configured bridge
    prefix that admits the node, and the signed topic has the agents' shape."""
    signed = fields["topic"]
    prefix = added_prefix(topic, signed)
    if prefix is None:
        return TOPIC_MISMATCH, f"signed for {signed!r}, arrived on {topic!r}"[:300]
    if not bridges.knows(prefix):
        return UNKNOWN_PREFIX, (f"arrived under {prefix!r}, which is no bridge prefix configured here (signed for "
                                f"{signed!r}); if a bridge adds it, configure --bridge-prefix {prefix}")[:300]
    levels = signed.split("/")
    if len(levels) not in (3, 4) or "" in levels or levels[1] != fields["node"] or levels[2] != fields["kind"]:
        return TOPIC_MISMATCH, (f"topic {signed!r} is not <prefix>/{fields['node']}/{fields['kind']}[/<subject>] "
                                "for the signed node and kind")[:300]
    refusal = bridges.refusal(prefix, fields["node"])
    return None if refusal is None else (PREFIX_NOT_ALLOWED, refusal)


def has_age_limit(fields: dict[str, Any]) -> bool:
    """False for a key rotation notice and for a death (a status saying "offline")."""
    if fields["kind"] == KEY_KIND:
        return False
    return not (fields["kind"] == STATUS_KIND and fields["body"].get("state") == "offline")


def _time_problem(fields: dict[str, Any], now_ms: int, max_skew_ms: int | None, max_age_ms: int | None) -> str | None:
    ahead = fields["ts"] - now_ms
    if max_skew_ms is not None and ahead > max_skew_ms:
        return f"timestamp is {ahead} ms ahead of this clock, limit {max_skew_ms} ms"
    if max_age_ms is not None and -ahead > max_age_ms and has_age_limit(fields):
        return f"timestamp is {-ahead} ms old, limit {max_age_ms} ms"
    return None


def open_envelope(
    payload: bytes,
    topic: str,
    trust: TrustStore,
    *,
    now_ms: int | None = None,
    max_skew_ms: int | None = None,
    max_age_ms: int | None = None,
    bridges: Bridges = NO_BRIDGES,
) -> Verdict:
    """Verify one received message against the topic it arrived on and the trust store.

    Stateless: replays and duplicates need memory, see agent.trust.verify.Verifier. With `now_ms`,
    a timestamp more than `max_skew_ms` ahead or more than `max_age_ms` behind (for the kinds
    that have an age limit, `has_age_limit`) is `clock_skew`; a bound left at None is not checked.
    `bridges`: the prefixes remapping bridges add in front of the signed topic, and the nodes
    each admits (agent.trust.bridge); by default a message must arrive on its signed topic.
    """
    parsed = parse(payload)
    if isinstance(parsed, Verdict):
        return parsed
    fields = parsed
    if fields["alg"] != ALGORITHM:
        return Verdict(False, UNSUPPORTED_ALGORITHM, f"alg {fields['alg']!r}; this verifier knows {ALGORITHM}"[:80],
                       fields)
    kid = fields["kid"]
    if trust.is_revoked(kid):
        return Verdict(False, REVOKED_KEY, f"key {kid} is revoked (or was announced by a revoked key)", fields)
    trusted = trust.keys.get(kid)
    if trusted is None:
        return Verdict(False, UNKNOWN_KEY, f"key {kid[:64]!r} is not in the trust store", fields)
    try:
        signature = base64.urlsafe_b64decode(fields["sig"] + "==")
        trusted.public_key.verify(signature, SIGNING_CONTEXT + signed_bytes(payload, fields["sig"]))
    except InvalidSignature:
        detail = "the signature does not match the bytes (altered, or signed by another key)"
        return Verdict(False, BAD_SIGNATURE, detail, fields)
    refused = _topic_problem(fields, topic, bridges)
    if refused:
        return Verdict(False, refused[0], refused[1], fields)
    if trusted.nodes is not None and fields["node"] not in trusted.nodes:
        return Verdict(False, NODE_NOT_ALLOWED, _binding_detail(kid, trusted.nodes, fields["node"]), fields)
    problem = None if now_ms is None else _time_problem(fields, now_ms, max_skew_ms, max_age_ms)
    if problem:
        return Verdict(False, CLOCK_SKEW, problem, fields)
    return Verdict(True, None, "", fields)


def _binding_detail(kid: str, nodes: frozenset[str], node: str) -> str:
    filed = ", ".join(sorted(nodes)[:3])
    return (f"key {kid} speaks for node {filed}, not {node!r}: a trust store file name is the node id its key "
            f"speaks for (`edge-agent trust add {node} KEYFILE --trust DIR`)")[:300]
