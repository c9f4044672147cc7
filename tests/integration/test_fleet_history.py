"""The joint review's history queries on a store filled by a scripted hour with known answers,
on SQLite and on a throwaway PostgreSQL database (the scenario plays once per database).

The hour (one cycle a minute, T = the first cycle):
- panel-1's critical plc-line2 (15 min tolerated) stops answering at +10 min and answers at
  +30 min: its last success was +9 min, so the episode is 21 min, past its tolerance; again
  from +40 (last success +39) to +45: 6 min, inside it;
- security updates: openssl (critical, SLA 7 d) seen 8 days before T, patched at +50; zlib
  (no severity, SLA 14 d) seen a day before T, still pending; curl (important) first seen at
  +5, patched at +20;
- panel-1's firewall check fails at +15 and passes again at +35;
- a tampered copy of a panel-1 message arrives at +12;
- panel-2 runs clean throughout.
"""

from __future__ import annotations

import pytest
from fleet_harness import Fleet
from review_scenario import DAY, MIN, play
from stores import throwaway_postgres

from agent.fleet import report, review
from agent.fleet.store import history, open_store, schema
from agent.fleet.store.db import Database
from agent.readiness.policy import Policy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def played(request, tmp_path_factory):
    if request.param == "sqlite":
        board, t0 = play(str(tmp_path_factory.mktemp("history") / "fleet.sqlite"))
        yield board, t0
        board.close()
        return
    with throwaway_postgres() as url:
        board, t0 = play(url)
        yield board, t0
        board.close()


def read(board: Fleet, query, *args):
    with board.db.transaction(write=False) as tx:
        return query(tx, *args)


def test_outage_episodes_with_their_lengths_and_tolerance(played) -> None:
    board, t0 = played
    episodes = read(board, history.outage_episodes, t0, t0 + 60 * MIN)
    assert [(e["node"], e["device"], e["start_ms"] - t0, e["end_ms"] - t0, e["criticality"], e["max_downtime_s"])
            for e in episodes] == [("panel-1", "plc-line2", 9 * MIN, 30 * MIN, "critical", 900.0),
                                   ("panel-1", "plc-line2", 39 * MIN, 45 * MIN, "critical", 900.0)]
    assert read(board, history.outage_episodes, t0 + 31 * MIN, t0 + 38 * MIN) == []  # between the two
    (late,) = read(board, history.outage_episodes, t0 + 42 * MIN, t0 + 60 * MIN)
    assert late["start_ms"] == t0 + 39 * MIN


def test_availability_longest_outage_and_breaches_over_the_whole_hour_and_from_mid_outage(played) -> None:
    board, t0 = played
    doc = report.build(history.gather(board.db, t0, t0 + 60 * MIN))
    (plc,) = [d for d in node(doc, "panel-1")["devices"] if d["device"] == "plc-line2"]
    assert plc["first_ms"] == t0 and plc["observed_ms"] == 60 * MIN
    assert plc["downtime_ms"] == 27 * MIN and plc["availability_pct"] == 55.0
    assert (plc["outages"], plc["longest_ms"], plc["breaches"], plc["ongoing"]) == (2, 21 * MIN, 1, False)
    assert [e["breached"] for e in plc["episodes"]] == [True, False]
    later = report.build(history.gather(board.db, t0 + 20 * MIN, t0 + 60 * MIN))
    (plc,) = [d for d in node(later, "panel-1")["devices"] if d["device"] == "plc-line2"]
    assert plc["downtime_ms"] == 16 * MIN and plc["availability_pct"] == 60.0
    assert plc["longest_ms"] == 21 * MIN and plc["breaches"] == 1  # the whole episode, not the part in view
    assert later["operations"]["breaches"] == 1 and later["operations"]["down_now"] == 0
    assert "plc-line2 down 21 min, past the 15 min tolerated (critical)" in node(later, "panel-1")["breaches"]


def node(doc: dict, name: str) -> dict:
    return next(n for n in doc["nodes"] if n["node"] == name)


def test_patch_history_time_to_patch_and_sla_compliance(played) -> None:
    board, t0 = played
    rows = read(board, history.patch_history, t0, t0 + 60 * MIN)
    assert [(r["package"], r["severity"], r["first_seen_ms"] - t0, None if r["gone_ms"] is None else r["gone_ms"] - t0)
            for r in rows] == [("openssl", "critical", -8 * DAY, 50 * MIN), ("zlib", "unspecified", -DAY, None),
                               ("curl", "important", 5 * MIN, 20 * MIN)]
    assert read(board, history.patch_history, t0 + 51 * MIN, t0 + 60 * MIN) == rows[1:2]  # openssl, curl gone by then
    patches = node(report.build(history.gather(board.db, t0, t0 + 60 * MIN)), "panel-1")["patches"]
    assert [(c["package"], c["time_to_patch_ms"], c["within_sla"]) for c in patches["closed"]] == [
        ("openssl", 8 * DAY + 50 * MIN, False), ("curl", 15 * MIN, True)]
    assert [(o["package"], o["age_ms"], o["past_sla"]) for o in patches["open"]] == [("zlib", DAY + 60 * MIN, False)]
    assert patches["compliance"] == {"closed": 2, "closed_within_sla": 1, "open_past_sla": 0, "percent": 50.0}


def test_security_backlog_over_time(played) -> None:
    board, t0 = played
    doc = report.build(history.gather(board.db, t0, t0 + 60 * MIN))
    assert [(ms - t0, pending, late) for ms, pending, late in node(doc, "panel-1")["patches"]["backlog"]] == [
        (0, 2, 1), (5 * MIN, 3, 1), (20 * MIN, 2, 1), (50 * MIN, 1, 0)]
    assert node(doc, "panel-2")["patches"]["backlog"] == [(t0, 0, 0)]
    assert [(ms - t0, p, o) for ms, p, o in doc["security"]["backlog"]] == [
        (0, 2, 1), (5 * MIN, 3, 1), (20 * MIN, 2, 1), (50 * MIN, 1, 0)]


def test_posture_checks_that_flipped_and_when(played) -> None:
    board, t0 = played
    rows = read(board, history.posture_history, t0 + 20 * MIN, t0 + 60 * MIN)
    firewall = [(r["ms"] - t0, r["status"]) for r in rows if r["node"] == "panel-1" and r["check_id"] == "firewall"]
    assert firewall == [(15 * MIN, "fail"), (35 * MIN, "pass")]  # the one before the window, then the change
    flips = review.flips(read(board, history.posture_history, t0, t0 + 60 * MIN), t0)
    assert [(f["node"], f["check_id"], f["ms"] - t0, f["was"], f["now"]) for f in flips] == [
        ("panel-1", "firewall", 15 * MIN, "pass", "fail"), ("panel-1", "firewall", 35 * MIN, "fail", "pass")]
    later = review.flips(read(board, history.posture_history, t0 + 20 * MIN, t0 + 60 * MIN), t0 + 20 * MIN)
    assert [(f["ms"] - t0, f["now"]) for f in later] == [(35 * MIN, "pass")]


def test_verdict_timeline_for_30_days(played) -> None:
    board, t0 = played
    now = t0 + 60 * MIN
    timeline = read(board, history.verdict_history, now - 30 * DAY, now)
    operations = [(ms - t0, ops) for ms, _, _, ops in timeline["panel-1"]]
    # Critical device: at risk inside its 15 min, down past it (+9 + 15 = +24), ready when it answers.
    assert operations == [(0, "ready"), (10 * MIN, "at_risk"), (24 * MIN, "down"), (30 * MIN, "ready"),
                          (40 * MIN, "at_risk"), (45 * MIN, "ready")]
    # Security: openssl past its SLA until +50, the forged message counts for an hour from +12.
    assert {sec for _, _, sec, _ in timeline["panel-1"]} == {"at_risk"}
    assert [(ms - t0, lv) for ms, lv, _, _ in timeline["panel-2"]] == [(0, "ready")]
    spans = review.segments(timeline["panel-1"], now - 30 * DAY, now)
    assert spans[0].start_ms == t0 and spans[-1].end_ms == now  # nothing is made up before the first verdict
    assert review.time_in(spans, "operations") == {"ready": 35 * MIN, "degraded": 0, "at_risk": 19 * MIN,
                                                   "down": 6 * MIN}
    assert review.time_in(spans, "security") == {"ready": 0, "degraded": 0, "at_risk": 60 * MIN, "down": 0}
    # A window that starts later begins with the verdict in force then.
    (first, *_) = read(board, history.verdict_history, t0 + 26 * MIN, now)["panel-1"]
    assert (first[0] - t0, first[3]) == (24 * MIN, "down")


def test_the_report_names_rejections_gaps_and_decisions(played) -> None:
    board, t0 = played
    doc = report.build(history.gather(board.db, t0, t0 + 60 * MIN))
    p1 = node(doc, "panel-1")
    assert p1["rejected"] == {"bad_signature": 1} and doc["security"]["rejected"] == {"bad_signature": 1}
    assert p1["gaps"] == 0 and node(doc, "panel-2")["rejected"] == {}
    texts = [d["text"] for d in doc["decisions"]]
    assert any(t.startswith("panel-1: 1 message in its name failed verification (1 altered)") for t in texts)
    assert any(t.startswith("panel-1: plc-line2 (Line 2 filling) was down 21 min against 15 min tolerated")
               for t in texts)
    assert any(t.startswith("panel-1: hardening check firewall started failing") for t in texts)
    assert not any(t.startswith("panel-2") for t in texts)
    assert doc["counts"] == {"ready": 1, "degraded": 0, "at_risk": 1, "down": 0}


def test_the_asset_register_rows(played) -> None:
    board, t0 = played
    nodes, devices, bodies = history.assets(board.db)
    assert [n["node"] for n in nodes] == ["panel-1", "panel-2"]
    assert [(d["node"], d["device"], d["first_ms"] - t0, d["last_ms"] - t0) for d in devices] == [
        ("panel-1", "plc-line2", 0, 60 * MIN), ("panel-2", "plc-line2", 0, 60 * MIN)]
    assert bodies[("panel-1", "modbus/plc-line2")]["status"]["state"] == "online"
    assert Policy.from_body(nodes[0]["policy"]).device("plc-line2").max_downtime_s == 900.0


def test_a_store_from_before_the_device_register_learns_its_devices_on_upgrade(store_url, monkeypatch) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
    monkeypatch.setattr(schema, "LATEST_VERSION", 1)
    db = Database(store_url)
    try:
        schema.migrate(db)
        with db.transaction() as tx:
            tx.run("INSERT INTO latest (node, stream, kind, session, seq, kid, ts_ms, received_ms, body) VALUES "
                   "('panel-1', 'modbus/plc', 'modbus', 's', 9, 'k', 5000, 5000, '{}'), "
                   "('panel-1', 'host', 'host', 's', 8, 'k', 5000, 5000, '{}')")
            tx.run("INSERT INTO outages (node, device, start_ms, end_ms, criticality, max_downtime_s) VALUES "
                   "('panel-1', 'plc', 1000, 2000, 'critical', 900)")
    finally:
        db.close()
    monkeypatch.undo()
    db = open_store(store_url)
    try:
        with db.transaction(write=False) as tx:
            assert history.device_rows(tx) == [{"node": "panel-1", "device": "plc", "first_ms": 1000, "last_ms": 5000}]
    finally:
        db.close()


def test_what_is_open_now_for_metrics(played) -> None:
    board, t0 = played
    with board.db.transaction(write=False) as tx:
        assert history.open_outages(tx) == []  # both episodes ended
        assert history.open_updates(tx) == {"panel-1": [{"package": "zlib", "severity": "unspecified",
                                                         "first_seen_ms": t0 - DAY}]}
