"""The fleet store on a real SQLite file and a real (throwaway) PostgreSQL database, the same
cases for both: verdicts, agreement, forgeries, duplicates and replays decided by the store,
loss, history, restarts and retention. Driven directly (tests/fleet_harness.py), no broker."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fleet_harness import POLICY, Clock, Fleet, make_nodes

from agent.core.reading import Reading
from agent.fleet import state
from agent.fleet.store import StoreError, open_store
from agent.fleet.store.schema import LATEST_VERSION
from agent.fleet.store.upkeep import Retention, prune
from agent.fleet.store.writes import NEWER_SQL
from agent.trust.bridge import Bridges
from simulators.signed_node import SimNode

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(store_url):
    made: list[Fleet] = []

    def make(*names: str, clock: Clock | None = None, trust=None) -> tuple[Fleet, dict[str, SimNode]]:
        clock = clock or Clock()
        made_trust, nodes = make_nodes(clock, *names)
        instance = Fleet(store_url, trust or made_trust, clock)
        made.append(instance)
        return instance, nodes

    yield make
    for instance in made:
        instance.close()


def test_a_healthy_node_is_ready_verified_and_agrees_with_its_agent(fleet) -> None:
    board, nodes = fleet("panel-1")
    assert set(board.feed([nodes["panel-1"].status("online"), *nodes["panel-1"].cycle()])) == {"fresh"}
    r = board.rows()["panel-1"]
    assert (r["level"], r["security"], r["operations"]) == ("ready", "ready", "ready")
    assert r["verified"] and r["online"] and r["unverified"]["count"] == 0
    assert r["agent"]["agreement"] == "agrees" and r["agent"]["verdict"]["level"] == "ready"
    assert r["criticality"] == "critical" and r["process"] == "Packaging line 2"
    assert r["loss"] == {"gaps": 0, "duplicates": 0, "messages": 6, "ignored_streams": 0}
    assert json.loads(board.view.snapshot_json()) == board.view.snapshot()  # what the API serves, encoded once


def test_the_board_recomputes_and_flags_an_agent_that_claims_ready_while_its_plc_is_down(fleet) -> None:
    board, nodes = fleet("panel-1")
    node = nodes["panel-1"]
    board.feed(node.cycle())
    node.devices["plc-line2"].online = False
    board.clock.now += 16 * 60
    messages = node.cycle()
    body = json.loads(messages[-1][1])["body"]
    body["verdict"] = {"level": "ready", "security": "ready", "operations": "ready", "reasons": []}
    lie = node.seal(Reading("readiness", body, retain=True))
    board.feed(messages[:-1] + [lie])
    r = board.rows()["panel-1"]
    assert r["agent"]["agreement"] == "disagrees" and r["agent"]["board"]["operations"] == "down"
    assert r["operations"] == "down"  # the board shows its own computation, not the claim
    assert any("plc-line2 offline 16 min, past the 15 min tolerated" in x["text"] for x in r["reasons"])
    (flag,) = [x for x in r["reasons"] if x["code"] == "verdict_disagrees"]
    assert "says ready" in flag["text"] and "messages say down" in flag["text"] and flag["lens"] == "security"


def test_agreement_stays_unchecked_when_the_board_missed_what_the_agent_judged(fleet) -> None:
    board, nodes = fleet("panel-1")
    board.feed(nodes["panel-1"].cycle()[-1:])  # joined late: only the retained verdict
    assert board.rows()["panel-1"]["agent"]["agreement"] == "unchecked"


def test_a_verdict_stored_before_its_inputs_is_checked_once_they_arrive(fleet) -> None:
    board, nodes = fleet("panel-1")
    messages = nodes["panel-1"].cycle()
    board.feed(messages[-1:])  # another ingest process was quicker with the verdict than with its inputs
    assert board.rows()["panel-1"]["agent"]["agreement"] == "unchecked"
    board.feed(messages[:-1])
    assert board.rows()["panel-1"]["agent"]["agreement"] == "agrees"


def test_forgeries_are_marked_never_change_the_verified_state_and_never_make_a_fleet_node(fleet) -> None:
    board, nodes = fleet("panel-1", "panel-2")
    board.feed(nodes["panel-1"].cycle() + nodes["panel-2"].cycle())
    nodes["panel-2"].devices["plc-line2"].online = False
    board.clock.now += 60
    board.feed(nodes["panel-2"].cycle())
    topic, payload, _ = nodes["panel-2"].sent[-4]
    assert topic.endswith("/modbus/plc-line2")
    tampered = payload.replace(b'"state":"offline"', b'"state":"online"')
    attacker = SimNode("panel-2", Ed25519PrivateKey.generate(), policy=POLICY, clock=board.clock)
    foreign_topic, foreign_payload, _ = nodes["panel-1"].sent[0]
    outcomes = board.feed([(topic, tampered, False), attacker.seal(Reading("host", {})),
                           (foreign_topic.replace("panel-1", "panel-2"), foreign_payload, False)])
    assert outcomes == ["rejected"] * 3
    ghosts = [SimNode(f"ghost-{i}", Ed25519PrivateKey.generate(), clock=board.clock) for i in range(30)]
    board.feed([g.seal(Reading("host", {})) for g in ghosts])
    fleet_now = board.fleet()
    rows = {r["node"]: r for r in fleet_now["nodes"]}
    assert set(rows) == {"panel-1", "panel-2"} and sum(fleet_now["counts"].values()) == 2
    assert rows["panel-2"]["unverified"]["by_reason"] == {"bad_signature": 1, "unknown_key": 1, "topic_mismatch": 1}
    assert rows["panel-2"]["security"] == "at_risk"
    assert any(x["code"] == "device_offline" for x in rows["panel-2"]["reasons"])  # the forged "online" was not taken
    assert rows["panel-1"]["unverified"]["count"] == 0
    assert fleet_now["rejected"]["unknown_node_count"] == 30
    assert fleet_now["rejected"]["unknown_nodes"][0]["by_reason"] == {"unknown_key": 1}
    assert fleet_now["messages"]["rejected"] == 33


def test_behind_a_site_bridge_messages_file_under_their_node_and_moved_copies_under_it_too(store_url) -> None:
    """Bridged topics (site-a/edge/panel-1/host) are the node's own streams; a copy moved under
    another site's prefix, and one arriving without its prefix, are refused and counted against
    the node; one under a prefix nobody configured too."""
    clock = Clock()
    trust, nodes = make_nodes(clock, "panel-1")
    board = Fleet(store_url, trust, clock, bridges=Bridges.parse(["site-a/=panel-1", "site-b/"]))
    try:
        messages = [nodes["panel-1"].status("online"), *nodes["panel-1"].cycle()]
        assert set(board.feed([(f"site-a/{topic}", payload, retain) for topic, payload, retain in messages])) == {
            "fresh"}
        r = board.rows()["panel-1"]
        assert (r["level"], r["verified"], r["agent"]["agreement"]) == ("ready", True, "agrees")
        topic, payload, _ = messages[1]
        moved = [(f"site-b/{topic}", payload, False), (topic, payload, False), (f"site-x/{topic}", payload, False)]
        assert board.feed(moved) == ["rejected"] * 3
        assert board.feed([(f"site-a/{topic}", payload, False)]) == ["duplicate"]
        r = board.rows()["panel-1"]
        assert r["loss"] == {"gaps": 0, "duplicates": 1, "messages": 6, "ignored_streams": 0}
        assert r["unverified"]["by_reason"] == {"prefix_not_allowed": 2, "unknown_prefix": 1}
        assert r["security"] == "at_risk"  # messages moved between sites are an attack on the node
        assert set(board.rows()) == {"panel-1"}
    finally:
        board.close()


def test_duplicates_and_retained_copies_are_quiet_and_counted_once(fleet) -> None:
    board, nodes = fleet("panel-1")
    messages = nodes["panel-1"].cycle()
    board.feed(messages)
    assert board.feed(messages) == ["duplicate"] * 5  # QoS 1 redelivery / the second subscription's copy
    assert board.feed(messages[-1:], retained=True) == ["duplicate"]
    forged = SimNode("panel-1", Ed25519PrivateKey.generate(), clock=board.clock).seal(Reading("status", {"state": "online"}))
    for _ in range(3):  # a retained forgery handed out again at every resubscribe
        board.feed([forged], retained=True)
    r = board.rows()["panel-1"]
    assert r["loss"]["messages"] == 5 and r["loss"]["duplicates"] == 6
    assert r["unverified"]["by_reason"] == {"unknown_key": 1}
    assert board.fleet()["messages"]["verified"] == 5


def test_a_different_message_under_a_stored_number_is_a_replay_whichever_process_sees_it(fleet) -> None:
    first, nodes = fleet("panel-1")
    node = nodes["panel-1"]
    second, _ = fleet(clock=first.clock, trust=first.verifier.trust)  # another ingest process, same store
    original = node.seal(Reading("host", node.host))
    node.seq -= 1  # a node (or a thief of its key) signing other content under the same number
    other = node.seal(Reading("host", {**node.host, "uptime_s": 1}))
    assert first.feed([original]) == ["fresh"]
    assert second.feed([original]) == ["duplicate"]
    assert second.feed([other]) == ["replay"]
    assert first.feed([other, other]) == ["replay", "replay"]
    r = first.rows()["panel-1"]
    assert r["unverified"]["by_reason"] == {"replay": 3} and r["security"] == "at_risk"
    detail = first.view.detail("panel-1")
    assert detail["host"]["uptime_s"] == 86400  # the first one stands


def test_both_copies_of_a_replay_in_one_batch_are_told_apart(fleet) -> None:
    board, nodes = fleet("panel-1")
    node = nodes["panel-1"]
    original = node.seal(Reading("host", node.host))
    node.seq -= 1
    other = node.seal(Reading("host", {**node.host, "uptime_s": 1}))
    assert board.feed([original, original, other]) == ["fresh", "duplicate", "replay"]


def test_silence_then_death_show_the_node_offline(fleet) -> None:
    board, nodes = fleet("panel-1")
    node = nodes["panel-1"]
    will = node.status("offline")  # sealed first, like the agent's Last Will
    board.feed([node.status("online"), *node.cycle()])
    board.clock.now += 100
    board.tick()
    assert board.rows()["panel-1"]["online"]
    board.clock.now += 60
    board.tick()
    r = board.rows()["panel-1"]
    assert not r["online"] and [x["code"] for x in r["reasons"] if x["lens"] == "operations"] == ["node_silent"]
    board.feed([will])
    r = board.rows()["panel-1"]
    offline = [x for x in r["reasons"] if x["code"] == "node_offline"]
    assert not r["online"] and offline and "node offline 2 min of 30 min tolerated" in offline[0]["text"]


def test_timeline_history_and_counts_survive_a_restart(fleet, store_url) -> None:
    board, nodes = fleet("panel-1")
    node = nodes["panel-1"]
    board.feed(node.cycle())
    node.devices["plc-line2"].online = False
    for _ in range(20):  # 20 min of an outage, one cycle a minute
        board.clock.now += 60
        board.feed(node.cycle())
        board.tick()
    before = board.fleet()
    assert [p["level"] for p in before["nodes"][0]["timeline"]] == ["ready", "at_risk", "down"]
    board.close()  # as after a SIGKILL: nothing but the store is left
    again = Fleet(store_url, board.verifier.trust, board.clock)
    try:
        after = again.fleet()
        assert after["nodes"] == before["nodes"] and after["messages"] == before["messages"]
        assert again.feed(node.sent[-5:]) == ["duplicate"] * 5  # retained copies after the restart
        assert again.fleet()["messages"]["verified"] == before["messages"]["verified"]
        detail = again.view.detail("panel-1")
        (episode,) = detail["outages"]
        assert episode["device"] == "plc-line2" and episode["end_ms"] is None and episode["criticality"] == "critical"
        node.devices["plc-line2"].online = True
        again.clock.now += 60
        again.feed(node.cycle())
        (episode,) = again.view.detail("panel-1")["outages"]
        assert episode["end_ms"] == again.clock.ms()
    finally:
        again.close()


def test_sequence_gaps_are_loss_except_the_will_the_broker_holds(fleet) -> None:
    board, nodes = fleet("panel-1")
    node = nodes["panel-1"]
    will = node.status("offline")  # the agent seals the Will first, the broker holds it
    birth = node.seal(Reading("status", {"state": "online", "will_seq": node.seq - 1}, retain=True))
    board.feed([birth, *node.cycle()])
    assert board.rows()["panel-1"]["loss"]["gaps"] == 0  # the held Will is not lost
    lost = node.cycle()
    board.feed(node.cycle())
    assert board.rows()["panel-1"]["loss"]["gaps"] == len(lost)
    board.feed(lost[:2] + [will])
    assert board.rows()["panel-1"]["loss"]["gaps"] == len(lost) - 2
    assert board.fleet()["messages"]["gaps"] == len(lost) - 2


def test_a_body_that_breaks_its_model_is_rejected_by_field_and_the_node_keeps_working(fleet) -> None:
    board, nodes = fleet("panel-1", "panel-2")
    for node in nodes.values():
        board.feed(node.cycle())
    bad = [nodes["panel-1"].seal(Reading("host", {"disks": 5})),
           nodes["panel-1"].seal(Reading("patches", {"status": "ok", "security_updates": 7}, retain=True)),
           nodes["panel-1"].seal(Reading("readiness", {"verdict": {"level": 5}}, retain=True))]
    assert board.feed(bad) == ["invalid_body"] * 3
    assert board.feed(bad) == ["duplicate"] * 3  # authentic: in the guard, counted once
    rows = board.rows()
    assert rows["panel-1"]["unverified"]["by_reason"] == {"invalid_body": 3}
    assert rows["panel-1"]["security"] == "at_risk" and rows["panel-1"]["agent"]["verdict"]["level"] == "ready"
    detail = board.view.detail("panel-1")
    assert {r["detail"].split(":")[0] for r in detail["rejections"]} == {"host.disks", "patches.security_updates",
                                                                         "readiness.verdict.level"}
    assert detail["host"]["disks"][0]["mount"] == "/"  # the last good body stands
    assert rows["panel-2"]["level"] == "ready"


def test_what_a_node_can_make_the_store_remember_is_bounded(fleet) -> None:
    board, nodes = fleet("panel-1")
    board.writer.max_streams = 8
    node = nodes["panel-1"]
    board.feed(node.cycle())  # 5 streams
    board.feed([node.seal(Reading("modbus", {"status": {"state": "online"}}, subject=f"junk-{i}")) for i in range(10)])
    assert len(board.view.detail("panel-1")["streams"]) == 8
    assert board.rows()["panel-1"]["loss"]["ignored_streams"] == 7


def test_patch_and_posture_history(fleet) -> None:
    board, nodes = fleet("panel-1")
    node = nodes["panel-1"]
    seen_ms = board.clock.ms() - 3600_000
    node.patches = {**node.patches, "security_updates": [
        {"package": "openssl", "severity": "critical", "fixed": "3.0.2", "first_seen_ms": seen_ms},
        {"package": "zlib", "first_seen_ms": seen_ms}]}
    board.feed(node.cycle())
    node.posture = {"checks": [{**c, "status": "fail"} if c["id"] == "firewall" else c
                               for c in node.posture["checks"]]}
    node.patches = {**node.patches, "security_updates": node.patches["security_updates"][1:]}
    board.clock.now += 60
    board.feed(node.cycle())
    node.patches = {**node.patches, "status": "unknown", "security_updates": []}  # a failed scan is no news
    board.clock.now += 60
    board.feed(node.cycle())
    with board.db.transaction(write=False) as tx:
        patches = tx.rows("SELECT package, first_seen_ms, gone_ms, severity FROM patch_updates ORDER BY package")
        posture = tx.rows("SELECT check_id, status FROM posture_changes WHERE check_id = 'firewall' ORDER BY ms")
    assert [(p, f, g, s) for p, f, g, s in patches] == [("openssl", seen_ms, board.clock.ms() - 60_000, "critical"),
                                                        ("zlib", seen_ms, None, "unspecified")]
    assert [tuple(row) for row in posture] == [("firewall", "pass"), ("firewall", "fail")]


def test_retention_keeps_the_replay_guard_and_each_series_newest_row(fleet) -> None:
    board, nodes = fleet("panel-1")
    node = nodes["panel-1"]
    old = node.cycle()
    board.feed(old)
    board.tick()
    board.clock.now += 3 * 86400
    board.feed(node.cycle())
    done = prune(board.db, board.clock.ms(), Retention(retention_ms=2 * 86_400_000, history_ms=2 * 86_400_000))
    assert done["messages"] == 5 and done["verdicts"] == 0  # the one transition is what the window starts with
    assert board.feed(node.cycle()) == ["fresh"] * 5
    assert board.rows()["panel-1"]["timeline"]


def test_a_retained_message_too_old_to_verify_is_history_not_a_forgery(fleet) -> None:
    board, nodes = fleet("panel-1")
    old = nodes["panel-1"].status("online")  # a birth has an age limit (a death has none)
    board.clock.now += 8 * 86400  # beyond the verifier's 7-day max age
    assert board.feed([old], retained=True) == ["quiet"]
    assert board.feed([old]) == ["rejected"]  # the same bytes sent live now are a replayed old message
    assert board.fleet()["messages"]["rejected"] == 1


def test_migrations_apply_once_and_a_newer_store_is_refused(store_url) -> None:
    db = open_store(store_url)
    try:
        with db.transaction() as tx:
            assert sorted(v for (v,) in tx.rows("SELECT version FROM schema_migrations")) == list(
                range(1, LATEST_VERSION + 1))
            tx.run("INSERT INTO schema_migrations (version, name, applied_ms) VALUES (%s, %s, %s)",
                   [LATEST_VERSION + 1, "from the future", 0])
    finally:
        db.close()
    with pytest.raises(StoreError, match="newer than this program"):
        open_store(store_url)


@pytest.mark.parametrize("candidate, held_row, expected", [
    (("status", "s1", 5, 100, 2000), ("status", "s1", 9, 200, 1000), True),  # the Will arrives last
    (("status", "s1", 9, 200, 1000), ("status", "s1", 5, 100, 2000), False),
    (("host", "s1", 9, 100, 1000), ("host", "s1", 5, 200, 2000), True),
    (("host", "s1", 5, 300, 3000), ("host", "s1", 9, 200, 2000), False),  # backlog behind newer data
    (("host", "s2", 1, 300, 3000), ("host", "s1", 9, 200, 2000), True),  # a wiped node starts again
    (("host", "s0", 1, 100, 3000), ("host", "s1", 9, 200, 2000), False),
])
def test_the_newest_message_rule_is_the_same_in_python_and_sql(store_url, candidate, held_row, expected) -> None:
    assert state.newer(state.Held(*candidate), state.Held(*held_row)) is expected
    db = open_store(store_url)
    try:
        with db.transaction() as tx:
            insert = ("INSERT INTO latest (node, stream, kind, session, seq, kid, ts_ms, received_ms, body) VALUES "
                      "('n', 's', %s, %s, %s, 'k', %s, %s, '{}') ON CONFLICT (node, stream) DO UPDATE SET "
                      f"seq = excluded.seq WHERE {NEWER_SQL} RETURNING seq")
            tx.rows(insert, list(held_row))
            assert bool(tx.rows(insert, list(candidate))) is expected
            tx.run("DELETE FROM latest")
    finally:
        db.close()
