"""The joint review's pure figures at their edges (tests/integration/test_fleet_history.py plays
a whole hour through a real store): windows cutting episodes, overlaps, never-seen devices,
backlog steps, SLA compliance with nothing to count, the first report of a check."""

from __future__ import annotations

import pytest

from agent.fleet import report, review
from agent.fleet.review import History
from agent.readiness.policy import Asset, Policy

T = 1_800_000_000_000
MIN = 60_000
DAY = 86_400_000
POLICY = Policy(devices={"plc": Asset("critical", "Filling", 900.0)})


def episode(start: int, end: int | None, tolerated_s: float = 900.0) -> dict:
    return {"start_ms": T + start * MIN, "end_ms": None if end is None else T + end * MIN,
            "max_downtime_s": tolerated_s}


def test_segments_clip_to_the_window_and_start_at_the_first_verdict() -> None:
    transitions = [(T - 10 * MIN, "down", "ready", "down"), (T + 5 * MIN, "ready", "ready", "ready"),
                   (T + 20 * MIN, "degraded", "degraded", "ready")]
    spans = review.segments(transitions, T, T + 30 * MIN)
    assert [(s.start_ms - T, s.end_ms - T, s.level) for s in spans] == [
        (0, 5 * MIN, "down"), (5 * MIN, 20 * MIN, "ready"), (20 * MIN, 30 * MIN, "degraded")]
    assert review.time_in(spans, "security") == {"ready": 20 * MIN, "degraded": 10 * MIN, "at_risk": 0, "down": 0}
    assert review.segments(transitions, T + 40 * MIN, T + 30 * MIN) == []  # an empty window
    assert [s.start_ms - T for s in review.segments(transitions[1:], T - DAY, T + 30 * MIN)] == [5 * MIN, 20 * MIN]


@pytest.mark.parametrize("episodes, observed_from, figures", [
    ([], 0, {"downtime_ms": 0, "availability_pct": 100.0, "outages": 0, "longest_ms": 0, "breaches": 0}),
    # Begun before the window: only the part inside counts as downtime, the whole length as its length.
    ([episode(-30, 10)], 0, {"downtime_ms": 10 * MIN, "availability_pct": 83.333, "longest_ms": 40 * MIN,
                             "breaches": 1}),
    # Still going at the end of the window.
    ([episode(50, None)], 0, {"downtime_ms": 10 * MIN, "longest_ms": 10 * MIN, "breaches": 0, "ongoing": True}),
    # Overlapping episodes (two restarts of the store's view) are not counted twice.
    ([episode(0, 20), episode(10, 30)], 0, {"downtime_ms": 30 * MIN, "availability_pct": 50.0, "outages": 2}),
    # A device first seen halfway through the window is measured from then.
    ([episode(40, 45, 60.0)], 30, {"observed_ms": 30 * MIN, "downtime_ms": 5 * MIN, "availability_pct": 83.333,
                                   "breaches": 1}),
])
def test_availability(episodes, observed_from, figures) -> None:
    got = review.availability(episodes, T + observed_from * MIN, T + 60 * MIN)
    assert {key: got[key] for key in figures} == figures


def test_no_observed_time_has_no_availability() -> None:
    assert review.availability([], T, T)["availability_pct"] is None


def update(package: str, first: int, gone: int | None, severity: str = "unspecified") -> dict:
    return {"package": package, "severity": severity, "fixed": "", "first_seen_ms": T + first,
            "gone_ms": None if gone is None else T + gone}


