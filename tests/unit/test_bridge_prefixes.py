"""Bridge prefixes (agent.trust.bridge, docs/protocol.md step 8): the configuration's syntax and
its errors, which node may arrive under which prefix, and the verifier keeping one message one
message whatever prefix it arrives under."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust import envelope, keys
from agent.trust.bridge import DIRECT, BridgePrefix, Bridges, added_prefix
from agent.trust.verify import Verifier

NOW_MS = 1_800_000_000_000
SITES = ["site-a/=press-1,press-2", "site-b/=line-b-*", "region-1/site-c/", "site-d/"]


@pytest.mark.parametrize(("spec", "prefix", "nodes"), [
    ("site-a/", "site-a/", ()),
    ("site-a", "site-a/", ()),  # the slash the bridge's topic line writes is implied
    ("region-1/site-c/", "region-1/site-c/", ()),
    ("site-a/=press-1", "site-a/", ("press-1",)),
    ("site-a/=press-1,press-2", "site-a/", ("press-1", "press-2")),
    ("site-a=line-a-*,panel-?", "site-a/", ("line-a-*", "panel-?")),
])
def test_a_prefix_is_written_as_the_bridge_adds_it_with_its_nodes_after_an_equals_sign(spec, prefix, nodes) -> None:
    parsed = BridgePrefix.parse(spec)
    assert (parsed.prefix, parsed.nodes) == (prefix, nodes)
    assert BridgePrefix.parse(str(parsed)) == parsed


@pytest.mark.parametrize(("spec", "says"), [
    ("", "'' is not a name"),
    ("/site-a/", "'' is not a name"),
    ("site-a//", "'' is not a name"),
    ("+/", "'+' is not a name"),
    ("#", "'#' is not a name"),
    ("$SYS/", "'$SYS' is not a name"),
    ("=press-1", "'' is not a name"),
    ("site-a/=", "'' is not one"),
    ("site-a/=press-1,,press-2", "'' is not one"),
    ("site-a/=press[12]", "'press[12]' is not one"),
    ("site-a/=press 1", "'press 1' is not one"),
])
def test_a_wrong_entry_is_refused_with_what_is_wrong_and_an_example(spec: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        BridgePrefix.parse(spec)
    assert says in str(caught.value) and "e.g." in str(caught.value) and repr(spec) in str(caught.value)


def test_a_prefix_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'site-a/' is given twice"):
        Bridges.parse(["site-a/=press-1", "site-a=press-2"])


@pytest.mark.parametrize(("arrival", "signed", "prefix"), [
    ("edge/press-1/host", "edge/press-1/host", DIRECT),
    ("site-a/edge/press-1/host", "edge/press-1/host", "site-a/"),
    ("region-1/site-c/edge/press-1/host", "edge/press-1/host", "region-1/site-c/"),
    ("site-aedge/press-1/host", "edge/press-1/host", None),  # not at a level boundary
    ("site-a/edge/press-1/patches", "edge/press-1/host", None),
    ("edge/press-1/host", "site-a/edge/press-1/host", None),  # a prefix is added, never taken away
    ("/edge/press-1/host", "edge/press-1/host", "/"),
])
def test_the_added_prefix_is_what_stands_before_the_signed_topic(arrival, signed, prefix) -> None:
    assert added_prefix(arrival, signed) == prefix


@pytest.mark.parametrize(("prefix", "node", "admitted"), [
    ("site-a/", "press-1", True),
    ("site-a/", "press-3", False),  # site-a's list does not name it
    ("site-b/", "line-b-7", True),  # pattern
    ("site-b/", "line-a-7", False),
    ("region-1/site-c/", "press-3", True),  # unbound prefix, unbound node
    ("region-1/site-c/", "press-1", False),  # bound to site-a/
    ("site-d/", "line-b-1", False),  # bound to site-b/ by pattern
    (DIRECT, "press-3", True),
    (DIRECT, "press-2", False),  # a bound node never arrives without its prefix
])
def test_a_bound_node_arrives_only_under_its_prefix_and_a_listing_prefix_admits_only_its_nodes(
        prefix, node, admitted) -> None:
    refusal = Bridges.parse(SITES).refusal(prefix, node)
    assert (refusal is None) is admitted
    if refusal:
        assert repr(node) in refusal


def test_without_bridges_only_direct_arrivals_are_known_and_no_node_is_bound() -> None:
    none = Bridges()
    assert not none and none.knows(DIRECT) and not none.knows("site-a/")
    assert none.refusal(DIRECT, "press-1") is None


@pytest.mark.parametrize(("arrival", "signed", "local"), [
    ("site-a/edge/press-1/host", "edge/press-1/host", "edge/press-1/host"),
    ("site-x/edge/press-1/host", "edge/press-1/host", "edge/press-1/host"),  # unknown prefix: still that node's
    ("site-b/edge/press-1/host", None, "edge/press-1/host"),  # not even parsed: a configured prefix comes off
    ("region-1/site-c/edge/x/host", "edge/y/host", "edge/x/host"),  # moved: the topic says where it arrived
    ("site-x/edge/press-1/host", None, "site-x/edge/press-1/host"),
    ("edge/press-1/host", "edge/press-1/host", "edge/press-1/host"),
])
def test_a_message_is_filed_under_its_topic_as_its_site_published_it(arrival, signed, local) -> None:
    assert Bridges.parse(SITES).local_topic(arrival, signed) == local


def test_consumers_subscribe_to_the_direct_topics_every_one_level_prefix_and_each_longer_one() -> None:
    assert Bridges().roots("edge") == ["edge"]
    assert Bridges.parse(SITES).roots("edge") == ["edge", "+/edge", "region-1/site-c/edge"]


# ---------------------------------------------------------------- through the verifier

@pytest.fixture
def press() -> dict[str, Ed25519PrivateKey]:
    return {node: Ed25519PrivateKey.generate() for node in ("press-1", "press-3")}


def verifier(press: dict[str, Ed25519PrivateKey], specs: list[str] = SITES) -> Verifier:
    trust = keys.TrustStore()
    for node, key in press.items():
        trust.add(key.public_key(), frozenset({node}))
    return Verifier(trust, clock=lambda: NOW_MS / 1000, bridges=Bridges.parse(specs))


def seal(key: Ed25519PrivateKey, node: str, seq: int, topic: str | None = None, **body) -> bytes:
    return envelope.seal(key, kid=keys.key_id(key.public_key()), node=node, topic=topic or f"edge/{node}/host",
                         kind="host", session="1.00000000", seq=seq, ts_ms=NOW_MS - 1000, body=body)


def test_one_message_through_two_prefixes_is_one_message(press) -> None:
    """The replay guard is keyed on the signed topic: a second copy is a duplicate, wherever it came from."""
    check = verifier(press).check
    message = seal(press["press-3"], "press-3", 10)
    assert check(message, "site-d/edge/press-3/host").valid
    assert check(message, "region-1/site-c/edge/press-3/host").reason == envelope.DUPLICATE
    assert check(message, "edge/press-3/host").reason == envelope.DUPLICATE
    other = seal(press["press-3"], "press-3", 10, cpu=1)
    assert check(other, "site-d/edge/press-3/host").reason == envelope.REPLAY


def test_the_prefix_checks_come_after_the_signature_and_before_the_key_binding(press) -> None:
    check = verifier(press).check
    altered = json.loads(seal(press["press-1"], "press-1", 5))
    altered["seq"] = 6
    assert check(envelope.canonical(altered), "site-x/edge/press-1/host").reason == envelope.BAD_SIGNATURE
    stranger = Ed25519PrivateKey.generate()
    assert check(seal(stranger, "press-1", 5), "site-x/edge/press-1/host").reason == envelope.UNKNOWN_KEY
    # press-3's key speaking for press-1 under press-1's own prefix: the prefix is right, the key is not
    wrong_key = check(seal(press["press-3"], "press-1", 5), "site-a/edge/press-1/host")
    assert wrong_key.reason == envelope.NODE_NOT_ALLOWED
    # ... and under site-d/, where press-1 may not arrive, the route is refused first
    assert check(seal(press["press-3"], "press-1", 5), "site-d/edge/press-1/host").reason == \
        envelope.PREFIX_NOT_ALLOWED


@pytest.mark.parametrize(("arrival", "signed", "reason"), [
    ("site-a/edge/press-1/host", None, None),
    ("site-x/edge/press-1/host", None, envelope.UNKNOWN_PREFIX),
    ("region-1/edge/press-1/host", None, envelope.UNKNOWN_PREFIX),  # part of a configured prefix
    ("site-a/site-a/edge/press-1/host", None, envelope.UNKNOWN_PREFIX),
    ("site-d/edge/press-1/host", None, envelope.PREFIX_NOT_ALLOWED),
    ("edge/press-1/host", None, envelope.PREFIX_NOT_ALLOWED),
    ("site-a/edge/press-1/patches", None, envelope.TOPIC_MISMATCH),
    # a node that signs the bridged topic gains nothing: the signed topic must have the agents' shape
    ("site-a/edge/press-1/host", "site-a/edge/press-1/host", envelope.TOPIC_MISMATCH),
    ("site-a/x/edge/press-1/host", "x/edge/press-1/host", envelope.TOPIC_MISMATCH),
])
def test_each_arrival_gets_its_reason(press, arrival: str, signed: str | None, reason: str | None) -> None:
    verdict = verifier(press).check(seal(press["press-1"], "press-1", 5, topic=signed), arrival)
    assert (verdict.valid, verdict.reason) == (reason is None, reason), verdict.detail
    assert bool(verdict.detail) is (reason is not None)


def test_an_unknown_prefix_names_the_prefix_and_how_to_configure_it(press) -> None:
    verdict = verifier(press).check(seal(press["press-3"], "press-3", 5), "site-x/edge/press-3/host")
    assert "'site-x/'" in verdict.detail and "--bridge-prefix site-x/" in verdict.detail


def test_a_consumer_without_bridge_prefixes_calls_a_bridged_message_an_unknown_prefix(press) -> None:
    check = verifier(press, []).check
    assert check(seal(press["press-1"], "press-1", 5), "edge/press-1/host").valid
    assert check(seal(press["press-1"], "press-1", 6), "site-a/edge/press-1/host").reason == envelope.UNKNOWN_PREFIX


# ---------------------------------------------------------------- the command line

@pytest.mark.parametrize("command", ["verify", "ingest", "board"])
@pytest.mark.parametrize(("given", "says"), [
    (["--bridge-prefix", "site a/"], "argument --bridge-prefix: 'site a/': the prefix"),
    (["--bridge-prefix", "site-a/=press-1", "--bridge-prefix", "site-a/"], "'site-a/' is given twice"),
])
def test_a_consumer_refuses_a_wrong_bridge_prefix_with_exit_2_and_one_line(tmp_path, command, given, says) -> None:
    import subprocess
    import sys

    trust = tmp_path / "trust"
    trust.mkdir()
    store = [] if command == "verify" else ["--db", str(tmp_path / "fleet.sqlite")]
    done = subprocess.run([sys.executable, "-m", "agent.cli", command, "--broker", "mqtt://127.0.0.1:9",
                           "--trust", str(trust), *store, *given], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr
