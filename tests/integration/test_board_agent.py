"""The real agent publishes its own retained verdict; the board recomputes it from the raw
messages and agrees, through a real PLC outage, and shows the node offline when it stops."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import wait_until

from agent.fleet.ingest import IngestSettings
from agent.trust import keys
from agent.web.board import Board
from simulators.faults import Fault

pytestmark = pytest.mark.integration

NODE = "panel-ready"
HOST_CODES = {"clock_unsynced", "failed_units", "disk_full", "memory_high", "temperature_high"}  # this machine's own


def write_config(tmp_path: Path, broker_url: str, plc_endpoint: str, key_path: Path) -> Path:
    host, _, port = plc_endpoint.rpartition(":")
    path = tmp_path / "agent.toml"
    path.write_text(f"""
state_dir = "{tmp_path / 'state'}"
[node]
id = "{NODE}"
site = "test-plant"
area = "line-2"
[mqtt]
url = "{broker_url}"
[signing]
key_file = "{key_path}"
[collectors.host]
interval = "1s"
[collectors.patches]
enabled = false
[collectors.posture]
enabled = false
[readiness]
criticality = "critical"
process = "Packaging line 2"
interval = "1s"
[readiness.host]
disk_warn_percent = 100
disk_critical_percent = 100
memory_warn_percent = 100
memory_critical_percent = 100
temperature_warn_c = 1000
temperature_critical_c = 1000
[[modbus.devices]]
name = "plc-line2"
host = "{host}"
port = {port}
interval = "1s"
timeout = "0.5s"
retries = 0
points = [{{ name = "motor_speed", table = "holding", address = 0, type = "float32", unit = "rpm" }}]
[modbus.devices.readiness]
criticality = "critical"
process = "Line 2 filling"
max_downtime = "15m"
""")
    return path


def wait_for(board: Board, check, what: str, timeout: float = 60.0) -> dict:
    def row() -> dict | None:
        found = next((r for r in board.fleet()["nodes"] if r["node"] == NODE), None)
        return found if found is not None and check(found) else None

    return wait_until(row, f"the board to show {what}", timeout, interval=0.2)


def test_agent_verdict_is_published_recomputed_and_agreed(broker, make_simulator, node_key, tmp_path: Path) -> None:
    plc = make_simulator({1: "packaging_line"})
    key_path, _, _ = node_key
    trust_dir = tmp_path / "trust"
    trust_dir.mkdir()
    shutil.copy(f"{key_path}.pub", trust_dir / f"{NODE}.pub")
    config = write_config(tmp_path, broker.url, plc.endpoint, key_path)
    settings = IngestSettings(silent_after_ms=30_000, tick_s=1.0)
    with Board(broker.url, keys.TrustStore.load(trust_dir), listen=("127.0.0.1", 0), settings=settings) as board:
        log = (tmp_path / "agent.log").open("wb")
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(config)],
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            def agreed_with_plc_online(r: dict) -> bool:
                detail = board.node(NODE) or {}
                return bool(r["agent"] and r["agent"]["agreement"] == "agrees"
                            and [d["status"]["state"] for d in detail.get("devices", [])] == ["online"]
                            and not any(x["code"].startswith("device_") for x in r["reasons"]))

            row = wait_for(board, agreed_with_plc_online, "the agent's verdict, agreed, with the PLC online")
            assert row["online"] and row["verified"] and row["unverified"]["count"] == 0
            assert row["criticality"] == "critical" and row["area"] == "line-2"
            # Honest: with the patch collector off, security cannot be called ready.
            assert {r["code"] for r in row["reasons"]} - HOST_CODES == {"patches_no_data"}

            plc.faults.add(Fault("drop"))
            row = wait_for(board, lambda r: r["operations"] == "at_risk" and r["agent"]["agreement"] == "agrees"
                           and r["agent"]["verdict"]["operations"] == "at_risk", "the PLC outage, agreed")
            offline = [r for r in row["reasons"] if r["code"] == "device_offline"]
            assert offline and "plc-line2 offline" in offline[0]["text"] and "of 15 min tolerated" in offline[0]["text"]
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        row = wait_for(board, lambda r: not r["online"], "the node offline after its clean stop")
        assert any(r["code"] == "node_offline" for r in row["reasons"])
