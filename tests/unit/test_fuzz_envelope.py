"""Hostile input for the envelope parser and verifier: nothing crashes or hangs, every
rejection carries a known reason and an explanation, and no change to a genuine message
survives verification."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.trust import envelope, keys
from agent.trust.envelope import canonical, open_envelope
from agent.trust.verify import Verifier

KEY = Ed25519PrivateKey.generate()
KID = keys.key_id(KEY.public_key())
TRUST = keys.TrustStore()
TRUST.add(KEY.public_key(), frozenset({"n1"}))
TOPIC = "edge/n1/host"
GENUINE_FIELDS = dict(kid=KID, node="n1", topic=TOPIC, kind="host", session="s", seq=3, ts_ms=1_000,
                      body={"cpu": 12.5, "disks": [{"mount": "/", "used": 0.41}], "note": "ok"})
GENUINE = envelope.seal(KEY, **GENUINE_FIELDS)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def assert_clean_rejection(verdict: envelope.Verdict) -> None:
    assert verdict.valid is False
    assert verdict.reason in envelope.REASONS
    assert isinstance(verdict.detail, str) and verdict.detail and len(verdict.detail) < 400


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_are_rejected_cleanly(payload: bytes) -> None:
    assert_clean_rejection(open_envelope(payload, TOPIC, TRUST))


@FUZZ
@given(json_values)
def test_random_json_is_rejected_cleanly(value) -> None:
    payload = json.dumps(value).encode()  # may hold NaN, lone surrogates, huge integers
    assert_clean_rejection(open_envelope(payload, TOPIC, TRUST, now_ms=0, max_skew_ms=1, max_age_ms=1))


@FUZZ
@given(st.sampled_from(sorted(envelope.SIGNED_FIELDS) + ["sig"]), json_values)
def test_any_field_changed_is_rejected(name: str, value) -> None:
    fields = json.loads(GENUINE)
    if fields[name] == value:
        return
    fields[name] = value
    try:
        payload = canonical(fields)
    except (ValueError, TypeError):
        payload = json.dumps(fields).encode()
    assert_clean_rejection(open_envelope(payload, TOPIC, TRUST))


@FUZZ
@given(st.data())
def test_any_byte_edit_of_a_genuine_message_is_rejected(data) -> None:
    at = data.draw(st.integers(0, len(GENUINE) - 1))
    edit = data.draw(st.sampled_from(["flip", "delete", "insert"]))
    if edit == "flip":
        payload = GENUINE[:at] + bytes([GENUINE[at] ^ data.draw(st.integers(1, 255))]) + GENUINE[at + 1:]
    elif edit == "delete":
        payload = GENUINE[:at] + GENUINE[at + 1:]
    else:
        payload = GENUINE[:at] + data.draw(st.binary(min_size=1, max_size=3)) + GENUINE[at:]
    assert_clean_rejection(open_envelope(payload, TOPIC, TRUST))


@FUZZ
@given(st.binary(max_size=300), st.text(max_size=40))
def test_the_stateful_verifier_never_crashes(payload: bytes, topic: str) -> None:
    verifier = Verifier(TRUST, clock=lambda: 1.0)
    assert_clean_rejection(verifier.check(payload, topic))
    assert verifier.check(GENUINE, TOPIC).valid  # and it still works afterwards


@FUZZ
@given(json_values)
def test_hostile_rotation_bodies_never_crash_and_teach_nothing(body) -> None:
    if not isinstance(body, dict):
        body = {"action": "rotate", "alg": "Ed25519", "new_kid": body, "public_key": body}
    try:
        payload = envelope.seal(KEY, **{**GENUINE_FIELDS, "topic": "edge/n1/key", "kind": "key", "body": body})
    except (ValueError, TypeError, UnicodeError):
        return  # the sealer refuses what JSON cannot carry; nothing to verify
    trust = keys.TrustStore(dict(TRUST.keys))
    verdict = Verifier(trust, max_skew_ms=None, max_age_ms=None).check(payload, "edge/n1/key")
    assert verdict.reason == envelope.MALFORMED and verdict.detail
    assert trust.keys.keys() == TRUST.keys.keys()


def test_pathological_sizes_finish() -> None:
    for payload in (b'{"v":' + b"1" * 100_000 + b"}", b'{"a":' * 50_000, b'"' + b"\\u0000" * 40_000 + b'"',
                    b"[" * 200_000 + b"]" * 200_000):
        assert_clean_rejection(open_envelope(payload, TOPIC, TRUST))
