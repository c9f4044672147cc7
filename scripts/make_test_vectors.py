"""Write docs/test-vectors/: keys, a trust store folder and vectors.json, the messages a
verifier of envelope v1 must accept or refuse, each with its topic and expected verdict.

Everything is deterministic (keys from fixed seeds, Ed25519 signatures are deterministic,
fixed clock), so the committed files are exactly what this script writes; a test checks it
(`--check`) and runs the reference verifier over them. The expected verdicts are written
here by hand from docs/protocol.md, never taken from the reference verifier.

    .venv/bin/python scripts/make_test_vectors.py [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import base64
import filecmp
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from agent.trust import envelope, keys, rotation  # noqa: E402
from agent.trust.canonical import canonical  # noqa: E402

OUT = ROOT / "docs" / "test-vectors"
NOW_MS = 1_800_000_000_000
MAX_SKEW_MS = 300_000
MAX_AGE_MS = 7 * 86_400_000
RECENT = 8
# The consumer's bridge prefixes (docs/protocol.md, step 8), in the syntax of --bridge-prefix.
BRIDGE_PREFIXES = ["site-a/=press-4", "site-b/", "region-1/site-c/=press-5*"]
FORMAT = "edge-agent envelope v1 test vectors"
HOW = ("Load trust/ as the trust store (docs/protocol.md, 'Trust store'). Verify the vectors in order with one "
       "stateful verifier (replay guard with 'recent' messages, following key rotations, its clock reading now_ms, "
       "max_skew_ms and max_age_ms as given, configured with bridge_prefixes). Each payload (payload_base64; "
       "payload_text is the same bytes for reading, when they are UTF-8) arrives on 'topic' and must get 'valid' "
       "and 'reason'. A vector marked "
       "'stateful' depends on the vectors before it; a stateless verifier may skip those.")


def key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"edge-agent test vector key {label}".encode()).digest())


PRESS_1, PRESS_1_NEXT, PRESS_2, PRESS_3, PRESS_3_NEXT, STRANGER, PRESS_4, PRESS_5 = (
    key(label) for label in ("press-1", "press-1 rotated", "press-2", "press-3", "press-3 rotated", "stranger",
                             "press-4", "press-5"))


def kid(private: Ed25519PrivateKey) -> str:
    return keys.key_id(private.public_key())


class Vectors:
    """The list being written, and the helpers that make each kind of message."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, name: str, topic: str, payload: bytes, reason: str | None, stateful: bool = False) -> bytes:
        item: dict[str, Any] = {"id": len(self.items) + 1, "name": name, "topic": topic,
                                "payload_base64": base64.b64encode(payload).decode()}
        try:
            item["payload_text"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
        item.update(valid=reason is None, reason=reason, stateful=stateful)
        self.items.append(item)
        return payload


def fields(seq: int, stream: str = "host", *, node: str = "press-1", signer: Ed25519PrivateKey = PRESS_1,
           body: dict | None = None, ts: int = NOW_MS - 1000, session: str = "7.5eed0001", **extra: Any) -> dict:
    """The signed fields of a message (without "sig")."""
    topic = f"edge/{node}/{stream}"
    return {"v": 1, "alg": "Ed25519", "kid": kid(signer), "node": node, "topic": topic,
            "kind": stream.split("/")[0], "session": session, "seq": seq, "ts": ts,
            "body": {"cpu": {"percent": 12.5}} if body is None else body, **extra}


def seal(signer: Ed25519PrivateKey = PRESS_1, **kwargs: Any) -> bytes:
    f = fields(signer=signer, **kwargs)
    return envelope.seal(signer, kid=f["kid"], node=f["node"], topic=f["topic"], kind=f["kind"],
                         session=f["session"], seq=f["seq"], ts_ms=f["ts"], body=f["body"])


def signed_as_written(unsigned: bytes, signer: Ed25519PrivateKey = PRESS_1) -> bytes:
    """`unsigned` (any spelling) signed over exactly its bytes, the sig member put before
    "topic" as a verifier that cuts it out expects: only the canonical-form rule refuses it."""
    signature = base64.urlsafe_b64encode(signer.sign(envelope.SIGNING_CONTEXT + unsigned)).rstrip(b"=")
    at = unsigned.rfind(b'"topic"')
    return unsigned[:at] + b'"sig":"' + signature + b'",' + unsigned[at:]


def compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def genuine(v: Vectors) -> None:
    topic = "edge/press-1/host"
    v.add("genuine host reading", topic, seal(seq=100), None)
    v.add("genuine reading with a subject level, numbers in every JCS form", "edge/press-1/modbus/plc-1", seal(
        seq=101, stream="modbus/plc-1",
        body={"values": {"int": -7, "half": 21.5, "tiny": 1e-7, "small": 0.00001, "huge": 1e21, "big": 1.2e17,
                         "exp": 1.5e300, "zero": -0.0, "max_safe": 2**53 - 1}}), None)
    v.add("genuine reading with non-ASCII text and escaped control characters", topic, seal(
        seq=102, body={"text": "Überdruck ☢ \U0001f600 \u2028 \x7f", "controls": "\n\t\b\f\r\x1f\x00\"\\"}), None)
    v.add("genuine reading whose member names sort by UTF-16 code units", topic, seal(
        seq=103, body={"\ue000": 1, "\U0001f600": 2, "a": 3, "": 4}), None)
    v.add("genuine birth (status online)", "edge/press-1/status", seal(
        seq=104, stream="status", body={"state": "online", "reason": "connected"}), None)


NON_CANONICAL: list[tuple[str, Callable[[dict], bytes]]] = [
    ("space after colons", lambda f: json.dumps(f, sort_keys=True, separators=(",", ": ")).encode()),
    ("space after commas", lambda f: json.dumps(f, sort_keys=True, separators=(", ", ":")).encode()),
    ("indented", lambda f: json.dumps(f, sort_keys=True, indent=2).encode()),
    ("leading space", lambda f: b" " + compact(f).encode()),
    ("trailing newline", lambda f: compact(f).encode() + b"\n"),
    ("trailing CRLF", lambda f: compact(f).encode() + b"\r\n"),
    ("byte order mark", lambda f: b"\xef\xbb\xbf" + compact(f).encode()),
    ("escaped ASCII letter", lambda f: compact(f).replace('"host"', '"\\u0068ost"', 1).encode()),
    ("escaped solidus", lambda f: compact({**f, "body": {"path": "/"}}).replace('"/"', '"\\/"').encode()),
    ("escaped non-ASCII letter", lambda f: compact({**f, "body": {"t": "ü"}}).replace("ü", "\\u00fc").encode()),
    ("escaped surrogate pair", lambda f: compact({**f, "body": {"t": "\U0001f600"}}).replace(
        "\U0001f600", "\\ud83d\\ude00").encode()),
    ("upper-case hex in an escape", lambda f: compact({**f, "body": {"t": "\x1f"}}).replace(
        "\\u001f", "\\u001F").encode()),
    ("\\u000a where \\n is due", lambda f: compact({**f, "body": {"t": "\n"}}).replace("\\n", "\\u000a").encode()),
    ("members out of order", lambda f: json.dumps(dict(reversed(list(f.items()))), separators=(",", ":")).encode()),
    ("member names in code-point order instead of UTF-16 order", lambda f: compact(
        {**f, "body": {"\ue000": 1, "\U0001f600": 2}}).encode()),
    ("sig member first", None),  # made below: the whole canonical message with "sig" moved
]
NUMBER_SPELLINGS = [("integral number with a fraction", "5.0"), ("exponent where digits are due", "1e2"),
                    ("upper-case exponent", "1E+21"), ("exponent without a sign", "1e21"),
                    ("two-digit exponent", "1e-07"), ("exponent 16", "1e+16"), ("small number as exponent", "1e-5"),
                    ("digits where an exponent is due", "1000000000000000000000"),
                    ("trailing zero in a fraction", "1.50"), ("more digits than the shortest", "0.10000000000000001"),
                    ("negative zero", "-0"), ("negative zero with a fraction", "-0.0"),
                    ("integer no double spells so", "9007199254740993")]


def non_canonical(v: Vectors) -> None:
    topic = "edge/press-1/host"
    for name, write in NON_CANONICAL:
        if write is None:
            genuine_fields = json.loads(seal(seq=110))
            moved = {"sig": genuine_fields.pop("sig"), **genuine_fields}
            v.add(f"non-canonical: {name}", topic, json.dumps(moved, separators=(",", ":")).encode(),
                  envelope.NON_CANONICAL)
            continue
        v.add(f"non-canonical: {name}, signed over these bytes", topic, signed_as_written(write(fields(110))),
              envelope.NON_CANONICAL)
    for name, number in NUMBER_SPELLINGS:
        unsigned = compact({**fields(110), "body": {"x": "NUMBER"}}).replace('"NUMBER"', number).encode()
        v.add(f"non-canonical number: {name} ({number}), signed over these bytes", topic,
              signed_as_written(unsigned), envelope.NON_CANONICAL)


def malformed(v: Vectors) -> None:
    topic = "edge/press-1/host"
    good = canonical(fields(120)).decode()
    whole = seal(seq=120).decode()
    cases = [
        ("empty", b""), ("truncated", whole[:-9].encode()), ("a JSON array", b"[]"), ("a JSON string", b'"v"'),
        ("not UTF-8 (a Latin-1 byte)", whole.replace("12.5", '"\xfc"').encode("latin-1")),
        ("UTF-16", whole.encode("utf-16")),
        ("lone high surrogate in a member name", signed_as_written(good.replace('"percent"', '"\\ud800"').encode())),
        ("lone low surrogate in a string", signed_as_written(
            canonical(fields(120, body={"t": "x"})).replace(b'"x"', b'"\\udc00"'))),
        ("surrogate encoded in UTF-8", signed_as_written(
            canonical(fields(120, body={"t": "x"})).replace(b'"x"', b'"\xed\xa0\x80"'))),
        ("NaN", signed_as_written(good.replace("12.5", "NaN").encode())),
        ("Infinity", signed_as_written(good.replace("12.5", "Infinity").encode())),
        ("number beyond a double", signed_as_written(good.replace("12.5", "1e400").encode())),
        ("raw control character in a string", signed_as_written(
            canonical(fields(120, body={"t": "x"})).replace(b'"x"', b'"\x01"'))),
        ("duplicate member", whole.replace('{"alg"', '{"alg":"Ed25519","alg"').encode()),
        ("duplicate member in the body",
         signed_as_written(good.replace('{"percent"', '{"percent":1,"percent"').encode())),
        ("missing seq", canonical({k: val for k, val in json.loads(whole).items() if k != "seq"})),
        ("unknown member", canonical({**json.loads(whole), "extra": 1})),
        ("seq negative", signed_as_written(canonical(fields(-1)))),
        ("seq beyond 2^53-1", signed_as_written(canonical(fields(2**53 - 1)).replace(b"9007199254740991",
                                                                                   b"9007199254740992"))),
        ("seq a string", signed_as_written(canonical(fields(120)).replace(b'"seq":120', b'"seq":"120"'))),
        ("ts a fraction", signed_as_written(canonical(fields(120, ts=1.5)))),  # type: ignore[arg-type]
        ("body not an object", signed_as_written(canonical(fields(120, body=[])))),  # type: ignore[arg-type]
        ("v missing", canonical({k: val for k, val in json.loads(whole).items() if k != "v"})),
        ("v true", canonical({**json.loads(whole), "v": True})),
        ("sig too short", canonical({**json.loads(whole), "sig": json.loads(whole)["sig"][:-2]})),
        ("sig spelled with unused bits set", canonical({**json.loads(whole), "sig": _twin(json.loads(whole)["sig"])})),
        ("rotation notice whose body has an extra member", seal(
            seq=0, stream="key", session="rotation-0", body={**rotation.rotation_body(PRESS_2.public_key()), "x": 1})),
    ]
    for name, payload in cases:
        arrival = "edge/press-1/key" if name.startswith("rotation") else topic
        v.add(f"malformed: {name}", arrival, payload, envelope.MALFORMED)


def _twin(signature: str) -> str:
    """The other spelling of the same 64 bytes: the last character's unused low bits flipped."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]


def refused(v: Vectors) -> None:
    topic = "edge/press-1/host"
    whole = json.loads(seal(seq=130))
    v.add("version 2", topic, canonical({**whole, "v": 2}), envelope.UNSUPPORTED_VERSION)
    v.add("version 2 with other members", topic, canonical({"v": 2, "anything": "a v2 might carry"}),
          envelope.UNSUPPORTED_VERSION)
    v.add("algorithm EdDSA", topic, signed_as_written(canonical({**fields(130), "alg": "EdDSA"})),
          envelope.UNSUPPORTED_ALGORITHM)
    v.add("revoked key (listed in trust/revoked)", "edge/press-3/host", seal(PRESS_3, seq=5, node="press-3"),
          envelope.REVOKED_KEY)
    v.add("key introduced by a revoked key's rotation notice (trust/press-3/*.announced-by)", "edge/press-3/host",
          seal(PRESS_3_NEXT, seq=6, node="press-3"), envelope.REVOKED_KEY)
    v.add("unknown key", topic, seal(STRANGER, seq=130), envelope.UNKNOWN_KEY)
    v.add("altered body, written canonically again", topic, canonical({**whole, "body": {"cpu": {"percent": 0.5}}}),
          envelope.BAD_SIGNATURE)
    v.add("signature of another message", topic, canonical({**whole, "sig": json.loads(seal(seq=131))["sig"]}),
          envelope.BAD_SIGNATURE)
    v.add("signed by a stranger under press-1's key id", topic, canonical(
        {**whole, "sig": json.loads(seal(STRANGER, seq=130))["sig"]}), envelope.BAD_SIGNATURE)
    v.add("arrived on another topic", "edge/press-1/patches", seal(seq=130), envelope.TOPIC_MISMATCH)
    v.add("topic naming another node", "edge/press-2/host",
          signed_as_written(canonical({**fields(130), "topic": "edge/press-2/host"})), envelope.TOPIC_MISMATCH)
    for shape in ("edge/press-1", "edge/press-1/host/a/b", "plant/edge/press-1/host", "edge/press-1/host/"):
        v.add(f"topic {shape!r}: not <prefix>/<node>/<kind>[/<subject>]", shape,
              signed_as_written(canonical({**fields(130), "topic": shape})), envelope.TOPIC_MISMATCH)
    v.add("press-2's key speaking for press-1", topic, seal(PRESS_2, seq=130), envelope.NODE_NOT_ALLOWED)
    v.add("timestamp 301 s ahead", topic, seal(seq=130, ts=NOW_MS + MAX_SKEW_MS + 1000), envelope.CLOCK_SKEW)
    v.add("timestamp older than 7 days", topic, seal(seq=130, ts=NOW_MS - MAX_AGE_MS - 1), envelope.CLOCK_SKEW)
    v.add("timestamp exactly 300 s ahead: accepted", topic, seal(seq=140, ts=NOW_MS + MAX_SKEW_MS), None)
    v.add("timestamp exactly 7 days old: accepted", topic, seal(seq=141, ts=NOW_MS - MAX_AGE_MS), None)
    v.add("birth older than 7 days", "edge/press-1/status", seal(
        seq=130, stream="status", ts=NOW_MS - MAX_AGE_MS - 1, body={"state": "online"}), envelope.CLOCK_SKEW)
    v.add("death (status offline) 30 days old: no age limit", "edge/press-1/status", seal(
        seq=90, stream="status", ts=NOW_MS - 30 * 86_400_000, body={"state": "offline", "reason": "stopped"}), None)


def sequence(v: Vectors) -> None:
    host, status, plc = "edge/press-1/host", "edge/press-1/status", "edge/press-1/modbus/plc-1"
    first = v.add("genuine host reading (again)", host, seal(seq=200), None)
    v.add("the same bytes again (MQTT QoS 1 resend)", host, first, envelope.DUPLICATE, True)
    v.add("other content under a number already accepted", host, seal(seq=200, body={"cpu": {"percent": 99.0}}),
          envelope.REPLAY, True)
    will = seal(seq=201, stream="status", ts=NOW_MS - 60_000, body={"state": "offline", "reason": "Last Will"})
    v.add("birth after the Will was sealed", status, seal(seq=202, stream="status", body={"state": "online"}), None)
    for seq in range(203, 213):
        v.add(f"host reading {seq}", host, seal(seq=seq), None)
    v.add("the Last Will, sealed before the birth, delivered after everything since", status, will, None, True)
    v.add("the Will again: the retained copy on resubscribe, still the last on its topic", status, will,
          envelope.DUPLICATE, True)
    v.add("an old message, neither recent nor the last on its topic", host, seal(seq=203), envelope.REPLAY, True)
    v.add("another stream's backlog, numbered below what was seen", plc, seal(seq=150, stream="modbus/plc-1"),
          None, True)
    v.add("... and the next of that backlog", plc, seal(seq=151, stream="modbus/plc-1"), None, True)
    v.add("the node restarted: a new session goes on counting", host, seal(seq=300, session="8.5eed0002"), None)
    v.add("a message of the old session sent again", host, seal(seq=205), envelope.REPLAY, True)
    v.add("the same number under the new session id", host, seal(seq=205, session="8.5eed0002"),
          envelope.REPLAY, True)


def rotations(v: Vectors) -> None:
    host, key_topic = "edge/press-1/host", "edge/press-1/key"
    notice = seal(seq=0, stream="key", session=f"rotation-{kid(PRESS_1_NEXT)[:16]}", ts=NOW_MS - 30 * 86_400_000,
                  body=rotation.rotation_body(PRESS_1_NEXT.public_key()))
    v.add("a message signed by press-1's next key, before its rotation notice", host,
          seal(PRESS_1_NEXT, seq=400), envelope.UNKNOWN_KEY)
    v.add("rotation notice signed by press-1's key, 30 days old: no age limit", key_topic, notice, None)
    v.add("the announced key now speaks for press-1", host, seal(PRESS_1_NEXT, seq=401), None, True)
    v.add("the notice again (retained, on resubscribe)", key_topic, notice, envelope.DUPLICATE, True)
    v.add("the announced key speaks only for the announcing key's nodes", "edge/press-2/host",
          seal(PRESS_1_NEXT, seq=402, node="press-2"), envelope.NODE_NOT_ALLOWED, True)
    v.add("rotation notice by a revoked key", "edge/press-3/key", seal(
        PRESS_3, seq=0, node="press-3", stream="key", session="rotation-x",
        body=rotation.rotation_body(STRANGER.public_key())), envelope.REVOKED_KEY)


def bridged(v: Vectors) -> None:
    """Through remapping bridges, with the consumer configured with BRIDGE_PREFIXES."""
    def press_4(seq: int, **kwargs: Any) -> bytes:
        return seal(PRESS_4, seq=seq, node="press-4", **kwargs)

    v.add("through a bridge: press-4 under its own prefix site-a/", "site-a/edge/press-4/host", press_4(10), None)
    routed = v.add("through a bridge: press-1 (bound to no prefix) under site-b/, which admits any such node",
                   "site-b/edge/press-1/host", seal(seq=500), None)
    v.add("through a two-level prefix: press-5 matched by the pattern press-5*",
          "region-1/site-c/edge/press-5/modbus/plc-1", seal(PRESS_5, seq=10, node="press-5", stream="modbus/plc-1"),
          None)
    v.add("the same message directly: one message whatever its route", "edge/press-1/host", routed,
          envelope.DUPLICATE, True)
    v.add("under a prefix no configured bridge adds", "site-x/edge/press-1/host", seal(seq=501),
          envelope.UNKNOWN_PREFIX)
    v.add("under the first level of a two-level prefix", "region-1/edge/press-1/host", seal(seq=502),
          envelope.UNKNOWN_PREFIX)
    v.add("press-4 (bound to site-a/) under another site's prefix", "site-b/edge/press-4/host", press_4(11),
          envelope.PREFIX_NOT_ALLOWED)
    v.add("press-4 (bound to site-a/) without its prefix", "edge/press-4/host", press_4(12),
          envelope.PREFIX_NOT_ALLOWED)
    v.add("press-1 under site-a/, which admits press-4 only", "site-a/edge/press-1/host", seal(seq=503),
          envelope.PREFIX_NOT_ALLOWED)
    v.add("press-1 under region-1/site-c/, which admits press-5* only", "region-1/site-c/edge/press-1/host",
          seal(seq=504), envelope.PREFIX_NOT_ALLOWED)
    v.add("a prefix not ending at a level boundary", "site-aedge/press-4/host", press_4(13), envelope.TOPIC_MISMATCH)
    v.add("the prefix taken off, the rest is another topic", "site-a/edge/press-4/patches", press_4(14),
          envelope.TOPIC_MISMATCH)
    v.add("signed for the bridged topic itself (five levels)", "site-a/edge/press-4/host",
          press_4(15, topic="site-a/edge/press-4/host"), envelope.TOPIC_MISMATCH)
    v.add("altered, under an unknown prefix: the signature is checked first", "site-x/edge/press-1/host",
          canonical({**json.loads(seal(seq=505)), "body": {"cpu": {"percent": 0.5}}}), envelope.BAD_SIGNATURE)
    v.add("press-2's key speaking for press-1 under site-b/: the route passes, the key binding does not",
          "site-b/edge/press-1/host", seal(PRESS_2, seq=506), envelope.NODE_NOT_ALLOWED)
    v.add("timestamp 301 s ahead, under press-4's prefix", "site-a/edge/press-4/host",
          press_4(16, ts=NOW_MS + MAX_SKEW_MS + 1000), envelope.CLOCK_SKEW)
    v.add("other content under a number press-4 used, under its prefix", "site-a/edge/press-4/host",
          press_4(10, body={"cpu": {"percent": 99.0}}), envelope.REPLAY, True)


def write(out: Path) -> int:
    v = Vectors()
    for part in (genuine, non_canonical, malformed, refused, sequence, rotations, bridged):
        part(v)
    trust = out / "trust"
    (trust / "press-3").mkdir(parents=True, exist_ok=True)
    for node, signer in (("press-1", PRESS_1), ("press-2", PRESS_2), ("press-3", PRESS_3), ("press-4", PRESS_4),
                         ("press-5", PRESS_5)):
        (trust / f"{node}.pub").write_bytes(keys.public_pem(signer.public_key()))
    keys.write_trusted(trust, "press-3", PRESS_3_NEXT.public_key(), announced_by=kid(PRESS_3))
    (trust / keys.REVOCATION_FILE).write_text(f"{kid(PRESS_3)}  # press-3's key, stolen\n")
    (out / "press-1.pub").write_bytes(keys.public_pem(PRESS_1.public_key()))
    document = {"format": FORMAT, "generator": "scripts/make_test_vectors.py", "how": HOW, "now_ms": NOW_MS,
                "max_skew_ms": MAX_SKEW_MS, "max_age_ms": MAX_AGE_MS, "recent": RECENT,
                "bridge_prefixes": BRIDGE_PREFIXES,
                "keys": {label: {"kid": kid(k), "public_key": envelope._b64(keys.raw_public(k.public_key()))}
                         for label, k in (("press-1", PRESS_1), ("press-1 next", PRESS_1_NEXT), ("press-2", PRESS_2),
                                          ("press-3 (revoked)", PRESS_3), ("press-3 next", PRESS_3_NEXT),
                                          ("stranger", STRANGER), ("press-4", PRESS_4), ("press-5", PRESS_5))},
                "vectors": v.items}
    (out / "vectors.json").write_text(json.dumps(document, indent=1) + "\n")
    (out / "README.md").write_text(readme(v.items))
    return len(v.items)


def readme(items: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["reason"] or "valid"] = counts.get(item["reason"] or "valid", 0) + 1
    rows = "\n".join(f"| `{reason}` | {count} |" for reason, count in counts.items())
    return f"""# Test vectors for envelope v1

Written by `scripts/make_test_vectors.py` (do not edit by hand; a test checks that these files
are exactly what it writes, and runs the reference verifier over them). The rules are in
[../protocol.md](../protocol.md); its section "Conformance" says how to use these files.

- `vectors.json`: {len(items)} messages, each with the topic it arrives on, its bytes
  (`payload_base64`, and `payload_text` when they are UTF-8) and the expected `valid` and
  `reason`; the clock (`now_ms`), `max_skew_ms`, `max_age_ms`, `recent` and the bridge prefixes
  (`bridge_prefixes`, written as `--bridge-prefix` takes them) to verify with; the keys involved
  (`kid` and raw `public_key`, base64url).
- `trust/`: the trust store to verify with: keys of press-1 to press-5, a key of press-3
  introduced by a rotation notice of press-3's key (`press-3/<kid>.announced-by`), and
  `revoked`, which lists press-3's key.
- `press-1.pub`: the public key (PEM) that most vectors are signed with.

| expected | vectors |
|---|---|
{rows}
"""


def same_tree(a: Path, b: Path) -> bool:
    compared = filecmp.dircmp(a, b)
    if compared.left_only or compared.right_only or compared.diff_files or compared.funny_files:
        return False
    return all(same_tree(a / sub, b / sub) for sub in compared.common_dirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--check", action="store_true", help="exit 1 unless --out holds exactly what would be written")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as fresh:
            count = write(Path(fresh))
            if not same_tree(Path(fresh), args.out):
                print(f"{args.out}: differs from what scripts/make_test_vectors.py writes; run it", file=sys.stderr)
                return 1
        print(f"{args.out}: {count} vectors, as generated")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"wrote {write(args.out)} vectors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