def test_backlog_steps_count_pending_and_past_sla_at_each_change() -> None:
    policy = Policy(patch_sla_s={"critical": 86400.0, "unspecified": 14 * 86400.0})
    updates = [update("a", -2 * DAY, None, "critical"),  # past its 1-day SLA before the window
               update("b", -DAY // 2, 3 * DAY, "critical"),  # turns late at +12 h, gone at +3 d
               update("c", DAY, 2 * DAY),  # inside its SLA, gone
               update("d", -10 * DAY, -DAY)]  # gone before the window: never counted
    points = review.backlog(updates, policy, T, T + 4 * DAY)
    assert [(ms - T, p, o) for ms, p, o in points] == [
        (0, 2, 1), (DAY // 2, 2, 2), (DAY, 3, 2), (2 * DAY, 2, 2), (3 * DAY, 1, 1)]


def test_patch_record_and_compliance_with_nothing_to_count() -> None:
    record = review.patch_record([update("a", 0, None)], POLICY, T, T + DAY)
    assert record["compliance"] == {"closed": 0, "closed_within_sla": 0, "open_past_sla": 0, "percent": None}
    assert record["median_time_to_patch_ms"] is None
    late = review.patch_record([update("a", -20 * DAY, None), update("b", -DAY, DAY // 2)], POLICY, T, T + DAY)
    assert late["compliance"]["percent"] == 50.0 and late["median_time_to_patch_ms"] == DAY + DAY // 2
    assert review.patch_record([update("x", -5 * DAY, -DAY)], POLICY, T, T + DAY)["closed"] == []  # before the window


def test_an_unknown_severity_gets_the_unspecified_sla() -> None:
    assert Policy().sla_s("whatever") == Policy().sla_s("unspecified") == 14 * 86400.0
    assert Policy().sla_s("critical") == 7 * 86400.0


def test_flips_skip_a_checks_first_report_and_rows_before_the_window() -> None:
    rows = [{"node": "n", "check_id": "fw", "ms": T - DAY, "status": "fail"},
            {"node": "n", "check_id": "fw", "ms": T - MIN, "status": "pass"},
            {"node": "n", "check_id": "fw", "ms": T + MIN, "status": "fail", "evidence": "nft: no ruleset"},
            {"node": "n", "check_id": "ssh", "ms": T + 2 * MIN, "status": "fail"}]
    assert review.flips(rows, T) == [{"node": "n", "check_id": "fw", "ms": T + MIN, "was": "pass", "now": "fail",
                                      "evidence": "nft: no ruleset"}]


def test_the_document_for_an_empty_store_says_nothing_is_needed() -> None:
    doc = report.build(History(since_ms=T, now_ms=T + DAY))
    assert doc["nodes"] == [] and doc["decisions"] == [] and doc["time_zone"] == "UTC"
    assert doc["security"]["backlog"] == [(T, 0, 0)] and doc["security"]["compliance"]["percent"] is None


def test_decisions_in_plain_words_most_pressing_first() -> None:
    node = {"node": "panel-3", "policy": POLICY.to_body(), "site": "", "area": "", "level": "at_risk",
            "security": "at_risk", "operations": "ready", "reasons": [], "first_ms": T, "last_heard_ms": T}
    history = History(since_ms=T, now_ms=T + DAY, nodes=[node],
                      patches=[{**update("openssl", -9 * DAY, None, "critical"), "node": "panel-3"}],
                      latest_patches={"panel-3": {"status": "ok", "time_zone": "Europe/Berlin", "reboot_required": True,
                                                  "due_in_next_window": ["openssl"],
                                                  "next_window": {"start_ms": T + DAY + 3 * 3600_000,
                                                                  "end_ms": T + DAY + 6 * 3600_000,
                                                                  "start_local": "x", "ongoing": False}}})
    doc = report.build(history)
    assert [d["text"] for d in doc["decisions"]] == [
        "panel-3: 1 security update past the SLA (openssl); the next window opens in 3 hours. Approve an earlier "
        "window, or accept the risk in writing until then.",
        "panel-3: needs a reboot; confirm the line can stop in the next window."]
    assert doc["nodes"][0]["maintenance"]["planned"] == ["openssl"] and doc["time_zone"] == "Europe/Berlin"
    assert doc["nodes"][0]["breaches"] == ["openssl pending 10 days, past its SLA of 7 days (critical)"]
