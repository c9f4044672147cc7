"""Broker refusals are reported clearly and never worked around: a wrong password is logged
as such (and a SIGHUP with the right one recovers), a TLS failure never falls back to plain."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from delivery_harness import AgentProcess, Recorder, statuses, wait_until

pytestmark = pytest.mark.integration


def test_wrong_password_is_reported_and_a_reload_with_the_right_one_connects(make_broker, node_key,
                                                                             tmp_path) -> None:
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "node1", "right"], check=True,
                   capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "recorder", "rec"], check=True, capture_output=True)
    broker = make_broker(f"allow_anonymous false\npassword_file {passwords}\n")
    secret = tmp_path / "mqtt.password"
    secret.write_text("wrong\n")
    agent = AgentProcess(tmp_path, broker.port, node_key[0], extra=f'username = "node1"\npassword_file = "{secret}"')
    recorder = Recorder(broker.port, Path(f"{node_key[0]}.pub"))
    recorder.client.username_pw_set("recorder", "rec")
    agent.start()
    try:
        wait_until(lambda: "broker refused connection" in agent.log(), "the refusal in the log")
        line = next(line for line in agent.log().splitlines() if "broker refused connection" in line)
        assert "password" in line.lower() or "authori" in line.lower()
        assert "wrong" not in agent.log()  # the password itself is never logged
        assert agent.alive
        wait_until(lambda: (s := agent.spool_stats()) and s.depth >= 5, "readings kept in the spool meanwhile")
        secret.write_text("right\n")
        agent.signal(signal.SIGHUP)
        recorder.wait_for(lambda got: statuses(got, "online", "connected"), "the birth after the fix")
        assert agent.terminate() == 0
    finally:
        agent.kill()
        recorder.close()


def test_tls_failure_is_reported_and_never_falls_back_to_plain_text(make_broker, node_key, tmp_path) -> None:
    broker = make_broker()  # a plain-text listener: the TLS handshake cannot succeed
    agent = AgentProcess(tmp_path, broker.port, node_key[0])
    agent.config_path.write_text(agent.config_path.read_text().replace("mqtt://", "mqtts://"))
    agent.start()
    try:
        wait_until(lambda: agent.log().count("TLS handshake with broker failed") >= 2, "two failed handshakes")
        assert "not falling back to plain text" in agent.log()
        assert " as n1 " not in broker.log.read_text()  # the broker never saw an MQTT CONNECT from us
        assert agent.alive
    finally:
        agent.kill()
