"""`edge-agent trust add | list | revoke`: a trust store anyone can set up, and what the
verifier then accepts or refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import cli
from agent.trust import envelope, keys, rotation
from agent.trust.verify import Verifier

NOW = 1_800_000_000.0


def new_key(folder: Path) -> tuple[Path, Ed25519PrivateKey, str]:
    private, kid = keys.generate(folder / "node.key")
    return folder / "node.key.pub", private, kid


def message(key: Ed25519PrivateKey, node: str = "press-1", seq: int = 1) -> tuple[str, bytes]:
    topic = f"edge/{node}/host"
    return topic, envelope.seal(key, kid=keys.key_id(key.public_key()), node=node, topic=topic, kind="host",
                                session="1.a", seq=seq, ts_ms=int(NOW * 1000), body={"cpu": 1.0})


def verdict(trust_dir: Path, key: Ed25519PrivateKey, node: str = "press-1") -> str | None:
    topic, payload = message(key, node)
    return Verifier(keys.TrustStore.load(trust_dir), clock=lambda: NOW).check(payload, topic).reason


def trust(*args: str | Path) -> int:
    return cli.main(["trust", *map(str, args)])


def test_add_files_the_key_under_the_node_id_and_the_verifier_takes_it(tmp_path: Path, capsys) -> None:
    pub, key, kid = new_key(tmp_path / "n1")
    store = tmp_path / "trust"
    assert trust("add", "press-1", pub, "--trust", store) == 0
    assert f"key {kid} speaks for node press-1 (filed as {store / 'press-1.pub'})" in capsys.readouterr().out
    assert verdict(store, key) is None
    assert verdict(store, key, node="press-2") == envelope.NODE_NOT_ALLOWED
    assert trust("add", "press-1", pub, "--trust", store) == 0
    assert "(already trusted)" in capsys.readouterr().out


def test_a_second_key_of_a_node_goes_beside_the_first(tmp_path: Path) -> None:
    pub1, key1, _ = new_key(tmp_path / "a")
    pub2, key2, kid2 = new_key(tmp_path / "b")
    store = tmp_path / "trust"
    assert trust("add", "press-1", pub1, "--trust", store) == 0
    assert trust("add", "press-1", pub2, "--trust", store) == 0
    assert (store / "press-1" / f"{kid2}.pub").exists()
    assert verdict(store, key1) is None and verdict(store, key2) is None


def test_keygen_output_copied_as_it_is_is_explained(tmp_path: Path, capsys) -> None:
    """The old trap: node.key.pub dropped into the folder binds the key to a node called 'node.key'."""
    pub, key, _ = new_key(tmp_path / "n1")
    store = tmp_path / "trust"
    store.mkdir()
    (store / "node.key.pub").write_bytes(pub.read_bytes())
    detail = Verifier(keys.TrustStore.load(store), clock=lambda: NOW).check(*reversed(message(key))).detail
    assert "speaks for node node.key, not 'press-1'" in detail and "edge-agent trust add press-1" in detail
    assert trust("list", "--trust", store) == 0
    assert "may speak only for a node called 'node.key'" in capsys.readouterr().out


def test_an_agents_folder_given_as_the_trust_store_says_where_the_trust_store_is(tmp_path: Path, capsys) -> None:
    """The demo's folder holds agent.toml, state/node.key.pub and trust/: only trust/ is a trust store."""
    pub, _, _ = new_key(tmp_path / "state")
    (tmp_path / "agent.toml").write_text("")
    assert trust("add", "press-1", pub, "--trust", tmp_path / "trust") == 0
    assert trust("list", "--trust", tmp_path) == 2
    assert f"an agent's folder (it holds agent.toml), not a trust store; its trust store is {tmp_path / 'trust'}" \
        in capsys.readouterr().err


@pytest.mark.parametrize(("args", "problem"), [
    (["add", "press/1", "{pub}"], "NODE: 'press/1' is not a valid name"),
    (["add", "press-1", "{private}"], "this is a private key"),
    (["add", "press-1", "{missing}"], "cannot read"),
    (["revoke", "not-a-kid"], "'not-a-kid' is not a key id"),
    (["list"], "trust store folder not found"),
])
def test_bad_input_names_the_problem_and_exits_2(tmp_path: Path, capsys, args: list[str], problem: str) -> None:
    pub, _, _ = new_key(tmp_path / "n1")
    paths = {"pub": pub, "private": tmp_path / "n1" / "node.key", "missing": tmp_path / "nope.pub"}
    store = tmp_path / ("trust" if args[0] != "list" else "no-such-folder")
    if args[0] == "revoke":
        store.mkdir()
    assert trust(*[a.format(**paths) for a in args], "--trust", store) == 2
    err = capsys.readouterr().err
    assert problem in err and "Traceback" not in err


def test_revoke_refuses_the_key_and_everything_its_rotations_introduced(tmp_path: Path, capsys) -> None:
    key_path = tmp_path / "node" / "node.key"
    old_key, old_kid = keys.generate(key_path)
    store = tmp_path / "trust"
    assert trust("add", "press-1", f"{key_path}.pub", "--trust", store) == 0
    rotation.rotate(key_path, node="press-1", topic_prefix="edge", clock=lambda: NOW)
    topic, notice = rotation.pending_rotation_notice(key_path)
    follower = Verifier(keys.TrustStore.load(store), trust_dir=store, clock=lambda: NOW)
    assert follower.check(notice, topic).valid  # learned, and written beside the old key
    new_key = keys.load_private(key_path)
    assert verdict(store, new_key) is None
    capsys.readouterr()

    assert trust("revoke", old_kid, "--reason", "disk image stolen", "--trust", store) == 0
    out = capsys.readouterr().out
    assert f"key {old_kid} revoked (it spoke for press-1)" in out
    assert f"also refused: key {keys.key_id(new_key.public_key())}, introduced by its rotation notices" in out
    assert "disk image stolen" in (store / "revoked").read_text()
    assert verdict(store, old_key) == envelope.REVOKED_KEY
    assert verdict(store, new_key) == envelope.REVOKED_KEY
    assert trust("revoke", old_kid, "--trust", store) == 0
    assert "was already revoked" in capsys.readouterr().out
    assert trust("add", "press-1", f"{key_path}.pub", "--trust", store) == 2
    assert "introduced by the rotation notice of a revoked key" in capsys.readouterr().err
