"""Key rotation through a real Mosquitto: a consumer that starts after the rotation learns the
new key from the retained notice alone, with nobody touching its trust store."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from waiting import wait_until

from agent.fleet.subscription import Subscription
from agent.trust import envelope, keys, rotation
from agent.trust.verify import Verifier

pytestmark = pytest.mark.integration


def publish(port: int, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(20)
    client.disconnect()
    client.loop_stop()


def test_late_consumer_follows_a_rotation_from_the_retained_notice(broker, node_key, tmp_path: Path) -> None:
    key_path, old_key, _ = node_key
    trust_dir = tmp_path / "trust"
    trust_dir.mkdir()
    (trust_dir / "press-1.pub").write_bytes(keys.public_pem(old_key.public_key()))

    # The node rotates long before the consumer starts (older than any max_age).
    rotation.rotate(key_path, node="press-1", topic_prefix="edge", clock=lambda: time.time() - 30 * 86400)
    topic, notice = rotation.pending_rotation_notice(key_path)
    publish(broker.port, topic, notice, retain=True)
    rotation.rotation_notice_published(key_path)

    verifier = Verifier(keys.TrustStore.load(trust_dir), trust_dir=trust_dir)
    verdicts: list[envelope.Verdict] = []
    consumer = mqtt.Client(CallbackAPIVersion.VERSION2)
    consumer.on_connect = lambda c, u, f, reason, p: c.subscribe("edge/#", qos=1)
    consumer.on_message = lambda c, u, m: verdicts.append(verifier.check(m.payload, m.topic))
    consumer.connect("127.0.0.1", broker.port)
    consumer.loop_start()
    try:
        wait_until(lambda: verdicts, "the retained rotation notice", 20)
        assert verdicts[0].valid and verdicts[0].fields["kind"] == "key"

        new_key = keys.load_private(key_path)
        new_kid = keys.key_id(new_key.public_key())
        data = envelope.seal(new_key, kid=new_kid, node="press-1", topic="edge/press-1/host", kind="host",
                             session="2.x", seq=1, ts_ms=int(time.time() * 1000), body={"cpu": 1.0})
        publish(broker.port, "edge/press-1/host", data)
        wait_until(lambda: len(verdicts) >= 2, "the verdict on a message signed with the new key", 20)
        assert verdicts[1].valid, verdicts[1]
    finally:
        consumer.disconnect()
        consumer.loop_stop()
    # Remembered: a restarted consumer trusts the new key from its own folder.
    assert new_kid in keys.TrustStore.load(trust_dir).keys


def test_running_agent_publishes_the_rotation_and_consumers_follow_it(broker, node_key, tmp_path: Path) -> None:
    """`keygen --rotate` on a node, then the real agent: a consumer that only ever trusted the
    old key accepts the notice and then the agent's messages signed with the new key."""
    key_path, old_key, old_kid = node_key
    trust_dir = tmp_path / "trust"
    trust_dir.mkdir()
    (trust_dir / "press-1.pub").write_bytes(keys.public_pem(old_key.public_key()))
    config = tmp_path / "agent.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[node]\nid = "press-1"\n[mqtt]\nurl = "{broker.url}"\n'
                      f'[signing]\nkey_file = "{key_path}"\n[collectors.host]\ninterval = "1s"\n'
                      '[collectors.patches]\nenabled = false\n[collectors.posture]\nenabled = false\n')
    rotated = subprocess.run([sys.executable, "-m", "agent.cli", "keygen", "--rotate", "-c", str(config)],
                             capture_output=True, text=True)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = keys.key_id(keys.load_private(key_path).public_key())
    assert new_kid != old_kid

    verdicts: list[envelope.Verdict] = []
    with Subscription(broker.url, Verifier(keys.TrustStore.load(trust_dir))) as subscription:
        assert subscription.subscribed.wait(20)
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "-c", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=(tmp_path / "agent.log").open("wb"))
        try:
            for received in subscription.messages(time.monotonic() + 60):
                verdicts.append(received.verdict)
                if received.verdict.valid and received.verdict.fields["kind"] == "host":
                    break
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
    assert all(v.valid for v in verdicts), [(v.reason, v.detail) for v in verdicts if not v.valid]
    kinds = [(v.fields["kind"], v.fields["kid"]) for v in verdicts]
    assert ("key", old_kid) in kinds, kinds
    assert ("host", new_kid) in kinds, kinds
    assert not rotation.notice_path(key_path).exists()  # published once, not at every start
