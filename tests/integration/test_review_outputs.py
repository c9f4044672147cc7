"""The review's outputs over a store holding the scripted hour (tests/review_scenario.py) that
ended a minute ago: `edge-agent report` and `edge-agent assets` (in-process, as the command
line runs them), the board's /report, /api/report, /assets, /assets.csv, /api/assets and
/metrics, and their faults (no store, a bad window)."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from review_scenario import MIN, play

from agent.cli import main
from agent.web.board import Board

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, int]:
    url = str(tmp_path_factory.mktemp("review") / "fleet.sqlite")
    fleet, t0 = play(url, start=time.time() - 61 * 60)
    fleet.close()
    return url, t0


@pytest.fixture(scope="module")
def served(store):
    board = Board(None, None, db=store[0], listen=("127.0.0.1", 0)).start()
    yield board
    board.stop()


def get(board: Board, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(board.url.rstrip("/") + path, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read().decode()


def no_inline_script_or_style(page: str) -> None:
    assert "<script" not in page and not re.search(r"\sstyle=", page) and " on" + "click=" not in page


def test_report_html_is_one_document_with_both_lenses_svg_charts_and_decisions(store, tmp_path: Path, capsys) -> None:
    out = tmp_path / "review.html"
    assert main(["report", "--db", store[0], "--since", "7d", "-o", str(out)]) == 0
    page = out.read_text()
    no_inline_script_or_style(page)
    assert "<style>" in page and 'href="/report.css"' not in page  # standalone: reads the same mailed
    assert page.count("<svg") == 3 and "Security (CISO)" in page and "Operations (COO)" in page
    assert page.index("Security (CISO)") < page.index("Operations (COO)") < page.index("Per node")
    assert "Decisions needed" in page and "plc-line2 (Line 2 filling) was down 21 min against 15 min tolerated" in page
    assert "What was agreed" in page and re.search(r"<td>5\d\.\d %</td>", page)  # availability over ~1 h
    assert re.search(r"<b>Next window:</b> Sun \d\d \w\w\w 02:00 for 3 h", page)  # panel-1: Europe/Berlin
    assert "<b>Next window:</b> none agreed" in page  # panel-2 has none
    assert capsys.readouterr().out == ""


def test_report_markdown_and_json(store, capsys) -> None:
    assert main(["report", "--db", store[0], "--since", "2h", "--format", "md"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Edge readiness review") and "## Decisions needed" in text
    assert re.search(r"\| plc-line2 \| critical \| 5\d\.\d % \| 2 \| 21 min \| 15 min \|", text)
    assert main(["report", "--db", store[0], "--since", "2h", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (p1,) = [n for n in doc["nodes"] if n["node"] == "panel-1"]
    assert p1["devices"][0]["downtime_ms"] == 27 * MIN and doc["operations"]["breaches"] == 1


def test_assets_csv_and_json(store, capsys) -> None:
    assert main(["assets", "--db", store[0]]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["kind"], r["node"], r["device"]) for r in rows] == [
        ("node", "panel-1", ""), ("device", "panel-1", "plc-line2"), ("node", "panel-2", ""),
        ("device", "panel-2", "plc-line2")]
    device = rows[1]
    assert (device["criticality"], device["process"], device["max_downtime_s"]) == ("critical", "Line 2 filling", "900.0")
    assert (device["vendor"], device["product_code"], device["revision"]) == ("Simulated Controls", "SIM-PLC", "1.0")
    assert device["address"] == "sim:plc-line2 unit 1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", device["first_seen_utc"])
    assert main(["assets", "--db", store[0], "--format", "json"]) == 0
    assets = json.loads(capsys.readouterr().out)["assets"]
    assert assets[1]["first_seen_ms"] == store[1] and assets[1]["state"] == "online"


def test_a_missing_store_or_a_bad_window_is_one_clear_line_and_exit_2(tmp_path: Path, capsys) -> None:
    for command in (["report"], ["assets"]):
        assert main([*command, "--db", str(tmp_path / "none.sqlite")]) == 2
        err = capsys.readouterr().err
        assert "none.sqlite: no fleet store here" in err and "Traceback" not in err
        assert not (tmp_path / "none.sqlite").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--since", "a week"])
    assert exit_.value.code == 2 and "is not a duration" in capsys.readouterr().err
    assert main(["report", "--db", str(tmp_path), "-o", str(tmp_path / "no" / "dir.html")]) == 2


def test_the_board_serves_the_same_review_and_register(served) -> None:
    status, kind, page = get(served, "/report?since=2h")
    assert status == 200 and kind.startswith("text/html")
    no_inline_script_or_style(page)
    assert 'href="/report.css"' in page and "<style>" not in page and "Decisions needed" in page
    assert get(served, "/report.css")[0] == 200
    status, kind, text = get(served, "/report?since=2h&format=md")
    assert status == 200 and kind.startswith("text/markdown") and "## Decisions needed" in text
    status, _, body = get(served, "/api/report?since=2h")
    assert status == 200 and json.loads(body)["operations"]["breaches"] == 1
    status, _, body = get(served, "/api/report?since=forever")
    assert status == 422 and json.loads(body)["detail"][0]["loc"] == ["query", "since"]
    assert get(served, "/report?format=pdf")[0] == 422
    status, _, body = get(served, "/api/report?since=99999d")  # at most a year
    assert status == 200 and json.loads(body)["now_ms"] - json.loads(body)["since_ms"] == 366 * 86_400_000
    status, _, page = get(served, "/assets")
    no_inline_script_or_style(page)
    assert status == 200 and 'data-asset="panel-1/plc-line2"' in page and "Simulated Controls" in page
    status, kind, text = get(served, "/assets.csv")
    assert status == 200 and kind.startswith("text/csv") and text.startswith("kind,node,device,vendor")
    assert len(json.loads(get(served, "/api/assets")[2])["assets"]) == 4
    status, _, page = get(served, "/")
    assert 'href="/report"' in page and 'href="/assets"' in page  # the board links to both


def test_metrics_in_prometheus_text_format(served) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    status, kind, text = get(served, "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("edge_fleet_nodes", (("lens", "level"), ("level", "at_risk")))] == 1
    assert samples[("edge_fleet_nodes", (("lens", "operations"), ("level", "ready")))] == 2
    assert samples[("edge_fleet_node_level", (("lens", "security"), ("node", "panel-1")))] == 2
    assert samples[("edge_fleet_security_updates_pending", (("node", "panel-1"),))] == 1
    assert samples[("edge_fleet_security_updates_past_sla", (("node", "panel-1"),))] == 0
    assert samples[("edge_fleet_devices_offline", ())] == 0
    assert samples[("edge_fleet_sequence_gaps", (("node", "panel-2"),))] == 0
    assert samples[("edge_fleet_broker_connected", ())] == 0  # web only: no ingest here
    assert ("edge_fleet_node_up", (("node", "panel-1"),)) in samples
