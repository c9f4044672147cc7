"""The rule table: every forged, altered, replayed, moved or stale message is rejected with its
own reason, through the same Verifier a consumer uses; a genuine message passes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust import envelope, keys
from agent.trust.bridge import Bridges
from agent.trust.envelope import canonical
from agent.trust.replay import FileState
from agent.trust.verify import Verifier

NOW_MS = 1_800_000_000_000
TOPIC = "edge/press-1/host"
RECENT = 32  # accepted messages the verifier remembers per node
# Bridges in front of the consumer: site-a's admits press-2 only, site-b's any node bound nowhere.
BRIDGES = Bridges.parse(["site-a/=press-2", "site-b/"])


@dataclass
class Fleet:
    key: Ed25519PrivateKey
    kid: str
    other_key: Ed25519PrivateKey  # trusted, but only for node "press-2"
    stranger: Ed25519PrivateKey  # in nobody's trust store
    revoked_key: Ed25519PrivateKey  # trusted for press-1 and listed as revoked

    def seal(self, key: Ed25519PrivateKey | None = None, **changes) -> bytes:
        key = key or self.key
        fields = dict(kid=keys.key_id(key.public_key()), node="press-1", topic=TOPIC, kind="host",
                      session="s1", seq=7, ts_ms=NOW_MS - 1000, body={"cpu": 12.5})
        fields.update(changes)
        return envelope.seal(key, **fields)


@pytest.fixture
def fleet() -> Fleet:
    key, other, stranger, revoked = (Ed25519PrivateKey.generate() for _ in range(4))
    return Fleet(key, keys.key_id(key.public_key()), other, stranger, revoked)


def verifier_for(fleet: Fleet) -> Verifier:
    trust = keys.TrustStore()
    trust.add(fleet.key.public_key(), frozenset({"press-1"}))
    trust.add(fleet.other_key.public_key(), frozenset({"press-2"}))
    trust.revoked.add(trust.add(fleet.revoked_key.public_key(), frozenset({"press-1"})))
    return Verifier(trust, max_skew_ms=60_000, max_age_ms=3_600_000, recent_messages=RECENT,
                    clock=lambda: NOW_MS / 1000, bridges=BRIDGES)


def reencode(payload: bytes, change: Callable[[dict], None]) -> bytes:
    """The payload's JSON changed by `change`, written back in canonical form, signature kept."""
    fields = json.loads(payload)
    change(fields)
    return canonical(fields)


def replaced_signature(fleet: Fleet) -> bytes:
    forged = fleet.seal(fleet.stranger)
    return reencode(fleet.seal(), lambda f: f.update(sig=json.loads(forged)["sig"]))


