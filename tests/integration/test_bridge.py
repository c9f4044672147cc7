"""A site bridged to a central broker, as shipped (config/mosquitto/site-bridge.conf, central.conf,
central.acl), with real Mosquittos, a real agent, `edge-agent verify` and the board at the centre:

- every message arrives centrally under the site's prefix and verifies (--bridge-prefix);
- the link cut (the central broker stopped, then started again on its port) loses nothing: the
  site keeps working, its broker queues, and the centre counts no sequence gap;
- a forged message injected at the site is refused centrally; a genuine one re-published under
  another site's prefix, or under a prefix nobody configured, too; the central ACL keeps a
  site's bridge under its own prefix;
- the central board's ingest subscribes under the bridge prefixes and files every message under
  its node and stream, the moved copies as rejections of that node.

TLS between the brokers, with certificates made here (certificates.Authority)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from certificates import Authority
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from delivery_harness import AgentProcess, Recorder, statuses
from paho.mqtt.enums import CallbackAPIVersion
from waiting import wait_until

from agent.fleet.ingest import IngestSettings
from agent.trust import envelope, keys
from agent.trust.bridge import Bridges
from agent.trust.canonical import canonical
from agent.web.board import Board
from simulators.localnet import free_port
from simulators.mosquitto import PrivateMosquitto
from simulators.signed_node import SimNode, Wire

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "mosquitto"
OUTAGE_S = 8.0  # the link is down this long at least, and until the site sealed OUTAGE_MESSAGES
OUTAGE_MESSAGES = 20
DEADLINE_S = 60.0
NODE = "n1"  # AgentProcess's node id
# Site c has a bridge certificate and an ACL block, but the central verifier was not told its prefix.
SITE_C = "\nuser site-c\ntopic write site-c/edge/#\ntopic write bridges/site-c/state\n"
BRIDGE_PREFIXES = ["--bridge-prefix", f"site-a/={NODE}", "--bridge-prefix", "site-b/=press-*"]


def central_config(directory: Path, port: int) -> Path:
    """The shipped central.conf and central.acl, with only paths and port changed (and site c added)."""
    text = (SHIPPED / "central.conf").read_text()
    assert "\nlistener 8883\n" in text
    text = text.replace("/etc/mosquitto/central/", f"{directory}/").replace("\nlistener 8883\n",
                                                                           f"\nlistener {port} 127.0.0.1\n")
    (directory / "central.acl").write_text((SHIPPED / "central.acl").read_text() + SITE_C)
    user = "user root\n" if os.geteuid() == 0 else ""  # see simulators.mosquitto.write_config
    config = directory / "mosquitto.conf"
    # What Debian's main mosquitto.conf adds (persistence_location), then the shipped file.
    config.write_text(f"{user}log_dest file {directory}/mosquitto.log\nlog_type all\n"
                      f"persistence_location {directory}/\n{text}")
    return config


def site_bridge(directory: Path, central_port: int) -> str:
    """The shipped site-bridge.conf pointed at the test's central broker and certificate files.
    The one setting changed beyond that: reconnect after 1-2 s instead of 5-60 s, to keep the test short."""
    text = (SHIPPED / "site-bridge.conf").read_text()
    for old, new in (("address central.example.net:8883", f"address 127.0.0.1:{central_port}"),
                     ("/etc/mosquitto/edge/", f"{directory}/"),
                     ("restart_timeout 5 60", "restart_timeout 1 2")):
        assert old in text, old
        text = text.replace(old, new)
    return text


@dataclass
class CentralVerifier:
    """`edge-agent verify` at the centre, with a persistent session; its JSON lines as they come."""

    process: subprocess.Popen
    lines: list[dict] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def valid_seqs(self, prefix: str = "site-a/") -> set[int]:
        return {line["seq"] for line in list(self.lines) if line["valid"] and line["topic"].startswith(prefix)}

    def refused(self) -> list[tuple[str, str]]:
        return [(line["topic"], line["reason"]) for line in list(self.lines) if not line["valid"]]


@dataclass
class Sites:
    central: PrivateMosquitto
    plant: PrivateMosquitto
    certs: Path
    key_path: Path
    verifier: CentralVerifier

    def central_client(self, who: str, protocol: int = mqtt.MQTTv311) -> mqtt.Client:
        """Connected with `who`'s certificate; `client.user_data_get()` maps each mid to its PUBACK reason."""
        acks: dict[int, object] = {}
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{who}", protocol=protocol, userdata=acks)
        client.tls_set(ca_certs=str(self.certs / "ca.crt"), certfile=str(self.certs / f"{who}.crt"),
                       keyfile=str(self.certs / f"{who}.key"))
        client.on_publish = lambda c, userdata, mid, reason, p: userdata.__setitem__(mid, reason)
        client.connect("127.0.0.1", self.central.port)
        client.loop_start()
        return client


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    root = tmp_path_factory.mktemp("sites")
    certs, central_dir = root / "certs", root / "central"
    certs.mkdir()
    central_dir.mkdir()
    ca = Authority.create("central test CA")
    ca.write(certs / "ca.crt")
    ca.write(central_dir / "ca.crt")
    ca.issue(central_dir, "server", server=True)
    for who in ("site-a", "site-b", "site-c", "central-verifier", "central-board"):
        ca.issue(certs, who)
    plant_dir = root / "plant"
    plant_dir.mkdir()
    (plant_dir / "central-ca.crt").write_bytes((certs / "ca.crt").read_bytes())
    for suffix in ("crt", "key"):
        (plant_dir / f"bridge-site-a.{suffix}").write_bytes((certs / f"site-a.{suffix}").read_bytes())
        (plant_dir / f"bridge-site-a.{suffix}").chmod(0o600)
    port = free_port()
    central = PrivateMosquitto(port, central_config(central_dir, port), central_dir / "mosquitto.log").start()
    plant = PrivateMosquitto.in_folder(plant_dir, site_bridge(plant_dir, port)).start()
    key_path = root / "keys" / "node.key"
    keys.generate(key_path)
    trust = root / "trust"
    trust.mkdir()
    (trust / f"{NODE}.pub").write_bytes(Path(f"{key_path}.pub").read_bytes())
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "verify", "--broker", f"mqtts://127.0.0.1:{port}", "--trust", str(trust),
         "--ca-file", str(certs / "ca.crt"), "--cert-file", str(certs / "central-verifier.crt"),
         "--key-file", str(certs / "central-verifier.key"), "--client-id", "central-verify", *BRIDGE_PREFIXES],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stderr is not None
    said = process.stderr.readline()
    assert said.startswith("verify: subscribed to edge/# +/edge/#"), said + process.stderr.read()
    verifier = CentralVerifier(process)
    threading.Thread(target=verifier.read, daemon=True).start()
    yield Sites(central, plant, certs, key_path, verifier)
    process.send_signal(signal.SIGINT)
    process.wait(10)
    for broker in (plant, central):
        broker.kill()


