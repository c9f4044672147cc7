"""The weekly review of a drill: `edge-sim drill weekly_review --db FILE` plays three plant days
(real PLC simulators, Mosquitto, signed nodes, the board) into a fleet store; `edge-agent report`
writes the review from it, and headless Chromium opens the file with JavaScript switched off:
everything is there without script. The screenshot goes to docs/report-screenshot.png with
EDGE_UPDATE_SCREENSHOT=1; the asset register shows the simulators' FC 43 identities."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest
from browser import Browser

from agent.cli import main
from simulators.drill import run_drill

pytestmark = pytest.mark.integration

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"


@pytest.fixture(scope="module")
def drilled(tmp_path_factory) -> str:
    store = str(tmp_path_factory.mktemp("drill") / "fleet.sqlite")
    lines: list[str] = []
    outcome = run_drill("weekly_review", out=lines.append, db=store)
    assert outcome.passed, "\n".join(lines)
    return store


def test_the_review_of_a_drill_reads_in_a_browser_without_script(drilled, tmp_path: Path, capsys) -> None:
    page = tmp_path / "review.html"
    assert main(["report", "--db", drilled, "--since", "7d", "-o", str(page)]) == 0
    browser = Browser(tmp_path / "chromium", width=1200, height=2200)
    try:
        browser.call("Emulation.setScriptExecutionDisabled", session=True, value=True)
        browser.open(page.as_uri(), "document.readyState === 'complete'")
        text = browser.evaluate("document.body.innerText")
        decisions = browser.evaluate("document.querySelectorAll('section.decisions li').length")
        charts = browser.evaluate("[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().width)")
        bands = browser.evaluate("document.querySelectorAll('svg.chart rect.down, svg.chart rect.at_risk').length")
        shot = browser.screenshot()
    finally:
        browser.close()
    assert decisions >= 4
    assert "panel-2: plc-line2 (Line 2 filling) was down" in text and "Find the sender on the plant network" in text
    assert "panel-3: 1 security update past the SLA (openssl); no maintenance window is agreed" in text
    assert "hardening check firewall started failing" in text
    assert "Sun" in text and "could also install linux-image-amd64; reboot" in text  # panel-1's Sunday window
    assert len(charts) == 3 and all(width > 300 for width in charts)  # drawn, not empty boxes
    assert bands > 0  # the critical PLC's hour down and the forgery's hour at risk are in the bands
    assert shot.startswith(b"\x89PNG") and len(shot) > 50_000
    (tmp_path / "report.png").write_bytes(shot)
    if os.environ.get("EDGE_UPDATE_SCREENSHOT") == "1":
        shutil.copy(tmp_path / "report.png", DOCS_SCREENSHOT)


def test_the_asset_register_of_a_drill_names_each_plcs_identity(drilled, capsys) -> None:
    assert main(["assets", "--db", drilled]) == 0
    rows = {(r["node"], r["device"]): r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    plc = rows[("panel-2", "plc-line2")]
    assert (plc["vendor"], plc["product_code"], plc["revision"]) == ("Simulated Controls", "PKG-LINE-3", "2.4.1")
    assert plc["address"].startswith("tcp:127.0.0.1:") and plc["address"].endswith(" unit 1")
    assert rows[("panel-1", "meter-1")]["vendor"] == "Simulated Metering"
    assert rows[("panel-3", "plc-line3")]["criticality"] == "important"
    assert {r["kind"] for r in rows.values()} == {"node", "device"} and len(rows) == 7
