"""`edge-agent board` against a real Mosquitto, fed by simulated nodes publishing signed messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from waiting import wait_until

from agent.core.reading import Reading
from agent.readiness.policy import Asset, Policy
from agent.trust import keys
from simulators.signed_node import SimNode, Wire

pytestmark = pytest.mark.integration

POLICY = Policy(node=Asset("critical", "Packaging line 2", 1800.0),
                devices={"plc-line2": Asset("critical", "Line 2 filling", 900.0)})


def make_nodes(tmp_path: Path, names: list[str]) -> tuple[Path, dict[str, SimNode]]:
    trust = tmp_path / "trust"
    trust.mkdir(exist_ok=True)
    nodes = {}
    for name in names:
        private, _ = keys.generate(tmp_path / "keys" / f"{name}.key")
        shutil.copy(tmp_path / "keys" / f"{name}.key.pub", trust / f"{name}.pub")
        nodes[name] = SimNode(name, private, policy=POLICY, area=f"hall-{name[-1]}")
    return trust, nodes


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def until(check: Callable[[], object], timeout: float = 30.0) -> object:
    return wait_until(check, "the board's answer", timeout, interval=0.2, tolerate=(OSError,))


@pytest.fixture
def start_board(tmp_path: Path) -> Iterator[Callable[..., str]]:
    processes: list[subprocess.Popen] = []

    def start(broker_url: str, trust: Path, *extra: str) -> str:
        log = open(tmp_path / f"board{len(processes)}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "board", "--broker", broker_url, "--trust", str(trust),
             "--listen", "127.0.0.1:0", *extra], stdout=subprocess.PIPE, stderr=log, text=True)
        processes.append(process)
        line = process.stdout.readline()  # "board: http://127.0.0.1:PORT/ (...)" once it serves
        assert line.startswith("board: http://"), (line, (tmp_path / f"board{len(processes) - 1}.log").read_text())
        return line.split()[1].rstrip("/")

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def fleet_rows(base: str) -> dict[str, dict]:
    return {row["node"]: row for row in get(f"{base}/api/fleet")["nodes"]}


def test_board_shows_verified_nodes_forgeries_and_drill_down(broker, tmp_path: Path, start_board) -> None:
    trust, nodes = make_nodes(tmp_path, ["panel-1", "panel-2"])
    base = start_board(broker.url, trust)
    wire = Wire("127.0.0.1", broker.port)
    try:
        assert wire.connected.wait(15)
        until(lambda: get(f"{base}/api/fleet")["broker"]["connected"])  # connected = subscriptions granted
        nodes["panel-2"].devices["plc-line2"].online = False
        for node in nodes.values():
            wire.send([node.status("online"), *node.cycle()])
        rows = until(lambda: (r := fleet_rows(base)) and len(r) == 2
                     and all(x["agent"] and x["agent"]["agreement"] == "agrees" for x in r.values()) and r)
        assert rows["panel-1"]["level"] == "ready" and rows["panel-1"]["online"]
        assert rows["panel-2"]["operations"] == "at_risk"  # critical PLC offline, inside its tolerance
        assert rows["panel-2"]["area"] == "hall-2"

        attacker = SimNode("panel-1", Ed25519PrivateKey.generate())
        topic, payload, _ = nodes["panel-1"].sent[-1]
        wire.send([attacker.seal(Reading("host", {"memory": {"percent": 1}})),
                   (topic, payload.replace(b'"level":"ready"', b'"level":"down"', 1), False)])
        row = until(lambda: (r := fleet_rows(base)["panel-1"])["unverified"]["count"] == 2 and r)
        assert row["unverified"]["by_reason"] == {"unknown_key": 1, "bad_signature": 1}
        assert row["security"] == "at_risk" and row["operations"] == "ready"

        detail = get(f"{base}/api/nodes/panel-2")
        assert detail["devices"][0]["name"] == "plc-line2"
        assert detail["devices"][0]["status"]["state"] == "offline"
        assert detail["host"]["disks"][0]["mount"] == "/"
        with pytest.raises(urllib.error.HTTPError):
            get(f"{base}/api/nodes/nobody")
        page = urllib.request.urlopen(f"{base}/", timeout=5).read().decode()
        assert "Edge readiness" in page and "/api/fleet" in page
    finally:
        wire.close()


def test_a_late_board_learns_retained_state_and_two_boards_share_the_fleet(broker, tmp_path: Path,
                                                                           start_board) -> None:
    trust, nodes = make_nodes(tmp_path, ["panel-1", "panel-2", "panel-3"])
    wire = Wire("127.0.0.1", broker.port)
    try:
        assert wire.connected.wait(15)
        infos = [info for node in nodes.values() for info in wire.send([node.status("online"), *node.cycle()])]
        for info in infos:
            info.wait_for_publish(15)
        # Both boards start after everything was published: only retained messages can reach them,
        # and Mosquitto never gives retained messages to a shared subscription.
        boards = [start_board(broker.url, trust, "--group", "fleet") for _ in range(2)]
        for base in boards:
            rows = until(lambda b=base: (r := fleet_rows(b)) and len(r) == 3
                         and all(x["agent"] for x in r.values()) and r)
            for row in rows.values():
                assert row["online"] and row["verified"]
                assert row["agent"]["verdict"]["level"] == "ready"
                assert row["security"] == "ready"  # patches and posture are retained too
        # New live messages are split between the two boards of one group.
        before = [get(f"{b}/api/fleet")["messages"]["verified"] for b in boards]
        for _ in range(5):
            for node in nodes.values():
                wire.send([node.seal(Reading("host", node.host))])
        until(lambda: sum(get(f"{b}/api/fleet")["messages"]["verified"] for b in boards) - sum(before) >= 15)
        time.sleep(0.5)  # nothing more may arrive: each live message goes to one board only
        gained = [get(f"{b}/api/fleet")["messages"]["verified"] - n for b, n in zip(boards, before)]
        assert sum(gained) == 15 and all(0 < g < 15 for g in gained), gained
    finally:
        wire.close()