def wait_for(condition, what: str) -> None:
    wait_until(condition, what, DEADLINE_S, interval=0.1)


def test_through_the_bridge_every_message_verifies_and_an_outage_loses_none(sites: Sites, tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path, sites.plant.port, sites.key_path)
    plant_board = Recorder(sites.plant.port, Path(f"{sites.key_path}.pub"), client_id="plant-board")
    agent.start()
    try:
        wait_for(lambda: len(sites.verifier.valid_seqs()) >= 10, "messages verified at the centre")
        sites.central.stop()  # the link is down: the centre is unreachable
        cut = time.monotonic()
        at_plant = {g.seq for g in plant_board.got()}
        # The site works on: the agent delivers to its broker and the plant's own board sees it all.
        wait_for(lambda: len({g.seq for g in plant_board.got()} - at_plant) >= OUTAGE_MESSAGES,
                 "the site's own board receiving during the outage")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut)))
        during = {g.seq for g in plant_board.got()} - at_plant
        sites.central.start()
        assert agent.terminate() == 0  # goodbye, and the connection's Will, are the last numbers
        wait_for(lambda: statuses(plant_board.got(), "offline", "stopped"), "the goodbye at the site")
    finally:
        agent.kill()
        plant_board.close()
    # The bridge delivers in order: once the site's last message is at the centre, so is
    # everything before it that was not lost.
    last = plant_board.got()[-1].seq
    wait_for(lambda: last in sites.verifier.valid_seqs(), "the site's last message at the centre")
    central = sites.verifier.valid_seqs()
    gaps = set(range(min(central), max(central) + 1)) - central
    assert not gaps, f"{len(gaps)} sequence gaps at the centre after a {OUTAGE_S:g} s outage: {sorted(gaps)[:20]}"
    assert central == {g.seq for g in plant_board.got()} and during <= central
    assert sites.verifier.refused() == []
    assert all(line["topic"].startswith(f"site-a/edge/{NODE}/") for line in sites.verifier.lines)


def genuine(sites: Sites, seq: int) -> bytes:
    private = keys.load_private(sites.key_path)
    return envelope.seal(private, kid=keys.key_id(private.public_key()), node=NODE, topic=f"edge/{NODE}/host",
                         kind="host", session="9.0000beef", seq=seq, ts_ms=int(time.time() * 1000), body={"x": seq})