# (case, how the message is made, the topic it arrives on, messages the consumer saw before)
CASES: list[tuple[str, Callable[[Fleet], bytes], str, Callable[[Fleet], list[bytes]], str | None]] = [
    ("genuine", lambda f: f.seal(), TOPIC, lambda f: [], None),
    ("altered body", lambda f: reencode(f.seal(), lambda d: d["body"].update(cpu=0.5)), TOPIC,
     lambda f: [], envelope.BAD_SIGNATURE),
    ("signature from another key", replaced_signature, TOPIC, lambda f: [], envelope.BAD_SIGNATURE),
    ("signed by a stranger", lambda f: f.seal(f.stranger), TOPIC, lambda f: [], envelope.UNKNOWN_KEY),
    ("signed by a revoked key", lambda f: f.seal(f.revoked_key), TOPIC, lambda f: [], envelope.REVOKED_KEY),
    ("moved to another topic", lambda f: f.seal(), "edge/press-1/patches", lambda f: [],
     envelope.TOPIC_MISMATCH),
    ("through a bridge prefix that admits it", lambda f: f.seal(), "site-b/" + TOPIC, lambda f: [], None),
    ("under a bridge prefix nobody configured", lambda f: f.seal(), "site-c/" + TOPIC, lambda f: [],
     envelope.UNKNOWN_PREFIX),
    ("under another site's bridge prefix", lambda f: f.seal(), "site-a/" + TOPIC, lambda f: [],
     envelope.PREFIX_NOT_ALLOWED),
    ("neighbour's key speaking for press-1", lambda f: f.seal(f.other_key), TOPIC, lambda f: [],
     envelope.NODE_NOT_ALLOWED),
    ("replayed: seen, and no longer recent", lambda f: f.seal(seq=7), TOPIC,
     lambda f: [f.seal(seq=7)] + [f.seal(seq=8 + n) for n in range(RECENT)], envelope.REPLAY),
    ("replayed: other content under a used sequence", lambda f: f.seal(body={"cpu": 99.0}), TOPIC,
     lambda f: [f.seal()], envelope.REPLAY),
    ("duplicate: QoS 1 redelivery", lambda f: f.seal(), TOPIC, lambda f: [f.seal()], envelope.DUPLICATE),
    ("duplicate: retained message sent again on resubscribe", lambda f: f.seal(), TOPIC,
     lambda f: [f.seal()] + [f.seal(seq=8 + n, topic="edge/press-1/modbus/plc", kind="modbus")
                             for n in range(RECENT)], envelope.DUPLICATE),
    ("stale timestamp", lambda f: f.seal(ts_ms=NOW_MS - 2 * 3_600_000), TOPIC, lambda f: [],
     envelope.CLOCK_SKEW),
    ("timestamp from the future", lambda f: f.seal(ts_ms=NOW_MS + 120_000), TOPIC, lambda f: [],
     envelope.CLOCK_SKEW),
    ("unsupported version", lambda f: reencode(f.seal(), lambda d: d.update(v=2)), TOPIC, lambda f: [],
     envelope.UNSUPPORTED_VERSION),
    ("unsupported algorithm", lambda f: reencode(f.seal(), lambda d: d.update(alg="RS256")), TOPIC,
     lambda f: [], envelope.UNSUPPORTED_ALGORITHM),
    ("malformed: truncated", lambda f: f.seal()[:-9], TOPIC, lambda f: [], envelope.MALFORMED),
    ("not canonical: a trailing newline", lambda f: f.seal() + b"\n", TOPIC, lambda f: [], envelope.NON_CANONICAL),
    ("malformed: missing field", lambda f: reencode(f.seal(), lambda d: d.pop("seq")), TOPIC,
     lambda f: [], envelope.MALFORMED),
]


@pytest.mark.parametrize(("make", "topic", "before", "reason"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_case_gets_its_own_reason(fleet: Fleet, make, topic, before, reason) -> None:
    verifier = verifier_for(fleet)
    for earlier in before(fleet):
        assert verifier.check(earlier, json.loads(earlier)["topic"]).valid
    verdict = verifier.check(make(fleet), topic)
    assert verdict.reason == reason, verdict.detail
    assert verdict.valid is (reason is None)
    if reason is not None:
        assert verdict.detail  # every rejection explains itself


def test_the_table_covers_every_reason() -> None:
    assert {c[4] for c in CASES} - {None} == set(envelope.REASONS)


def test_reencoded_genuine_message_is_not_accepted(fleet: Fleet) -> None:
    """Same fields, other bytes (whitespace): only the canonical bytes of a message verify."""
    payload = fleet.seal()
    spaced = json.dumps(json.loads(payload), sort_keys=True).encode()
    verdict = verifier_for(fleet).check(spaced, TOPIC)
    assert (verdict.valid, verdict.reason) == (False, envelope.NON_CANONICAL)


def test_a_late_message_that_was_never_seen_is_accepted_once(fleet: Fleet) -> None:
    """A Last Will sealed at connect, or a stream's backlog behind another: below the highest."""
    verifier = verifier_for(fleet)
    will = fleet.seal(seq=5, topic="edge/press-1/status", kind="status", body={"state": "offline"})
    assert verifier.check(fleet.seal(seq=4), TOPIC).valid
    for seq in range(6, 6 + 10 * RECENT):
        assert verifier.check(fleet.seal(seq=seq), TOPIC).valid
    assert verifier.check(will, "edge/press-1/status").valid
    assert verifier.check(will, "edge/press-1/status").reason == envelope.DUPLICATE


def test_a_consumer_joining_mid_session_accepts_the_backlog(fleet: Fleet) -> None:
    verifier = verifier_for(fleet)
    assert verifier.check(fleet.seal(seq=900), TOPIC).valid
    assert all(verifier.check(fleet.seal(seq=seq), TOPIC).valid for seq in range(1, 40))


def test_numbers_are_per_node_whatever_the_session(fleet: Fleet) -> None:
    """A restarted node continues its numbers; an old session's message is no fresher for
    carrying another session id."""
    verifier = verifier_for(fleet)
    old = fleet.seal(session="s1", seq=100)
    assert verifier.check(old, TOPIC).valid
    assert verifier.check(fleet.seal(session="s2", seq=101), TOPIC).valid
    assert verifier.check(fleet.seal(session="s2", seq=100, body={"cpu": 1.0}), TOPIC).reason == envelope.REPLAY


def test_a_death_has_no_age_limit_and_a_birth_has(fleet: Fleet) -> None:
    """The Will of a connection that lived longer than max_age still says the node is gone."""
    verifier = verifier_for(fleet)
    week_old = NOW_MS - 7 * 86_400_000
    will = fleet.seal(seq=3, topic="edge/press-1/status", kind="status", ts_ms=week_old,
                      body={"state": "offline", "reason": "connection lost (Last Will)"})
    birth = fleet.seal(seq=4, topic="edge/press-1/status", kind="status", ts_ms=week_old, body={"state": "online"})
    assert verifier.check(will, "edge/press-1/status").valid
    assert verifier.check(birth, "edge/press-1/status").reason == envelope.CLOCK_SKEW
    ahead = fleet.seal(seq=5, topic="edge/press-1/status", kind="status", ts_ms=NOW_MS + 3_600_000,
                       body={"state": "offline"})
    assert verifier.check(ahead, "edge/press-1/status").reason == envelope.CLOCK_SKEW  # the future is never exempt


def test_a_restarted_verifier_with_a_state_file_still_refuses_replays(fleet: Fleet, tmp_path) -> None:
    state = tmp_path / "replay.json"
    trust = verifier_for(fleet).trust
    first = Verifier(trust, recent_messages=4, replay_state=FileState(state), clock=lambda: NOW_MS / 1000)
    messages = [fleet.seal(seq=seq) for seq in range(10, 30)]
    assert all(first.check(m, TOPIC).valid for m in messages)
    restarted = Verifier(trust, recent_messages=4, replay_state=FileState(state), clock=lambda: NOW_MS / 1000)
    assert restarted.check(messages[0], TOPIC).reason == envelope.REPLAY
    assert restarted.check(messages[-1], TOPIC).reason == envelope.DUPLICATE
    assert restarted.check(fleet.seal(seq=30), TOPIC).valid


def test_a_verifier_over_a_trust_folder_applies_its_clock_bounds(fleet: Fleet, tmp_path) -> None:
    (tmp_path / "press-1.pub").write_bytes(keys.public_pem(fleet.key.public_key()))
    verifier = Verifier(keys.TrustStore.load(tmp_path), max_skew_ms=30_000, max_age_ms=7_200_000,
                        clock=lambda: NOW_MS / 1000)
    assert verifier.check(fleet.seal(), TOPIC).valid
    assert verifier.check(fleet.seal(seq=8, ts_ms=NOW_MS - 3 * 3_600_000), TOPIC).reason == envelope.CLOCK_SKEW
    assert verifier.check(fleet.seal(seq=9, node="press-2", topic="edge/press-2/host"),
                          "edge/press-2/host").reason == envelope.NODE_NOT_ALLOWED
