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
             "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / f"board{len(processes)}"), *extra],
            stdout=subprocess.PIPE, stderr=log, text=True)
        processes.append(process)
        line = process.stdout.readline()  # "board: http://127.0.0.1:PORT/ (...)" once it serves
        assert line.startswith("board: http://"), (line, (tmp_path / f"board{len(processes) - 1}.log").read_text())
        return line.split()[1].rstrip("/")

    start.processes = processes
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
        row = until(lambda: (r := fleet_rows(base)["panel-1"])["unverified"]["count"] == 2
                    and r["security"] == "at_risk" and r)  # counted, then judged
        assert row["unverified"]["by_reason"] == {"unknown_key": 1, "bad_signature": 1}
        assert row["security"] == "at_risk" and row["operations"] == "ready"

        detail = get(f"{base}/api/nodes/panel-2")
        assert detail["devices"][0]["name"] == "plc-line2"
        assert detail["devices"][0]["status"]["state"] == "offline"
        assert detail["host"]["disks"][0]["mount"] == "/"
        with pytest.raises(urllib.error.HTTPError):
            get(f"{base}/api/nodes/nobody")
        page = urllib.request.urlopen(f"{base}/", timeout=5).read().decode()
        script = urllib.request.urlopen(f"{base}/board.js", timeout=5).read().decode()
        assert "Edge readiness" in page and '<script src="/board.js"' in page and "/api/events" in script
    finally:
        wire.close()


def test_a_late_board_learns_retained_state_and_a_killed_board_comes_back_whole(broker, tmp_path: Path,
                                                                                start_board) -> None:
    trust, nodes = make_nodes(tmp_path, ["panel-1", "panel-2", "panel-3"])
    wire = Wire("127.0.0.1", broker.port)
    try:
        assert wire.connected.wait(15)
        infos = [info for node in nodes.values() for info in wire.send([node.status("online"), *node.cycle()])]
        for info in infos:
            info.wait_for_publish(15)
        # The board starts after everything was published: only retained messages can reach it,
        # and Mosquitto never gives retained messages to a shared subscription.
        state_dir = tmp_path / "kept"
        base = start_board(broker.url, trust, "--state-dir", str(state_dir), "--tick", "0.5")
        rows = until(lambda: (r := fleet_rows(base)) and len(r) == 3 and all(x["agent"] for x in r.values()) and r)
        for row in rows.values():
            assert row["online"] and row["verified"] and row["agent"]["verdict"]["level"] == "ready"
            assert row["security"] == "ready"  # patches and posture are retained too
        nodes["panel-2"].devices["plc-line2"].online = False
        for node in nodes.values():
            wire.send(node.cycle())
        before = until(lambda: (f := get(f"{base}/api/fleet"))["messages"]["verified"] == 3 * 5 + 3 * 4
                       and len({n["node"]: n for n in f["nodes"]}["panel-2"]["timeline"]) == 2 and f)
        board = start_board.processes[-1]
        board.kill()  # SIGKILL: nothing but the store survives
        board.wait(10)
        again = start_board(broker.url, trust, "--state-dir", str(state_dir), "--tick", "0.5")
        # The retained copies arrive again at once: duplicates, not news.
        after = until(lambda: (f := get(f"{again}/api/fleet"))["broker"]["connected"]
                      and f["messages"]["duplicates"] >= before["messages"]["duplicates"] + 12 and f)
        time.sleep(1.0)  # nothing more may be counted
        after = get(f"{again}/api/fleet")
        assert {k: v for k, v in after["messages"].items() if k != "duplicates"} == \
            {k: v for k, v in before["messages"].items() if k != "duplicates"}
        shown = {n["node"]: n for n in after["nodes"]}
        for node in before["nodes"]:
            assert shown[node["node"]]["timeline"] == node["timeline"]
            assert shown[node["node"]]["level"] == node["level"] and shown[node["node"]]["loss"]["messages"] == \
                node["loss"]["messages"]
    finally:
        wire.close()
