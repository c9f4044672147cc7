"""The board's live page end to end in headless Chromium (Debian's `chromium` package).

Signed simulated nodes publish to a real Mosquitto; the board verifies, stores and serves;
Chromium (driven over its DevTools pipe, tests/browser.py) loads the page, runs its JavaScript
(which follows the board's Server-Sent Events) and we read the rendered DOM, watch a change
arrive on the open page, and take a screenshot. Nothing is installed or fetched from the internet.
Set EDGE_UPDATE_SCREENSHOT=1 to copy the screenshot to docs/board-screenshot.png.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from browser import Browser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from waiting import wait_until

from agent.core.reading import Reading
from agent.readiness.policy import Asset, Policy
from agent.fleet.ingest import IngestSettings
from agent.trust import keys
from agent.web.board import Board
from simulators.signed_node import SimNode, Wire

pytestmark = pytest.mark.integration

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "board-screenshot.png"


def rows(dom: str) -> dict[str, str]:
    """node -> the HTML of its row."""
    found = re.findall(r'(<tr class="node[^"]*" data-node="([^"]+)".*?</tr>)', dom, re.S)
    return {node: html for html, node in found}


@pytest.fixture
def live_board(broker, tmp_path: Path):
    policy = Policy(node=Asset("critical", "Packaging line 2", 1800.0),
                    devices={"plc-line2": Asset("critical", "Line 2 filling", 900.0),
                             "meter-2": Asset("supporting", "Energy metering", 3600.0)})
    trust = keys.TrustStore()
    nodes = {}
    for name in ("panel-1", "panel-2", "panel-3"):
        key = Ed25519PrivateKey.generate()
        trust.add(key.public_key(), frozenset({name}))
        nodes[name] = SimNode(name, key, policy=policy, area=f"line-{name[-1]}")
    board = Board(broker.url, trust, listen=("127.0.0.1", 0), settings=IngestSettings(tick_s=0.5)).start()
    wire = Wire("127.0.0.1", broker.port)
    try:
        wait_until(lambda: board.ingest.subscribed.is_set() and wire.connected.is_set(), "board and nodes to connect")
        nodes["panel-2"].devices["plc-line2"].online = False
        nodes["panel-3"].patches = {**nodes["panel-3"].patches, "reboot_required": True,
                                    "reboot": {"flag_packages": ["linux-image-amd64"]}}
        nodes["panel-3"].host = {**nodes["panel-3"].host, "failed_units": ["hmi.service"],
                                 "clock": {"synchronized": False, "offset_us": 0, "source": "adjtimex",
                                           "max_error_us": 16_000_000}}
        for node in nodes.values():
            wire.send([node.status("online"), *node.cycle()])
        impostor = SimNode("panel-2", Ed25519PrivateKey.generate(), policy=policy)
        wire.send([impostor.seal(Reading("readiness", {"verdict": {"level": "ready"}}))])
        def settled() -> bool:
            by_node = {r["node"]: r for r in board.fleet()["nodes"]}
            return len(by_node) == 3 and by_node["panel-2"]["unverified"]["count"] == 1 and all(
                r["agent"] and r["level"] for r in by_node.values()) and by_node["panel-2"]["security"] == "at_risk"

        wait_until(settled, "three nodes, their verdicts and the impostor's rejection", interval=0.1)
        yield board, wire, nodes
    finally:
        wire.close()
        board.stop()


@pytest.fixture
def browser(tmp_path: Path):
    chrome = Browser(tmp_path / "chromium-profile")
    yield chrome
    chrome.close()


ROWS_SHOWN = "document.body.dataset.loaded === '1' && document.querySelectorAll('tr.node').length === 3"


def test_live_page_shows_both_lenses_reasons_and_an_unmistakable_unverified_mark(live_board, browser) -> None:
    board, wire, nodes = live_board
    dom = browser.open(board.url, ROWS_SHOWN)
    shown = rows(dom)
    assert set(shown) == {"panel-1", "panel-2", "panel-3"}
    p1, p2, p3 = shown["panel-1"], shown["panel-2"], shown["panel-3"]
    assert 'data-level="ready"' in p1 and "✔ verified" in p1 and "UNVERIFIED" not in p1
    assert 'data-operations="at_risk"' in p2 and 'data-security="at_risk"' in p2
    assert "plc-line2 offline" in p2 and "of 15 min tolerated" in p2
    assert 'data-mark="unverified"' in p2 and "UNVERIFIED ×1" in p2
    assert 'data-security="degraded"' in p3 and "reboot required for linux-image-amd64" in p3
    assert 'data-agreement="agrees"' in p1
    # The devices without a click: how many, how many not reading, the worst one (what the COO asks first).
    assert "✔ 2 devices, all reading" in p1 and "1 of 2 devices not reading" in p2
    assert 'data-worst="plc-line2"' in p2 and 'data-level="at_risk"' in p2
    assert all('class="more"' in r and "details ›" in r for r in shown.values())  # the row says it opens
    # Words both leads read at a glance; raw evidence (unit names, adjtimex state) waits in the drill-down.
    assert "clock not synchronised with a time server" in p3 and "offset" not in p3 and "hmi.service" not in p3
    assert "1 system service failed" in p3 and "(s)" not in dom
    assert "Verdict history" in dom and "Last hours" not in dom
    assert dom.index('data-node="panel-2"') < dom.index('data-node="panel-1"')  # worst first
    assert 'class="timeline"' in p1
    # Live: a change reaches the open page over Server-Sent Events, no reload, no polling.
    browser.evaluate("window.marker = 1")
    nodes["panel-1"].devices["meter-2"].online = False
    ghost = SimNode("ghost-9", Ed25519PrivateKey.generate())
    wire.send([*nodes["panel-1"].cycle(), ghost.seal(Reading("host", {}))])
    wait_until(lambda: browser.evaluate("document.querySelector('tr[data-node=\"panel-1\"]').dataset.operations")
               == "degraded", "panel-1's meter outage on the open page", timeout=30)
    assert browser.evaluate("window.marker") == 1  # the same page: it was never reloaded
    wait_until(lambda: browser.evaluate("Boolean(document.querySelector('[data-rejected-node=\"ghost-9\"]'))"),
               "the forged name listed under rejected, not as a node", timeout=30)
    assert browser.evaluate("document.querySelectorAll('tr.node').length") == 3


def test_drill_down_and_screenshot(live_board, browser, tmp_path: Path) -> None:
    board, _, _ = live_board
    dom = browser.open(board.url + "#panel-2", "document.querySelector('[data-device=\"meter-2\"]')")
    assert 'data-device="plc-line2"' in dom and 'data-device="meter-2"' in dom
    assert "Rejected messages" in dom and "unknown_key" in dom
    plc = browser.evaluate("document.querySelector('[data-device=\"plc-line2\"]').textContent")
    assert "timeout" in plc and "[object Object]" not in dom  # last_error is {kind, message, ts_ms}: its message
    # Following a row's link opens that node's drill-down with the raw evidence.
    browser.evaluate("document.querySelector('tr[data-node=\"panel-3\"] a.more').click()")
    wait_until(lambda: "hmi.service" in (browser.evaluate("document.getElementById('detail').textContent") or ""),
               "panel-3's drill-down after following its link", timeout=30)
    detail = browser.evaluate("document.getElementById('detail').textContent")
    assert "source adjtimex, offset 0 ms, max error 16000 ms" in detail
    data = browser.screenshot()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 30_000  # a rendered page, not a blank one
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 900)
    (tmp_path / "board.png").write_bytes(data)
    if os.environ.get("EDGE_UPDATE_SCREENSHOT") == "1":
        shutil.copy(tmp_path / "board.png", DOCS_SCREENSHOT)
