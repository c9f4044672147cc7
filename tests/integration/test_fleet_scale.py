"""Scale-out on one PostgreSQL store: two `edge-agent ingest` processes on one shared
subscription store every message exactly once and reject a replay whichever of them receives it;
two `edge-agent board --no-ingest` processes show the same, whole fleet."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from waiting import wait_until

from agent.core.reading import Reading
from agent.fleet.store import open_store
from agent.readiness.policy import Asset, Policy
from agent.trust import keys
from simulators.signed_node import SimNode, Wire

pytestmark = pytest.mark.integration

POLICY = Policy(devices={"plc-1": Asset("critical", "Line 1", 900.0)})
NAMES = [f"panel-{i}" for i in range(6)]


def count(url: str, sql: str) -> int:
    db = open_store(url)
    try:
        with db.transaction(write=False) as tx:
            return int(tx.rows(sql)[0][0])
    finally:
        db.close()


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def processes(tmp_path: Path):
    started: list[subprocess.Popen] = []

    def start(*argv: str) -> str:
        log = open(tmp_path / f"process{len(started)}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "agent.cli", *argv], stdout=subprocess.PIPE, stderr=log,
                                   text=True)
        started.append(process)
        return process.stdout.readline()

    yield start
    for process in started:
        process.terminate()
        process.wait(15)


def test_two_ingest_processes_store_each_message_once_and_two_webs_show_the_same_fleet(
        broker, postgres_url: str, tmp_path: Path, processes) -> None:
    trust_dir = tmp_path / "trust"
    trust_dir.mkdir()
    nodes = {}
    for name in NAMES:
        key, _ = keys.generate(tmp_path / "keys" / f"{name}.key")
        shutil.copy(tmp_path / "keys" / f"{name}.key.pub", trust_dir / f"{name}.pub")
        nodes[name] = SimNode(name, key, policy=POLICY)
    url = postgres_url
    open_store(url).close()
    for _ in range(2):
        line = processes("ingest", "--broker", broker.url, "--trust", str(trust_dir), "--db", url,
                         "--group", "fleet", "--tick", "1")
        assert line.startswith("ingest: "), line
    wait_until(lambda: count(url, "SELECT COUNT(*) FROM ingest_instances WHERE connected = 1") == 2,
               "both ingest processes subscribed", timeout=30)
    webs = [processes("board", "--no-ingest", "--db", url, "--listen", "127.0.0.1:0").split()[1]
            for _ in range(2)]
    wire = Wire("127.0.0.1", broker.port)
    try:
        assert wire.connected.wait(15)
        sent = [m for node in nodes.values() for m in [node.status("online"), *node.cycle(), *node.cycle()]]
        for info in wire.send(sent) + wire.send(sent):  # every message twice: QoS 1 redeliveries
            info.wait_for_publish(15)
        wait_until(lambda: count(url, "SELECT COUNT(*) FROM messages") == len(sent),
                   "every message stored", timeout=60)
        # A different message under a number already stored, six times, each time other content:
        # the shared subscription hands them to both processes in turn; every one is a replay.
        victim = nodes["panel-3"]
        for uptime in range(6):
            victim.seq -= 1  # the number of its last message again (sealing moves it on)
            wire.send([victim.seal(Reading("host", {**victim.host, "uptime_s": uptime}))])
        wait_until(lambda: count(url, "SELECT COUNT(*) FROM rejections WHERE reason = 'replay'") == 6,
                   "six replays rejected", timeout=30)
        assert count(url, "SELECT COUNT(*) FROM messages") == len(sent)  # exactly once, replays not stored
        assert count(url, "SELECT COALESCE(SUM(duplicates), 0) FROM nodes") >= len(sent)

        def same_fleet() -> list[dict] | None:
            shown = [get(f"{web}api/fleet") for web in webs]
            if any(len(f["nodes"]) != len(NAMES) or f["rejected"]["unknown_node_count"] for f in shown):
                return None
            rows = [f["nodes"] for f in shown]
            if rows[0] != rows[1] or {r["node"]: r for r in rows[0]}["panel-3"]["unverified"]["count"] != 6:
                return None
            # Each verdict checked against its inputs, whichever process stored which.
            return shown if all(r["agent"]["agreement"] == "agrees" for r in rows[0]) else None

        shown = wait_until(same_fleet, "both web processes showing the same whole fleet", timeout=60)
        assert all(f["broker"]["connected"] and len(f["broker"]["ingest"]) == 2 for f in shown)
        assert shown[0]["messages"] == shown[1]["messages"]
        assert shown[0]["messages"]["verified"] == len(sent) and shown[0]["messages"]["gaps"] == 0
        rows = {r["node"]: r for r in shown[0]["nodes"]}
        assert rows["panel-3"]["unverified"]["by_reason"] == {"replay": 6}
    finally:
        wire.close()
