"""The envelope's wire form and the stateless checks of open_envelope."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust import envelope, keys
from agent.trust.envelope import canonical, open_envelope, seal

TOPIC = "edge/n1/modbus/plc1"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trust(key: Ed25519PrivateKey) -> keys.TrustStore:
    store = keys.TrustStore()
    store.add(key.public_key(), frozenset({"n1"}))
    return store


def sealed(key: Ed25519PrivateKey, **changes) -> bytes:
    fields = dict(kid=keys.key_id(key.public_key()), node="n1", topic=TOPIC, kind="modbus",
                  session="abc", seq=1, ts_ms=1_700_000_000_000,
                  body={"points": {"temp": 21.5, "big": 1.5e22, "tiny": 1e-7, "name": "Überdruck"}})
    fields.update(changes)
    return seal(key, **fields)


def test_sealed_bytes_are_the_canonical_form_of_the_whole_object(key, trust) -> None:
    payload = sealed(key)
    assert payload == canonical(json.loads(payload))
    verdict = open_envelope(payload, TOPIC, trust)
    assert verdict.valid and verdict.fields["body"]["points"]["name"] == "Überdruck"


def test_a_body_holding_sig_and_topic_keys_does_not_confuse_the_splice(key, trust) -> None:
    payload = sealed(key, body={"sig": "x", "topic": "edge/n2/host", "nested": {"a": 1, "sig": ",\"sig\":\""}})
    assert open_envelope(payload, TOPIC, trust).valid


def test_other_spelling_of_the_same_signature_is_refused(key, trust) -> None:
    payload = sealed(key)
    fields = json.loads(payload)
    raw = base64.urlsafe_b64decode(fields["sig"] + "==")
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The final character's low 4 bits are unused: flipping one decodes to the same bytes.
    twin = fields["sig"][:-1] + last[last.index(fields["sig"][-1]) ^ 1]
    assert base64.urlsafe_b64decode(twin + "==") == raw
    verdict = open_envelope(canonical({**fields, "sig": twin}), TOPIC, trust)
    assert verdict.reason == envelope.MALFORMED


def test_sig_member_out_of_canonical_place_is_not_canonical(key, trust) -> None:
    payload = sealed(key)
    fields = json.loads(payload)
    moved = json.dumps({"sig": fields.pop("sig"), **fields}, separators=(",", ":"), ensure_ascii=False)
    verdict = open_envelope(moved.encode(), TOPIC, trust)
    assert verdict.reason == envelope.NON_CANONICAL and "at byte 2 " in verdict.detail


def test_topic_must_name_the_signed_node_and_kind(key, trust) -> None:
    payload = sealed(key, topic="edge/n2/modbus/plc1")
    verdict = open_envelope(payload, "edge/n2/modbus/plc1", trust)
    assert verdict.reason == envelope.TOPIC_MISMATCH and "for the signed node and kind" in verdict.detail


@pytest.mark.parametrize("topic", ["edge/n1", "edge/n1/modbus/plc1/extra", "edge//n1/modbus", "plant/edge/n1/modbus"])
def test_a_topic_has_three_or_four_levels_and_a_one_level_prefix(key, trust, topic: str) -> None:
    verdict = open_envelope(sealed(key, topic=topic), topic, trust)
    assert verdict.reason == envelope.TOPIC_MISMATCH, topic


def test_version_is_read_before_the_shape(trust) -> None:
    v2 = canonical({"v": 2, "alg": "Ed25519", "whatever": "a v2 might carry"})
    assert open_envelope(v2, TOPIC, trust).reason == envelope.UNSUPPORTED_VERSION


@pytest.mark.parametrize("payload", [
    b"", b"null", b"[]", b"{}", b'{"v":true}', b'{"v":1,"v":1}', b"\xff\xfe",
    b'{"v":1,"alg":"Ed25519","kid":"k","node":"n1","topic":"t","kind":"k","session":"s",'
    b'"seq":-1,"ts":0,"body":{},"sig":"x"}',
    b"[" * 100_000,
    b" " * (envelope.MAX_PAYLOAD_BYTES + 1),
])
def test_junk_is_malformed(trust, payload: bytes) -> None:
    verdict = open_envelope(payload, TOPIC, trust)
    assert (verdict.valid, verdict.reason) == (False, envelope.MALFORMED) and verdict.detail


def test_skew_bounds_future_and_age_separately(key, trust) -> None:
    payload = sealed(key, ts_ms=1_000_000)
    assert open_envelope(payload, TOPIC, trust, now_ms=1_000_000 + 50_000, max_skew_ms=10_000,
                         max_age_ms=60_000).valid
    assert open_envelope(payload, TOPIC, trust, now_ms=1_000_000 + 50_000,
                         max_age_ms=40_000).reason == envelope.CLOCK_SKEW
    assert open_envelope(payload, TOPIC, trust, now_ms=1_000_000 + 50_000, max_skew_ms=10_000).valid
    assert open_envelope(payload, TOPIC, trust, now_ms=1_000_000 - 11_000, max_skew_ms=10_000,
                         max_age_ms=60_000).reason == envelope.CLOCK_SKEW
    assert open_envelope(payload, TOPIC, trust, now_ms=0).valid  # no bounds given: not checked


def test_a_key_bound_to_no_node_list_may_speak_for_any_node(key) -> None:
    store = keys.TrustStore()
    store.add(key.public_key())
    assert open_envelope(sealed(key, node="n9", topic="edge/n9/modbus/plc1"), "edge/n9/modbus/plc1", store).valid


def test_seal_refuses_what_json_cannot_carry(key) -> None:
    with pytest.raises(ValueError):
        sealed(key, body={"counter": 2**60})
    with pytest.raises(ValueError):
        sealed(key, body={"x": float("nan")})
