"""The agent process itself under stress: SIGKILL mid-stream, a full spool, SIGHUP reloads."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest
from delivery_harness import DURABLE_BROKER, AgentProcess, Recorder, statuses, wait_until

from agent.delivery import spool

pytestmark = pytest.mark.integration


@pytest.fixture
def public_key(node_key) -> Path:
    return Path(f"{node_key[0]}.pub")


def spooled_payloads(state_dir: Path) -> set[bytes]:
    conn = sqlite3.connect(f"file:{state_dir / spool.FILENAME}?mode=ro", uri=True)
    try:
        return {bytes(row[0]) for row in conn.execute("SELECT payload FROM message")}
    finally:
        conn.close()


@pytest.mark.timeout(300)
def test_agent_killed_mid_stream_loses_nothing_that_entered_the_spool(make_broker, node_key, public_key,
                                                                      tmp_path) -> None:
    broker = make_broker(DURABLE_BROKER)
    recorder = Recorder(broker.port, public_key)
    agent = AgentProcess(tmp_path, broker.port, node_key[0])
    agent.start()
    try:
        first = recorder.wait_for(lambda got: statuses(got, "online", "connected"), "the birth")[0]
        wait_until(lambda: len(recorder.unique()) >= 10, "a steady stream")
        broker.kill()
        wait_until(lambda: (s := agent.spool_stats()) and s.depth - s.held >= 20, "a backlog in the spool")
        agent.kill()  # SIGKILL, with a backlog on disk and messages being written
        backlog = spooled_payloads(agent.state_dir)
        assert len(backlog) >= 20
        broker.start()
        agent.start()
        wait_until(lambda: backlog <= {g.payload for g in recorder.got()}, "every spooled message at the broker")
        second = wait_until(lambda: [g for g in statuses(recorder.got(), "online", "connected")
                                     if g.session != first.session], "the second run's birth")[0]
        assert recorder.invalid == []
        old = sorted(seq for (session, seq) in recorder.unique() if session == first.session)
        assert old == list(range(agent.first_seqs()[first.session], old[-1] + 1))  # the first run's, all
        assert second.seq > old[-1] and second.body["run"] == first.body["run"] + 1
        assert agent.terminate() == 0
    finally:
        agent.kill()
        recorder.close()


@pytest.mark.timeout(300)
def test_full_spool_drops_bulk_and_state_before_security_and_reports_it(make_broker, node_key, public_key,
                                                                       tmp_path) -> None:
    broker = make_broker(DURABLE_BROKER)
    recorder = Recorder(broker.port, public_key)
    wait_until(lambda: recorder.client.is_connected(), "the recorder's session")
    broker.kill()  # the agent starts into an outage
    agent = AgentProcess(tmp_path, broker.port, node_key[0], host_interval="50ms",
                         spool_section='max_bytes = "384KiB"\nreport_interval = "500ms"\n')
    agent.start()
    try:
        stats = wait_until(lambda: (s := agent.spool_stats()) and s.dropped.get("full.state", 0) >= 20 and s,
                           "host messages dropped from the full spool", timeout=120)
        assert stats.bytes <= 384 * 1024
        report = agent.status_json()
        assert report["spool"]["dropped"].get("full.state", 0) >= 20
        broker.start()
        birth = recorder.wait_for(lambda got: statuses(got, "online", "connected"), "the birth")[0]
        assert birth.body["spool"]["dropped"].get("full.state", 0) >= 20
        assert "full.security" not in birth.body["spool"]["dropped"]
        wait_until(lambda: agent.spool_stats().depth - agent.spool_stats().held <= 5, "the backlog drained")
        assert agent.terminate() == 0
        recorder.wait_for(lambda got: statuses(got, "offline", "stopped"), "the goodbye")
        got = recorder.unique()
        seqs = sorted(seq for (session, seq) in got if session == birth.session)
        missing = set(range(agent.first_seqs()[birth.session], seqs[-1] + 1)) - set(seqs)
        # Only host (STATE) messages went, oldest first: none was sent before the outage, so every
        # missing one is older than every host message that arrived after it.
        oldest_host_kept = min(g.seq for g in got.values() if g.fields["kind"] == "host")
        assert max(missing) < oldest_host_kept
        status_seqs = {g.seq for g in got.values() if g.fields["kind"] == "status"}
        assert status_seqs and not missing & status_seqs
        # A message evicted while already handed to MQTT counts as dropped and may still arrive.
        assert 0 < len(missing) <= agent.spool_stats().dropped_total
    finally:
        agent.kill()
        recorder.close()


def test_sighup_with_a_broken_config_keeps_the_old_one_and_a_good_one_is_applied(make_broker, node_key, public_key,
                                                                                tmp_path) -> None:
    broker = make_broker()
    recorder = Recorder(broker.port, public_key)
    agent = AgentProcess(tmp_path, broker.port, node_key[0])
    agent.start()
    try:
        birth = recorder.wait_for(lambda got: statuses(got, "online", "connected"), "the birth")[0]
        good_config = agent.config_path.read_text()
        agent.config_path.write_text(good_config + "\n[spool]\nmax_bytes = \"lots\"\n")
        agent.signal(signal.SIGHUP)
        wait_until(lambda: "config reload failed, keeping the running config" in agent.log(), "the reload error")
        before = len(recorder.unique())
        wait_until(lambda: len(recorder.unique()) >= before + 5, "messages still flowing after the bad SIGHUP")
        assert agent.alive
        assert {g.session for g in recorder.got()} == {birth.session}

        agent.write_config(site="hall-7")
        agent.signal(signal.SIGHUP)
        reborn = recorder.wait_for(lambda got: [g for g in statuses(got, "online", "connected")
                                                if g.body["site"] == "hall-7"], "a birth with the new config")[0]
        assert reborn.body["config_digest"] != birth.body["config_digest"]
        assert statuses(recorder.got(), "offline", "reloading")
        assert agent.alive and agent.terminate() == 0
        assert recorder.invalid == []
    finally:
        agent.kill()
        recorder.close()


def test_status_command_reads_the_state_dir_without_the_broker(make_broker, node_key, tmp_path) -> None:
    broker = make_broker()
    agent = AgentProcess(tmp_path, broker.port, node_key[0])
    agent.start()
    try:
        report = wait_until(lambda: (r := agent.status_json())["daemon"] and r["daemon"]["broker"]["connected"]
                            and r["spool"]["last_ack_ms"] and r, "a connected, publishing agent")
        assert report["running"] and report["daemon"]["collectors"]["host"]["state"] in ("ok", "starting")
        broker.kill()
        assert agent.terminate() == 0  # cannot flush: the goodbye waits in the spool
        report = agent.status_json()
        assert not report["running"]
        assert report["spool"]["depth_by_priority"]["security"] >= 1
        assert report["session"]["next_seq"] > 1
    finally:
        agent.kill()