def test_forged_at_the_site_or_moved_to_another_sites_prefix_is_refused_at_the_centre(sites: Sites) -> None:
    seen = len(sites.verifier.lines)
    forged = canonical({**json.loads(genuine(sites, 10**9)), "body": {"x": "forged"}})
    stranger = Ed25519PrivateKey.generate()
    unknown = envelope.seal(stranger, kid=keys.key_id(stranger.public_key()), node=NODE, topic=f"edge/{NODE}/host",
                            kind="host", session="1.00000000", seq=10**9 + 1, ts_ms=int(time.time() * 1000), body={})
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder")
    intruder.connect("127.0.0.1", sites.plant.port)
    intruder.loop_start()
    site_b, site_c = sites.central_client("site-b", mqtt.MQTTv5), sites.central_client("site-c")
    try:
        for payload in (forged, unknown):
            intruder.publish(f"edge/{NODE}/host", payload, qos=1).wait_for_publish(DEADLINE_S)
        # site b's bridge (or whoever holds its certificate) re-publishes n1's genuine messages
        moved = site_b.publish(f"site-b/edge/{NODE}/host", genuine(sites, 10**9 + 2), qos=1)
        disguised = site_b.publish(f"site-a/edge/{NODE}/host", genuine(sites, 10**9 + 3), qos=1)
        site_c.publish(f"site-c/edge/{NODE}/host", genuine(sites, 10**9 + 4), qos=1).wait_for_publish(DEADLINE_S)
        moved.wait_for_publish(DEADLINE_S)
        wait_for(lambda: disguised.mid in site_b.user_data_get(), "the central broker's answer to site b")
        wait_for(lambda: len(sites.verifier.lines) >= seen + 4, "four verdicts at the centre")
        time.sleep(0.5)  # anything else would arrive in the meantime
    finally:
        for client in (intruder, site_b, site_c):
            client.loop_stop()
            client.disconnect()
    assert sorted(sites.verifier.refused()[-4:]) == sorted([
        (f"site-a/edge/{NODE}/host", envelope.BAD_SIGNATURE),
        (f"site-a/edge/{NODE}/host", envelope.UNKNOWN_KEY),
        (f"site-b/edge/{NODE}/host", envelope.PREFIX_NOT_ALLOWED),
        (f"site-c/edge/{NODE}/host", envelope.UNKNOWN_PREFIX),
    ])
    # site b's bridge may not write under site a's prefix: refused (MQTT 5 says so), never delivered
    assert site_b.user_data_get()[disguised.mid].value >= 128
    assert len(sites.verifier.lines) == seen + 4


def test_the_link_state_is_retained_at_the_centre(sites: Sites) -> None:
    states: list[bytes] = []
    reader = sites.central_client("central-verifier")
    reader.on_message = lambda c, u, m: states.append(m.payload) if m.retain else None
    reader.subscribe("bridges/site-a/state", qos=1)
    try:
        wait_for(lambda: states, "the retained link state")
    finally:
        reader.loop_stop()
        reader.disconnect()
    assert states == [b"1"]


def test_the_central_board_files_bridged_messages_under_their_nodes(sites: Sites, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    trust = keys.TrustStore()
    trust.add(key.public_key(), frozenset({"n2"}))
    node = SimNode("n2", key)
    settings = IngestSettings(bridges=Bridges.parse([f"site-a/={NODE},n2", "site-b/=press-*"]), tick_s=1.0,
                              tls_files=tuple(str(sites.certs / f) for f in ("ca.crt", "central-board.crt",
                                                                             "central-board.key")))
    with Board(f"mqtts://127.0.0.1:{sites.central.port}", trust, db=str(tmp_path / "fleet.sqlite"),
               serve_http=False, settings=settings) as board:
        wait_for(board.ingest.subscribed.is_set, "the board's subscriptions granted by the central ACL")
        wire = Wire("127.0.0.1", sites.plant.port)
        try:
            wire.connected.wait(DEADLINE_S)
            messages = [node.status("online"), *node.cycle()]
            for info in wire.send(messages):
                info.wait_for_publish(DEADLINE_S)
        finally:
            wire.close()

        def rows() -> dict[str, dict]:
            return {r["node"]: r for r in board.fleet()["nodes"]}

        wait_for(lambda: rows().get("n2", {}).get("loss", {}).get("messages") == len(messages), "n2 on the board")
        topic, payload, _ = messages[1]
        site_b, site_c = sites.central_client("site-b"), sites.central_client("site-c")
        try:
            site_b.publish(f"site-b/{topic}", payload, qos=1).wait_for_publish(DEADLINE_S)
            site_c.publish(f"site-c/{topic}", payload, qos=1).wait_for_publish(DEADLINE_S)
            wait_for(lambda: rows()["n2"]["unverified"]["count"] == 2, "both moved copies on the board")
        finally:
            for client in (site_b, site_c):
                client.loop_stop()
                client.disconnect()
        final = rows()
    assert final["n2"]["verified"] and final["n2"]["loss"]["gaps"] == 0
    assert final["n2"]["unverified"]["by_reason"] == {"prefix_not_allowed": 1, "unknown_prefix": 1}
    assert set(final) == {"n2"}  # n1's retained messages are not trusted by this board: no node made of them
