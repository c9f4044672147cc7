"""The first slice end to end: simulator (real Modbus TCP) -> agent process -> real Mosquitto
-> verifying subscriber; and `edge-agent verify` rejecting tampered or moved messages."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.fleet.subscription import Subscription
from agent.trust.keys import TrustStore
from agent.trust.verify import Verifier
from simulators.localnet import free_port, wait_for_port

pytestmark = pytest.mark.integration

NODE = "panel-e2e"


def agent_config(tmp_path: Path, broker_url: str, plc_port: int, key_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f"""
state_dir = "{tmp_path / 'state'}"
[node]
id = "{NODE}"
site = "test-plant"
[mqtt]
url = "{broker_url}"
[signing]
key_file = "{key_path}"
[collectors.host]
interval = "1s"
[[modbus.devices]]
name = "line-plc"
host = "127.0.0.1"
port = {plc_port}
interval = "1s"
points = [
  {{ name = "u16_scaled", table = "holding", address = 0, type = "uint16", scale = 0.1, unit = "rpm" }},
  {{ name = "i16_scaled", table = "holding", address = 1, type = "int16", scale = 0.01, offset = 1.0, unit = "bar" }},
  {{ name = "i32_cdab", table = "holding", address = 4, type = "int32", byte_order = "CDAB" }},
]
""")
    return path


@pytest.fixture
def plc(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "simulators.cli", "--port", str(port), "--profile", "test_pattern"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    yield port
    process.kill()
    process.wait(10)


@pytest.fixture
def running_agent(tmp_path, broker, plc, node_key):
    key_path, _, _ = node_key
    config = agent_config(tmp_path, broker.url, plc, key_path)
    log = (tmp_path / "agent.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(config)],
                               stdout=log, stderr=subprocess.STDOUT)
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def trust_dir(tmp_path: Path, key_path: Path) -> Path:
    directory = tmp_path / "trust"
    directory.mkdir(exist_ok=True)
    # The trust store binds a key to the node ids its file is named after.
    (directory / f"{NODE}.pub").write_bytes(Path(f"{key_path}.pub").read_bytes())
    return directory


def first_messages(broker_url: str, trust: TrustStore, wanted: set[str], timeout: float = 30.0) -> dict:
    """The first valid message of each wanted stream (topic without prefix and node)."""
    found: dict[str, dict] = {}
    with Subscription(broker_url, Verifier(trust), topic_filter="edge/#") as subscription:
        for received in subscription.messages(time.monotonic() + timeout):
            assert received.verdict.valid, received.verdict
            stream = received.topic.split("/", 2)[2]
            found.setdefault(stream, received.verdict.fields)
            if wanted <= set(found):
                break
    assert wanted <= set(found), f"missing streams: {wanted - set(found)}"
    return found


def test_simulator_values_arrive_decoded_scaled_and_signed(tmp_path, broker, running_agent, node_key):
    key_path, _, kid = node_key
    trust = TrustStore.load(trust_dir(tmp_path, key_path))
    found = first_messages(broker.url, trust, {"status", "host", "modbus/line-plc"})

    plc = found["modbus/line-plc"]
    assert plc["node"] == NODE and plc["kid"] == kid and plc["topic"] == f"edge/{NODE}/modbus/line-plc"
    values = plc["body"]["values"]
    # test_pattern serves u16 = 48879, i16 = -1234, i32 (CDAB) = -123456789.
    assert values["u16_scaled"] == pytest.approx(4887.9)
    assert values["i16_scaled"] == pytest.approx(-11.34)
    assert values["i32_cdab"] == -123456789
    assert plc["body"]["units"]["u16_scaled"] == "rpm"
    assert plc["body"]["status"]["state"] == "online"
    assert found["host"]["body"]["memory"]["total_bytes"] > 0
    assert found["status"]["body"]["state"] == "online"


def publish_raw(broker_url: str, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", int(broker_url.rsplit(":", 1)[1]))
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_verify_rejects_changed_body_moved_topic_and_forged_signature(tmp_path, broker, node_key):
    from agent.trust import envelope

    key_path, private_key, kid = node_key
    topic = f"edge/{NODE}/host"
    genuine = envelope.seal(private_key, kid=kid, node=NODE, topic=topic, kind="host", session="s1",
                            seq=1, ts_ms=int(time.time() * 1000), body={"cpu": {"percent": 3.0}})
    fields = json.loads(genuine)
    # Re-encoded canonically, so that the change itself is the only thing wrong.
    changed = envelope.canonical({**fields, "body": {"cpu": {"percent": 99.0}}})
    other_sig = fields["sig"][:-4] + ("AAAA" if not fields["sig"].endswith("AAAA") else "BBBB")
    forged = envelope.canonical({**fields, "sig": other_sig})

    verifier = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "verify", "--broker", broker.url, "--trust",
         str(trust_dir(tmp_path, key_path)), "--count", "4", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert verifier.stderr.readline().startswith("verify: subscribed")
    publish_raw(broker.url, topic, genuine)
    publish_raw(broker.url, topic, changed)
    publish_raw(broker.url, f"edge/{NODE}/status", genuine)
    publish_raw(broker.url, topic, forged)
    out, err = verifier.communicate(timeout=90)
    lines = [json.loads(line) for line in out.splitlines()]
    assert verifier.returncode == 1, err
    assert [(line["topic"], line["valid"], line.get("reason")) for line in lines] == [
        (topic, True, None),
        (topic, False, "bad_signature"),
        (f"edge/{NODE}/status", False, "topic_mismatch"),
        (topic, False, "bad_signature"),
    ]
    assert lines[0]["body"] == {"cpu": {"percent": 3}}


def test_sigterm_stops_the_agent_cleanly_and_it_says_offline(tmp_path, broker, running_agent, node_key):
    key_path, _, _ = node_key
    trust = TrustStore.load(trust_dir(tmp_path, key_path))
    first_messages(broker.url, trust, {"modbus/line-plc"})
    running_agent.send_signal(signal.SIGTERM)
    assert running_agent.wait(30) == 0
    with Subscription(broker.url, Verifier(trust), topic_filter=f"edge/{NODE}/status") as subscription:
        retained = next(subscription.messages(time.monotonic() + 10))
    assert retained.verdict.valid and retained.retained
    assert retained.verdict.fields["body"]["state"] == "offline"


def publish_all(broker_url: str, messages: list[tuple[str, bytes, bool]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", int(broker_url.rsplit(":", 1)[1]))
    client.loop_start()
    for info in [client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages]:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def verify_run(broker_url: str, trust: Path, state: Path, count: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "verify", "--broker", broker_url, "--trust", str(trust), "--state",
         str(state), "--count", str(count), "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr.readline().startswith("verify: subscribed")
    return process


def test_verify_state_catches_a_replay_after_the_consumer_restarts(tmp_path, broker, node_key):
    """Run 1 accepts a node's traffic; run 2, restarted on the same --state file, drops the
    retained status the broker sends again as a duplicate and reports an old message sent
    again as a replay, while new messages still pass."""
    from agent.trust import envelope

    key_path, private_key, kid = node_key
    now = int(time.time() * 1000)

    def seal(seq: int, stream: str, body: dict) -> tuple[str, bytes, bool]:
        topic = f"edge/{NODE}/{stream}"
        payload = envelope.seal(private_key, kid=kid, node=NODE, topic=topic, kind=stream, session="1.a", seq=seq,
                                ts_ms=now, body=body)
        return topic, payload, stream == "status"

    trust, state = trust_dir(tmp_path, key_path), tmp_path / "replay.json"
    first = [seal(1, "status", {"state": "online"})] + [seal(n, "host", {"n": n}) for n in range(2, 302)]
    run = verify_run(broker.url, trust, state, len(first))
    publish_all(broker.url, first)
    out, err = run.communicate(timeout=90)
    assert run.returncode == 0 and out.count('"valid": true') == len(first), err

    run = verify_run(broker.url, trust, state, 2)
    publish_all(broker.url, [first[1], seal(302, "host", {"n": 302})])
    out, err = run.communicate(timeout=90)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["seq"], line["valid"], line.get("reason")) for line in lines] == [(2, False, "replay"),
                                                                                  (302, True, None)]
    assert run.returncode == 1 and "1 duplicates ignored" in err
