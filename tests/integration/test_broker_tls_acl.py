"""The shipped broker config (config/mosquitto/) against a real Mosquitto: TLS with client
certificates, per-node ACLs keyed on the certificate identity, and the agent's TLS setup
refusing a broker it cannot verify. Certificates are made here, at test time."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from certificates import Authority
from paho.mqtt.enums import CallbackAPIVersion
from waiting import wait_until

from agent.delivery.config import MqttConfig, tls_context
from simulators.localnet import free_port, wait_for_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "mosquitto"
DEADLINE_S = 20.0


@dataclass
class Plant:
    port: int
    certs: Path
    ca_file: Path
    rogue_ca_file: Path
    log: Path

    def config(self, who: str | None, ca_file: Path | None = None) -> MqttConfig:
        """The agent's own MQTT settings for client certificate `who` (None: no certificate)."""
        tls = {"ca_file": ca_file or self.ca_file}
        if who is not None:
            tls |= {"cert_file": self.certs / f"{who}.crt", "key_file": self.certs / f"{who}.key"}
        return MqttConfig(url=f"mqtts://127.0.0.1:{self.port}", tls=tls)


def production_config(directory: Path, port: int) -> Path:
    """The shipped edge.conf with only its paths and port changed (and `user root`: see conftest)."""
    text = (SHIPPED / "edge.conf").read_text().replace("/etc/mosquitto/edge/", f"{directory}/")
    assert "\nlistener 8883\n" in text
    text = text.replace("\nlistener 8883\n", f"\nlistener {port} 127.0.0.1\n")
    shutil.copy(SHIPPED / "edge.acl", directory / "edge.acl")
    config = directory / "mosquitto.conf"
    config.write_text(f"user root\nlog_dest file {directory}/mosquitto.log\nlog_type all\n{text}")
    return config


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[Plant]:
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed: run `bash .ci/run` or `apt-get install -y mosquitto`")
    ca, rogue = Authority.create("edge test CA"), Authority.create("rogue CA")
    ca.write(tmp_path / "ca.crt")
    ca.issue(tmp_path, "server", server=True)
    for name in ("press-1", "press-2", "board"):
        ca.issue(tmp_path, name)
    rogue.issue(tmp_path, "press-1-forged")  # right name, wrong issuer
    port = free_port()
    process = subprocess.Popen(["mosquitto", "-c", str(production_config(tmp_path, port))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        pytest.fail(f"mosquitto did not start: {process.communicate()[1].decode()[-2000:]}")
    yield Plant(port, tmp_path, tmp_path / "ca.crt", rogue.write(tmp_path / "rogue-ca.crt"),
                tmp_path / "mosquitto.log")
    process.kill()
    process.wait(10)


class Client:
    """A paho client set up exactly as the agent does it (agent.delivery.config.tls_context)."""

    def __init__(self, config: MqttConfig, client_id: str, protocol: int = mqtt.MQTTv311) -> None:
        self.config = config
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        context = tls_context(config)
        assert context is not None
        self.client.tls_set_context(context)
        self.connack: object = None
        self.received: list[tuple[str, bytes]] = []
        self.acks: dict[int, object] = {}
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, reason, p: setattr(self, "connack", reason)
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_publish = lambda c, u, mid, reason, p: self.acks.__setitem__(mid, reason)

    def connect(self) -> str:
        """"connected", or why not: "error: <TLS error>", "dropped", "refused: <reason>"."""
        try:
            self.client.connect(self.config.host, self.config.port, keepalive=30)
        except (ssl.SSLError, OSError) as exc:
            return f"error: {exc}"
        self.client.loop_start()
        deadline = time.monotonic() + DEADLINE_S
        while self.connack is None and time.monotonic() < deadline:
            if self.client.socket() is None:  # the broker closed the connection
                return "dropped"
            time.sleep(0.02)
        if self.connack is None:
            return "no connack"
        return "connected" if not self.connack.is_failure else f"refused: {self.connack}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition, what: str) -> None:
    wait_until(condition, what, DEADLINE_S, interval=0.02)


@pytest.fixture
def observer(plant: Plant) -> Iterator[Client]:
    board = Client(plant.config("board"), "board")
    assert board.connect() == "connected"
    board.client.subscribe("edge/#", qos=1)
    assert board.subscribed.wait(DEADLINE_S)
    yield board
    board.close()


def test_node_publishes_only_under_its_own_subtree(plant: Plant, observer: Client) -> None:
    node = Client(plant.config("press-1"), "press-1")
    assert node.connect() == "connected"
    try:
        node.client.publish("edge/press-2/host", b"forged into the neighbour", qos=1).wait_for_publish(DEADLINE_S)
        node.client.publish("edge/press-1/host", b"own data", qos=1).wait_for_publish(DEADLINE_S)
        # Messages from one client arrive in order: once "own data" is here, the forged one
        # would have arrived before it.
        wait_for(lambda: ("edge/press-1/host", b"own data") in observer.received, "the node's own message")
        assert [topic for topic, _ in observer.received] == ["edge/press-1/host"]
    finally:
        node.close()


def test_choosing_a_neighbours_client_id_gains_nothing(plant: Plant, observer: Client) -> None:
    node = Client(plant.config("press-1"), client_id="press-2")
    assert node.connect() == "connected"
    try:
        node.client.publish("edge/press-2/host", b"forged", qos=1).wait_for_publish(DEADLINE_S)
        node.client.publish("edge/press-1/host", b"marker", qos=1).wait_for_publish(DEADLINE_S)
        wait_for(lambda: ("edge/press-1/host", b"marker") in observer.received, "the marker")
        assert all(topic != "edge/press-2/host" for topic, _ in observer.received)
    finally:
        node.close()


def test_mqtt5_puback_tells_the_node_it_was_refused(plant: Plant) -> None:
    node = Client(plant.config("press-1"), "press-1", protocol=mqtt.MQTTv5)
    assert node.connect() == "connected"
    try:
        denied = node.client.publish("edge/press-2/host", b"x", qos=1)
        allowed = node.client.publish("edge/press-1/host", b"y", qos=1)
        wait_for(lambda: denied.mid in node.acks and allowed.mid in node.acks, "both PUBACKs")
        assert node.acks[denied.mid].value >= 128  # 0x87 Not authorized
        assert not node.acks[allowed.mid].is_failure
    finally:
        node.close()


def test_a_consumer_cannot_publish(plant: Plant) -> None:
    board = Client(plant.config("board"), "board-writer", protocol=mqtt.MQTTv5)
    assert board.connect() == "connected"
    try:
        sent = board.client.publish("edge/press-1/host", b"fake", qos=1)
        wait_for(lambda: sent.mid in board.acks, "the PUBACK")
        assert board.acks[sent.mid].value >= 128
    finally:
        board.close()


@pytest.mark.parametrize(("who", "broker_says"), [
    (None, "peer did not return a certificate"),
    ("press-1-forged", "certificate verify failed"),
], ids=["no certificate", "certificate from another CA"])
def test_client_without_a_valid_certificate_is_refused(plant: Plant, who: str | None, broker_says: str) -> None:
    intruder = Client(plant.config(who), "intruder")
    outcome = intruder.connect()
    intruder.close()
    # With TLS 1.3 the client finishes its side of the handshake before the broker checks
    # the certificate, so the refusal shows as the broker closing the connection.
    assert outcome == "dropped" or outcome.startswith("error:"), outcome
    log = plant.log.read_text()
    assert broker_says in log and "as intruder" not in log


def test_agent_refuses_a_broker_certificate_from_another_ca(plant: Plant) -> None:
    node = Client(plant.config("press-1", ca_file=plant.rogue_ca_file), "press-1")
    outcome = node.connect()
    node.close()
    assert outcome.startswith("error:") and "CERTIFICATE_VERIFY_FAILED" in outcome, outcome
