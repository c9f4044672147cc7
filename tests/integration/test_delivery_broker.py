"""Delivery against a real Mosquitto that the test kills and restarts: nothing is lost, the
sequence has no gap, the Last Will marks a vanished node offline, refusals stay spooled."""

from __future__ import annotations

from pathlib import Path

import pytest
from delivery_harness import DURABLE_BROKER, AgentProcess, Recorder, read_retained, statuses, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def public_key(node_key) -> Path:
    return Path(f"{node_key[0]}.pub")


def births(recorder: Recorder) -> list:
    return statuses(list(recorder.unique().values()), "online", "connected")


def assert_no_gap(recorder: Recorder, session: str) -> list[int]:
    seqs = sorted(seq for (sess, seq) in recorder.unique() if sess == session)
    assert seqs, f"nothing from session {session}"
    missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
    assert not missing, f"sequence gap in session {session}: {missing[:20]}"
    return seqs


@pytest.mark.timeout(300)
def test_broker_killed_and_restarted_repeatedly_loses_nothing(make_broker, node_key, public_key, tmp_path) -> None:
    broker = make_broker(DURABLE_BROKER)
    recorder = Recorder(broker.port, public_key)
    agent = AgentProcess(tmp_path, broker.port, node_key[0])
    agent.start()
    try:
        recorder.wait_for(lambda got: statuses(got, "online", "connected"), "the birth")
        for outage in range(3):
            before = len(recorder.unique())
            wait_until(lambda: len(recorder.unique()) >= before + 5, "a steady stream")
            broker.kill()
            # Let a backlog build up in the spool while the broker is gone.
            wait_until(lambda: (s := agent.spool_stats()) and s.depth - s.held >= 5, "a backlog in the spool")
            broker.start()
            wait_until(lambda: len(births(recorder)) == outage + 2, f"the birth after restart {outage + 1}")
        assert agent.terminate() == 0
        goodbye = recorder.wait_for(lambda got: statuses(got, "offline", "stopped"), "the goodbye")[0]
        assert recorder.invalid == []
        seqs = assert_no_gap(recorder, goodbye.session)
        assert seqs[0] == agent.first_seqs()[goodbye.session] and seqs[-1] == goodbye.seq  # all, none after
        assert len(births(recorder)) == 4  # one per connection
        assert (agent.spool_stats().depth, agent.spool_stats().dropped_total) == (0, 0)
        retained = read_retained(broker.port, "edge/n1/status", recorder.trust)
        assert retained is not None and retained["body"]["state"] == "offline"
        assert retained["body"]["reason"] == "stopped"
    finally:
        agent.kill()
        recorder.close()


def test_killing_the_agent_makes_its_retained_status_read_offline(make_broker, node_key, public_key, tmp_path) -> None:
    broker = make_broker()
    recorder = Recorder(broker.port, public_key)
    agent = AgentProcess(tmp_path, broker.port, node_key[0])
    agent.start()
    try:
        birth = recorder.wait_for(lambda got: statuses(got, "online", "connected"), "the birth")[0]
        retained = read_retained(broker.port, "edge/n1/status", recorder.trust)
        assert retained is not None and retained["body"]["state"] == "online"
        assert retained["body"]["boot_id"] and retained["body"]["config_digest"]
        agent.kill()
        will = recorder.wait_for(lambda got: statuses(got, "offline"), "the Last Will")[0]
        assert will.session == birth.session and will.seq < birth.seq  # sealed when the connection opened
        retained = read_retained(broker.port, "edge/n1/status", recorder.trust)
        assert retained is not None and retained["body"]["state"] == "offline"
        assert retained["seq"] == will.seq
    finally:
        agent.kill()
        recorder.close()


def test_mqtt5_refused_messages_stay_in_the_spool(make_broker, node_key, public_key, tmp_path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite edge/n1/status\ntopic read edge/#\n")
    broker = make_broker(f"acl_file {acl}\n")
    recorder = Recorder(broker.port, public_key)
    agent = AgentProcess(tmp_path, broker.port, node_key[0], extra='protocol = "5"')
    agent.start()
    try:
        recorder.wait_for(lambda got: statuses(got, "online", "periodic"), "a periodic status")
        wait_until(lambda: (s := agent.spool_stats()) and s.depth_by_priority["state"] >= 5,
                   "refused host messages piling up in the spool")
        report = wait_until(lambda: (r := agent.status_json())["daemon"]["broker"]["refused_messages"] > 0 and r,
                            "refused messages counted")
        assert report["daemon"]["broker"]["connected"]
        assert not [g for g in recorder.got() if g.fields["kind"] == "host"]
        assert "broker refused message" in agent.log()
    finally:
        agent.kill()
        recorder.close()
