"""Every tabletop drill plays against real PLC simulators, a real Mosquitto and the board, and
the board reports the verdicts the scenario expects, step by step."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simulators.drill import list_drills, load_scenario, run_drill

pytestmark = pytest.mark.integration

# What the board must show for one node after each step, beyond the scenario's own checks.
LEVELS_BY_STEP = {
    "critical_plc_offline": ("panel-1", ["ready", "at_risk", "at_risk", "down", "ready"]),
    "security_backlog": ("panel-3", ["degraded", "at_risk", "ready"]),
    "forged_messages": ("panel-2", ["ready", "at_risk"]),
    "broker_outage": ("panel-1", ["ready", "ready", "at_risk", "ready"]),
}


def test_the_four_required_drills_exist() -> None:
    assert set(LEVELS_BY_STEP) <= set(list_drills())
    for name in list_drills():
        scenario = load_scenario(name)
        assert scenario.steps and all(step.expect for step in scenario.steps), name


# weekly_review plays three plant days into a store in test_review_drill.py (and checks it passed there).
@pytest.mark.parametrize("name", [name for name in list_drills() if name != "weekly_review"])
def test_drill_passes_with_the_expected_verdicts(name: str) -> None:
    lines: list[str] = []
    outcome = run_drill(name, out=lines.append)
    assert outcome.passed, "\n".join(lines)
    if name in LEVELS_BY_STEP:
        node, levels = LEVELS_BY_STEP[name]
        shown = [next(r["level"] for r in fleet["nodes"] if r["node"] == node) for fleet in outcome.shown]
        assert shown == levels, "\n".join(lines)
    assert lines[-1].startswith("== PASSED")


def test_forged_messages_never_reach_the_verified_state() -> None:
    outcome = run_drill("forged_messages", out=lambda line: None)
    after = {r["node"]: r for r in outcome.shown[-1]["nodes"]}
    assert after["panel-2"]["unverified"]["by_reason"] == {"bad_signature": 1, "unknown_key": 1, "topic_mismatch": 1}
    assert after["panel-1"]["unverified"]["count"] == 0
    assert after["panel-2"]["agent"]["agreement"] == "agrees"  # the genuine verdict, not the forged one


def test_broker_outage_is_shown_as_the_board_losing_its_view() -> None:
    outcome = run_drill("broker_outage", out=lambda line: None)
    assert [fleet["broker"]["connected"] for fleet in outcome.shown] == [True, False, False, True]
    back = {r["node"]: r for r in outcome.shown[-1]["nodes"]}
    assert all(r["online"] and r["unverified"]["count"] == 0 for r in back.values())


def test_edge_sim_drill_command_prints_the_timeline() -> None:
    result = subprocess.run([sys.executable, "-m", "simulators.cli", "drill", "security_backlog"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "== drill: Security backlog past SLA with a reboot pending ==" in result.stdout
    assert "past their SLA" in result.stdout and "✔" in result.stdout and "PASSED" in result.stdout
    listing = subprocess.run([sys.executable, "-m", "simulators.cli", "drill", "--list"],
                             capture_output=True, text=True, timeout=60)
    assert "critical_plc_offline" in listing.stdout
