"""The board's fleet state, fed (topic, Verdict) pairs directly: no broker, no clock."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.core.reading import Reading
from agent.fleet.state import FleetState
from agent.readiness.policy import Asset, Policy
from agent.trust import keys
from agent.trust.verify import Verifier
from simulators.signed_node import SimNode

T0 = 1_800_000_000.0
POLICY = Policy(node=Asset("critical", "Packaging line 2", 1800.0),
                devices={"plc-line2": Asset("critical", "Line 2 filling", 900.0)})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def setup(*names: str) -> tuple[Clock, FleetState, Verifier, dict[str, SimNode]]:
    clock = Clock()
    trust = keys.TrustStore()
    nodes = {}
    for name in names:
        key = Ed25519PrivateKey.generate()
        trust.add(key.public_key(), frozenset({name}))
        nodes[name] = SimNode(name, key, policy=POLICY, clock=clock)
    state = FleetState(started_ms=int(T0 * 1000), silent_after_ms=120_000, history_ms=3600_000)
    return clock, state, Verifier(trust, clock=clock), nodes


def feed(state: FleetState, verifier: Verifier, clock: Clock, messages, retained: bool = False) -> None:
    for topic, payload, _ in messages:
        state.ingest(topic, verifier.check(payload, topic), int(clock.now * 1000), retained)


def row(state: FleetState, clock: Clock, node: str) -> dict:
    rows = {r["node"]: r for r in state.snapshot(int(clock.now * 1000))["nodes"]}
    return rows[node]


def test_a_healthy_node_is_ready_verified_and_agrees_with_its_agent() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    feed(state, verifier, clock, [nodes["panel-1"].status("online"), *nodes["panel-1"].cycle()])
    r = row(state, clock, "panel-1")
    assert (r["level"], r["security"], r["operations"]) == ("ready", "ready", "ready")
    assert r["verified"] and r["online"] and r["unverified"]["count"] == 0
    assert r["agent"]["agreement"] == "agrees" and r["agent"]["verdict"]["level"] == "ready"
    assert r["criticality"] == "critical" and r["process"] == "Packaging line 2"
    json.dumps(state.snapshot(int(clock.now * 1000)))  # the API serves it as is


def test_the_board_recomputes_and_flags_an_agent_that_claims_ready_while_its_plc_is_down() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    node = nodes["panel-1"]
    feed(state, verifier, clock, node.cycle())
    node.devices["plc-line2"].online = False
    clock.now += 16 * 60
    messages = node.cycle()
    # A buggy or compromised agent signs "ready" for the data it just sent.
    topic, _, _ = messages[-1]
    body = json.loads(messages[-1][1])["body"]
    body["verdict"] = {"level": "ready", "security": "ready", "operations": "ready", "reasons": []}
    lie = node.seal(Reading("readiness", body, retain=True))
    feed(state, verifier, clock, messages[:-1] + [lie])
    r = row(state, clock, "panel-1")
    assert r["agent"]["agreement"] == "disagrees"
    assert r["agent"]["board"]["operations"] == "down"
    assert r["operations"] == "down"  # the board shows its own computation, not the claim
    assert any("plc-line2 offline 16 min, past the 15 min tolerated" in x["text"] for x in r["reasons"])
    (flag,) = [x for x in r["reasons"] if x["code"] == "verdict_disagrees"]
    assert "says ready" in flag["text"] and "messages say down" in flag["text"] and flag["lens"] == "security"


def test_agreement_stays_unchecked_when_the_board_missed_what_the_agent_judged() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    messages = nodes["panel-1"].cycle()
    feed(state, verifier, clock, messages[-1:])  # joined late: only the retained verdict
    assert row(state, clock, "panel-1")["agent"]["agreement"] == "unchecked"


def test_forged_messages_are_marked_and_never_change_the_verified_state() -> None:
    clock, state, verifier, nodes = setup("panel-1", "panel-2")
    feed(state, verifier, clock, nodes["panel-1"].cycle() + nodes["panel-2"].cycle())
    nodes["panel-2"].devices["plc-line2"].online = False
    clock.now += 60
    feed(state, verifier, clock, nodes["panel-2"].cycle())
    topic, payload, _ = nodes["panel-2"].sent[-4]  # its modbus message, now saying offline
    assert topic.endswith("/modbus/plc-line2")
    tampered = payload.replace(b'"state":"offline"', b'"state":"online"')
    attacker = SimNode("panel-2", Ed25519PrivateKey.generate(), policy=POLICY, clock=clock)
    foreign_topic, foreign_payload, _ = nodes["panel-1"].sent[0]
    state.ingest(topic, verifier.check(tampered, topic), int(clock.now * 1000))
    feed(state, verifier, clock, [attacker.seal(Reading("host", {}))])
    moved = foreign_topic.replace("panel-1", "panel-2")
    state.ingest(moved, verifier.check(foreign_payload, moved), int(clock.now * 1000))
    r = row(state, clock, "panel-2")
    assert r["unverified"]["by_reason"] == {"bad_signature": 1, "unknown_key": 1, "topic_mismatch": 1}
    assert r["security"] == "at_risk"
    assert any(x["code"] == "messages_rejected" for x in r["reasons"])
    assert any(x["code"] == "device_offline" for x in r["reasons"])  # the forged "online" was not taken
    assert row(state, clock, "panel-1")["unverified"]["count"] == 0


def test_duplicates_and_retained_old_copies_are_quiet() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    messages = nodes["panel-1"].cycle()
    feed(state, verifier, clock, messages)
    feed(state, verifier, clock, messages)  # QoS 1 redelivery / the second subscription's copy
    feed(state, verifier, clock, messages[-1:], retained=True)
    assert row(state, clock, "panel-1")["unverified"]["count"] == 0
    assert state.rejected == 0


def test_a_node_only_seen_in_forgeries_shows_unverified_with_no_verdict_data() -> None:
    clock, state, verifier, _ = setup("panel-1")
    attacker = SimNode("panel-9", Ed25519PrivateKey.generate(), clock=clock)
    feed(state, verifier, clock, attacker.cycle())
    r = row(state, clock, "panel-9")
    assert not r["verified"] and not r["online"] and r["unverified"]["by_reason"] == {"unknown_key": 4}


def test_silence_then_death_show_the_node_offline() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    node = nodes["panel-1"]
    will = node.status("offline")  # sealed first, like the agent's Last Will
    feed(state, verifier, clock, [node.status("online"), *node.cycle()])
    clock.now += 100
    assert row(state, clock, "panel-1")["online"]
    clock.now += 60
    r = row(state, clock, "panel-1")
    assert not r["online"] and [x["code"] for x in r["reasons"] if x["lens"] == "operations"] == ["node_silent"]
    feed(state, verifier, clock, [will])
    r = row(state, clock, "panel-1")
    assert not r["online"]
    offline = [x for x in r["reasons"] if x["code"] == "node_offline"]
    assert offline and "node offline 2 min of 30 min tolerated" in offline[0]["text"]


def test_timeline_records_changes_and_forgets_beyond_the_history() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    node = nodes["panel-1"]
    feed(state, verifier, clock, node.cycle())
    state.tick(int(clock.now * 1000))
    node.devices["plc-line2"].online = False
    for _ in range(20):  # 20 min of an outage, one cycle a minute
        clock.now += 60
        feed(state, verifier, clock, node.cycle())
        state.tick(int(clock.now * 1000))
    levels = [p["level"] for p in row(state, clock, "panel-1")["timeline"]]
    assert levels == ["ready", "at_risk", "down"]
    node.devices["plc-line2"].online = True
    clock.now += 2 * 3600
    feed(state, verifier, clock, node.cycle())
    state.tick(int(clock.now * 1000))
    points = row(state, clock, "panel-1")["timeline"]
    assert [p["level"] for p in points] == ["down", "ready"]  # what the window started with, then now


def test_node_detail_has_devices_host_and_streams() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    feed(state, verifier, clock, nodes["panel-1"].cycle())
    detail = state.node_detail("panel-1", int(clock.now * 1000))
    assert detail is not None
    assert [d["name"] for d in detail["devices"]] == ["plc-line2"]
    assert detail["devices"][0]["criticality"] == "critical" and detail["devices"][0]["max_downtime_s"] == 900.0
    assert detail["host"]["memory"]["percent"] == 41.0
    assert set(detail["streams"]) == {"host", "modbus/plc-line2", "patches", "posture", "readiness"}
    assert state.node_detail("nobody", 0) is None


def test_a_retained_message_too_old_to_verify_is_history_not_a_forgery() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    old = nodes["panel-1"].status("online")  # a birth has an age limit (a death has none)
    clock.now += 8 * 86400  # beyond the verifier's 7-day max age
    state.ingest(old[0], verifier.check(old[1], old[0]), int(clock.now * 1000), retained=True)
    assert state.rejected == 0
    state.ingest(old[0], verifier.check(old[1], old[0]), int(clock.now * 1000), retained=False)
    assert state.rejected == 1  # the same bytes sent live now are a replayed old message


def test_topic_filters_and_listen_address() -> None:
    from agent.fleet.feed import topic_filters
    from agent.web.server import parse_listen

    filters = [f for f, _ in topic_filters("edge", "fleet")]
    assert filters[0] == "$share/fleet/edge/#"
    assert {"edge/+/status", "edge/+/readiness", "edge/+/patches", "edge/+/posture"} <= set(filters)
    assert topic_filters("edge", None) == [("edge/#", 1)]
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8080", "host:", "host:http", "h:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_what_others_can_make_the_board_remember_is_bounded() -> None:
    clock, state, verifier, nodes = setup("panel-1")
    state.max_streams, state.max_unverified_nodes = 8, 3
    node = nodes["panel-1"]
    feed(state, verifier, clock, node.cycle())  # 5 streams
    feed(state, verifier, clock, [node.seal(Reading("modbus", {}, subject=f"junk-{i}")) for i in range(10)])
    assert len(state.nodes["panel-1"].latest) == 8 and state.ignored_streams == 7
    for i in range(10):  # forgeries naming ten made-up nodes
        forger = SimNode(f"ghost-{i}", Ed25519PrivateKey.generate(), clock=clock)
        feed(state, verifier, clock, [forger.seal(Reading("host", {}))])
    assert sorted(state.nodes) == ["ghost-0", "ghost-1", "ghost-2", "panel-1"]
    assert len(state.unattributed) == 7 and state.rejected == 10
