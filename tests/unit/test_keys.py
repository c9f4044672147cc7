"""Key files, the trust store layout, revocation, and rotation followed by a consumer."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust import envelope, keys, rotation
from agent.trust.verify import Verifier


def test_key_id_is_derived_from_the_public_key(node_key) -> None:
    path, private_key, kid = node_key
    assert kid == keys.key_id(keys.load_public(Path(f"{path}.pub")))
    assert len(kid) == 32 and int(kid, 16) >= 0


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o700 | 0o010])
def test_private_key_readable_by_others_is_refused(node_key, mode: int) -> None:
    path, _, _ = node_key
    os.chmod(path, mode)
    with pytest.raises(keys.KeyError_, match="chmod 600"):
        keys.load_private(path)


def test_generate_never_overwrites(node_key) -> None:
    path, _, _ = node_key
    with pytest.raises(keys.KeyError_, match="refusing to overwrite"):
        keys.generate(path)


def write_pub(path: Path, key: Ed25519PrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(keys.public_pem(key.public_key()))


def test_trust_store_binds_keys_to_node_ids_by_file_name(tmp_path: Path) -> None:
    a, b, shared, revoked = (Ed25519PrivateKey.generate() for _ in range(4))
    write_pub(tmp_path / "press-1.pub", a)
    write_pub(tmp_path / "press-2" / "second.pub", b)
    write_pub(tmp_path / "press-1" / "line.pub", shared)
    write_pub(tmp_path / "press-2.pub", shared)
    write_pub(tmp_path / "press-3.pub", revoked)
    (tmp_path / "revoked").write_text(f"# stolen 2026-01-02\n{keys.key_id(revoked.public_key())}  # press-3\n\n")
    store = keys.TrustStore.load(tmp_path)
    assert store.keys[keys.key_id(a.public_key())].nodes == {"press-1"}
    assert store.keys[keys.key_id(b.public_key())].nodes == {"press-2"}
    assert store.keys[keys.key_id(shared.public_key())].nodes == {"press-1", "press-2"}
    assert store.revoked == {keys.key_id(revoked.public_key())}


def test_bad_revocation_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "revoked").write_text("# ok\nnot-a-key-id\n")
    with pytest.raises(keys.KeyError_, match=r"revoked:2: 'not-a-key-id' is not a key id"):
        keys.TrustStore.load(tmp_path)


def test_bad_public_key_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "press-1.pub").write_text("hello")
    with pytest.raises(keys.KeyError_, match="press-1.pub: not a PEM public key"):
        keys.TrustStore.load(tmp_path)


def test_rotation_replaces_the_key_and_leaves_a_notice_signed_by_the_old_one(node_key) -> None:
    path, old_key, old_kid = node_key
    done = rotation.rotate(path, node="press-1", topic_prefix="edge", clock=lambda: 1_800_000_000.0)
    new_key = keys.load_private(path)
    assert done.old_kid == old_kid and done.new_kid == keys.key_id(new_key.public_key()) != old_kid
    assert keys.key_id(keys.load_public(Path(f"{path}.pub"))) == done.new_kid
    assert oct(os.stat(done.notice).st_mode & 0o777) == oct(0o600)
    assert sorted(p.name for p in path.parent.iterdir()) == ["node.key", "node.key.pub", "node.key.rotation"]
    topic, payload = rotation.pending_rotation_notice(path)
    assert topic == "edge/press-1/key"
    trust = keys.TrustStore()
    trust.add(old_key.public_key(), frozenset({"press-1"}))
    verdict = envelope.open_envelope(payload, topic, trust)
    assert verdict.valid and verdict.fields["kid"] == old_kid and verdict.fields["body"]["new_kid"] == done.new_kid


def test_a_second_rotation_waits_for_the_first_to_be_published(node_key) -> None:
    path, _, _ = node_key
    rotation.rotate(path, node="press-1", topic_prefix="edge")
    with pytest.raises(keys.KeyError_, match="not been published"):
        rotation.rotate(path, node="press-1", topic_prefix="edge")
    rotation.rotation_notice_published(path)
    assert rotation.pending_rotation_notice(path) is None
    rotation.rotate(path, node="press-1", topic_prefix="edge")


def rotated_press_1(path: Path, old_key: Ed25519PrivateKey, tmp_path: Path):
    """Node press-1 rotates from `old_key`; a consumer trusting only the old key, persisting
    what it learns. Returns (store_dir, notice topic, notice, new kid, a message signed with
    the new key, the consumer's verifier)."""
    store_dir = tmp_path / "trust"
    write_pub(store_dir / "press-1.pub", old_key)
    clock = lambda: 1_800_000_000.0  # noqa: E731
    rotation.rotate(path, node="press-1", topic_prefix="edge", clock=clock)
    topic, notice = rotation.pending_rotation_notice(path)
    new_key = keys.load_private(path)
    new_kid = keys.key_id(new_key.public_key())
    message = envelope.seal(new_key, kid=new_kid, node="press-1", topic="edge/press-1/host", kind="host",
                            session="s", seq=1, ts_ms=1_800_000_000_000, body={})
    verifier = Verifier(keys.TrustStore.load(store_dir), trust_dir=store_dir, clock=clock)
    return store_dir, topic, notice, new_kid, message, verifier


def test_consumer_follows_a_rotation_and_remembers_it(node_key, tmp_path: Path, caplog) -> None:
    path, old_key, _ = node_key
    store_dir, topic, notice, new_kid, message, verifier = rotated_press_1(path, old_key, tmp_path)
    assert verifier.check(message, "edge/press-1/host").reason == envelope.UNKNOWN_KEY
    with caplog.at_level(logging.INFO):
        assert verifier.check(notice, topic).valid
    assert verifier.check(message, "edge/press-1/host").valid
    # The new key speaks only for the old key's nodes.
    assert verifier.trust.keys[new_kid].nodes == {"press-1"}
    # After a restart the consumer still knows it; and no key material went to the log.
    assert keys.TrustStore.load(store_dir).keys[new_kid].nodes == {"press-1"}
    assert "BEGIN" not in caplog.text and notice.decode() not in caplog.text


def test_a_notice_seen_again_is_a_duplicate_also_after_a_consumer_restart(node_key, tmp_path: Path) -> None:
    """A retained notice comes again on every resubscribe; once its key is trusted it teaches nothing new."""
    path, old_key, _ = node_key
    store_dir, topic, notice, new_kid, _, verifier = rotated_press_1(path, old_key, tmp_path)
    assert verifier.check(notice, topic).valid
    assert verifier.check(notice, topic).reason == envelope.DUPLICATE
    restarted = Verifier(keys.TrustStore.load(store_dir), trust_dir=store_dir, clock=lambda: 1_800_000_000.0)
    verdict = restarted.check(notice, topic)
    assert verdict.reason == envelope.DUPLICATE and new_kid in verdict.detail


def test_an_old_retained_notice_still_teaches_a_late_consumer(node_key, tmp_path: Path) -> None:
    path, old_key, _ = node_key
    rotation.rotate(path, node="press-1", topic_prefix="edge", clock=lambda: 1_000_000.0)
    topic, notice = rotation.pending_rotation_notice(path)
    trust = keys.TrustStore()
    trust.add(old_key.public_key(), frozenset({"press-1"}))
    assert Verifier(trust, clock=lambda: 1_800_000_000.0).check(notice, topic).valid


def test_a_rotation_notice_from_a_revoked_key_teaches_nothing(node_key) -> None:
    path, old_key, old_kid = node_key
    rotation.rotate(path, node="press-1", topic_prefix="edge")
    topic, notice = rotation.pending_rotation_notice(path)
    trust = keys.TrustStore()
    trust.add(old_key.public_key(), frozenset({"press-1"}))
    trust.revoked.add(old_kid)
    verifier = Verifier(trust)
    assert verifier.check(notice, topic).reason == envelope.REVOKED_KEY
    assert len(trust.keys) == 1


@pytest.mark.parametrize(("body", "problem"), [
    ({"action": "retire"}, "exactly the fields"),
    ({"action": "retire", "alg": "Ed25519", "new_kid": "x", "public_key": "y"}, "not an Ed25519 rotation notice"),
    ({"action": "rotate", "alg": "Ed25519", "new_kid": "0" * 32, "public_key": "A" * 43}, "does not match"),
    ({"action": "rotate", "alg": "Ed25519", "new_kid": "x", "public_key": 5}, "needs new_kid"),
])
def test_malformed_rotation_bodies_are_refused(body, problem: str) -> None:
    key = Ed25519PrivateKey.generate()
    trust = keys.TrustStore()
    trust.add(key.public_key(), frozenset({"press-1"}))
    payload = envelope.seal(key, kid=keys.key_id(key.public_key()), node="press-1", topic="edge/press-1/key",
                            kind="key", session="r", seq=0, ts_ms=0, body=body)
    verdict = Verifier(trust, max_skew_ms=None).check(payload, "edge/press-1/key")
    assert verdict.reason == envelope.MALFORMED and problem in verdict.detail
    assert len(trust.keys) == 1


def test_a_read_only_trust_folder_does_not_stop_a_rotation_being_followed(node_key, tmp_path: Path) -> None:
    path, old_key, _ = node_key
    rotation.rotate(path, node="press-1", topic_prefix="edge")
    topic, notice = rotation.pending_rotation_notice(path)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the trust folder should be")
    trust = keys.TrustStore()
    trust.add(old_key.public_key(), frozenset({"press-1"}))
    assert Verifier(trust, trust_dir=blocked).check(notice, topic).valid
    assert keys.key_id(keys.load_private(path).public_key()) in trust.keys


def test_revoking_a_key_revokes_the_keys_its_rotation_notices_introduced(node_key, tmp_path: Path) -> None:
    # A thief with the old key can announce a key of their own; revoking the stolen key must
    # revoke that one too, in memory and after a consumer restart.
    path, old_key, old_kid = node_key
    store_dir, topic, notice, new_kid, message, verifier = rotated_press_1(path, old_key, tmp_path)
    assert verifier.check(notice, topic).valid
    assert verifier.check(message, "edge/press-1/host").valid

    verifier.trust.revoked.add(old_kid)
    assert envelope.open_envelope(message, "edge/press-1/host", verifier.trust).reason == envelope.REVOKED_KEY

    (store_dir / keys.REVOCATION_FILE).write_text(f"{old_kid}  # stolen\n")
    reloaded = keys.TrustStore.load(store_dir)
    assert reloaded.keys[new_kid].announced_by == old_kid
    assert envelope.open_envelope(message, "edge/press-1/host", reloaded).reason == envelope.REVOKED_KEY


def test_lineage_cycles_do_not_hang_the_revocation_check() -> None:
    a, b = Ed25519PrivateKey.generate().public_key(), Ed25519PrivateKey.generate().public_key()
    trust = keys.TrustStore()
    kid_a, kid_b = keys.key_id(a), keys.key_id(b)
    trust.add(a, announced_by=kid_b)
    trust.add(b, announced_by=kid_a)
    assert not trust.is_revoked(kid_a)
    trust.revoked.add(kid_b)
    assert trust.is_revoked(kid_a)
