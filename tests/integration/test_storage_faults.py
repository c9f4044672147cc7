"""Storage faults on real file systems, against the real daemon and a real Mosquitto: a tmpfs
filled to the last byte, an ext4 image the kernel remounts read-only under the running agent,
a state dir read-only from the start, and spools damaged at several places. Each needs root
to mount (filesystems.py skips with one line otherwise)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from delivery_harness import DURABLE_BROKER, AgentProcess, Got, Recorder, statuses, wait_until
from filesystems import ext4, fail_ext4, fill, free_bytes, is_read_only, tmpfs

from agent.core.reading import Priority
from agent.delivery import quarantine, spool
from agent.delivery.spool import Message, Spool
from agent.trust import envelope, keys

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SPOOL = 'report_interval = "1s"\nstop_timeout = "5s"\nmin_free = "0"\n'


@pytest.fixture
def public_key(node_key) -> Path:
    return Path(f"{node_key[0]}.pub")


def daemon(agent: AgentProcess) -> dict:
    return agent.status_json().get("daemon") or {}


def storage_is(agent: AgentProcess, state: str) -> dict | None:
    storage = daemon(agent).get("storage") or {}
    return storage if storage.get("state") == state else None


def host_after(recorder: Recorder, session: str, seq: int) -> list[Got]:
    return [g for (s, n), g in recorder.unique().items() if s == session and n > seq and g.fields["kind"] == "host"]


def event(recorder: Recorder, prefix: str, what: str, timeout: float = 60.0) -> Got:
    """The first status message whose reason starts with `prefix` (it arrived, so it verified)."""
    return recorder.wait_for(lambda got: [g for g in statuses(got) if g.body["reason"].startswith(prefix)],
                             what, timeout)[0]


def all_numbers_arrived(recorder: Recorder, agent: AgentProcess, session: str) -> list[int]:
    seqs = sorted(n for (s, n) in recorder.unique() if s == session)
    first = agent.first_seqs()[session]
    assert seqs[0] == first and seqs == list(range(first, seqs[-1] + 1)), "a sealed message never arrived"
    return seqs


def no_traceback(agent: AgentProcess) -> None:
    assert "Traceback" not in agent.log(), agent.log()[-3000:]


def test_disk_full_with_the_broker_up_keeps_fresh_readings_coming(make_broker, node_key, public_key,
                                                                   tmp_path) -> None:
    broker = make_broker()
    recorder = Recorder(broker.port, public_key)
    with tmpfs(tmp_path / "disk", "4m") as disk:
        agent = AgentProcess(tmp_path, broker.port, node_key[0], state_dir=disk / "state", spool_section=SPOOL)
        agent.start()
        try:
            birth = event(recorder, "connected", "the birth")
            wait_until(lambda: len(host_after(recorder, birth.session, 0)) >= 10, "a steady stream")
            fill(disk / "journal.bin")  # logs take the rest of the disk
            mark = max(n for (s, n) in recorder.unique() if s == birth.session)
            degraded = wait_until(lambda: storage_is(agent, "degraded"), "storage degraded in `status`")
            assert degraded["cause"] == "disk full" and "full" in degraded["last_error"]
            told = event(recorder, "storage: disk full", "the storage event on the status stream")
            assert told.body["storage"]["state"] == "degraded" and told.retained is False
            # Fresh readings, sealed after the disk filled, keep arriving.
            wait_until(lambda: len(host_after(recorder, birth.session, mark)) >= 30, "fresh host readings")
            assert free_bytes(disk) < 64 * 1024 and agent.alive
            assert agent.terminate() == 0  # SIGTERM while the disk is full
            goodbye = event(recorder, "stopped", "the goodbye")
            no_traceback(agent)
            assert recorder.invalid == []
            all_numbers_arrived(recorder, agent, goodbye.session)
        finally:
            agent.kill()
            recorder.close()


def test_disk_full_with_the_broker_down_then_space_freed_resumes_spooling(make_broker, node_key, public_key,
                                                                          tmp_path) -> None:
    broker = make_broker(DURABLE_BROKER)
    recorder = Recorder(broker.port, public_key)
    wait_until(recorder.client.is_connected, "the recorder's session")
    broker.kill()  # the agent starts into a broker outage
    with tmpfs(tmp_path / "disk", "4m") as disk:
        # A budget well below the disk: the spool alone never fills it, the "logs" below do.
        agent = AgentProcess(tmp_path, broker.port, node_key[0], state_dir=disk / "state",
                             spool_section=SPOOL + 'max_bytes = "1MiB"\n')
        agent.start()
        try:
            wait_until(lambda: (s := agent.spool_stats()) and s.depth >= 20, "a backlog in the spool")
            fill(disk / "journal.bin")
            wait_until(lambda: (s := storage_is(agent, "degraded")) and s["memory_depth"] >= 20,
                       "new messages held in memory")
            # The real SQLite error is in the journal, not hidden behind a failed ROLLBACK.
            assert "spool write failed op=insert error=database or disk is full code=SQLITE_FULL" in agent.log()
            assert "cannot rollback" not in agent.log()
            os.unlink(disk / "journal.bin")
            wait_until(lambda: (s := storage_is(agent, "ok")) and s["memory_depth"] == 0,
                       "spooling again, memory moved to disk", timeout=30)
            report = agent.status_json()
            conn = sqlite3.connect(f"file:{agent.state_dir / spool.FILENAME}?mode=ro", uri=True)
            rows = conn.execute("SELECT COUNT(*) FROM message").fetchone()[0]
            conn.close()
            assert report["spool"]["depth"] >= rows - 5  # the daemon's figures are the database's
            assert report["spool"]["dropped_total"] == 0  # nothing was dropped, so none is counted
            broker.start()
            wait_until(lambda: (s := agent.spool_stats()) and s.depth - s.held <= 3, "the backlog drained")
            assert agent.terminate() == 0
            goodbye = event(recorder, "stopped", "the goodbye")
            no_traceback(agent)
            all_numbers_arrived(recorder, agent, goodbye.session)  # nothing lost while the disk was full
            assert recorder.invalid == []
        finally:
            agent.kill()
            recorder.close()


def test_a_state_dir_remounted_read_only_under_the_agent(make_broker, node_key, public_key, tmp_path) -> None:
    broker = make_broker()
    recorder = Recorder(broker.port, public_key)
    with ext4(tmp_path / "disk", tmp_path / "disk.img", 16) as disk:
        agent = AgentProcess(tmp_path, broker.port, node_key[0], state_dir=disk / "state", spool_section=SPOOL)
        agent.start()
        try:
            birth = event(recorder, "connected", "the birth")
            wait_until(lambda: len(host_after(recorder, birth.session, 0)) >= 10, "a steady stream")
            fail_ext4(disk)
            wait_until(lambda: is_read_only(disk), "the kernel's read-only remount")
            mark = max(n for (s, n) in recorder.unique() if s == birth.session)
            told = event(recorder, "storage: read-only", "the storage event on the status stream")
            assert told.body["storage"]["cause"] == "read-only"
            wait_until(lambda: len(host_after(recorder, birth.session, mark)) >= 30, "fresh host readings")
            assert agent.terminate() == 0
            no_traceback(agent)
            assert "spool not writable, keeping new messages in memory" in agent.log()
            assert recorder.invalid == []
        finally:
            agent.kill()
            recorder.close()


def test_the_agent_starts_and_publishes_on_a_state_dir_read_only_from_boot(make_broker, node_key, public_key,
                                                                             tmp_path) -> None:
    broker = make_broker()
    recorder = Recorder(broker.port, public_key)
    with tmpfs(tmp_path / "disk", "8m") as disk:
        agent = AgentProcess(tmp_path, broker.port, node_key[0], state_dir=disk / "state", spool_section=SPOOL)
        agent.start()
        first = event(recorder, "connected", "the first run's birth")
        assert agent.terminate() == 0
        os.sync()
        remounted = os.system(f"mount -o remount,ro {disk}")  # noqa: S605 - a fixed command on our own mount
        if remounted != 0:
            pytest.skip("cannot remount the test tmpfs read-only here")
        agent.start()
        try:
            second = wait_until(lambda: [g for g in statuses(recorder.got(), "online", "connected")
                                         if g.session != first.session], "the second run's birth", 15)[0]
            assert second.body["storage"]["state"] == "degraded" and second.body["storage"]["cause"] == "read-only"
            assert second.body["storage"]["sequence_persisted"] is False
            assert second.seq > max(n for (s, n) in recorder.unique() if s == first.session)
            wait_until(lambda: len(host_after(recorder, second.session, 0)) >= 10, "readings from memory")
            assert agent.terminate() == 0
            no_traceback(agent)
        finally:
            agent.kill()
            recorder.close()


def test_unwritable_sequence_file_on_a_full_disk_never_blocks_or_reuses_numbers(make_broker, node_key, public_key,
                                                                                tmp_path) -> None:
    broker = make_broker()
    recorder = Recorder(broker.port, public_key)
    with tmpfs(tmp_path / "disk", "2m") as disk:
        (disk / "state").mkdir(mode=0o700)
        fill(disk / "journal.bin")  # full before the agent ever starts: no session.json, no spool
        agent = AgentProcess(tmp_path, broker.port, node_key[0], state_dir=disk / "state", spool_section=SPOOL)
        agent.start()
        try:
            first = event(recorder, "connected", "the first run's birth", 15)
            assert first.body["storage"]["sequence_persisted"] is False
            wait_until(lambda: len(host_after(recorder, first.session, 0)) >= 20, "readings without a disk")
            assert not (disk / "state" / "session.json").exists()
            assert agent.terminate() == 0
            used = [n for (s, n) in recorder.unique() if s == first.session]
            agent.start()
            second = wait_until(lambda: [g for g in statuses(recorder.got(), "online", "connected")
                                         if g.session != first.session], "the second run's birth", 15)[0]
            assert second.seq > max(used)  # the clock floor: no number of the unwritten run comes again
            os.unlink(disk / "journal.bin")
            wait_until(lambda: (disk / "state" / "session.json").exists(), "session.json written again")
            wait_until(lambda: [g for g in statuses(recorder.got(), "online", "periodic")
                                if g.session == second.session and g.body["storage"]["sequence_persisted"]],
                       "the status saying numbers are persisted again")
            assert agent.terminate() == 0
            no_traceback(agent)
            assert recorder.invalid == []
        finally:
            agent.kill()
            recorder.close()


def test_the_spool_stops_growing_at_the_free_space_reserve(make_broker, node_key, public_key, tmp_path) -> None:
    broker = make_broker()
    broker.kill()
    reserve = 4 * 1024 * 1024
    with tmpfs(tmp_path / "disk", "8m") as disk:
        (disk / "state").mkdir(mode=0o700)
        with (disk / "journal.bin").open("wb") as filler:  # others' files leave the spool 300 KiB
            filler.write(b"\x7f" * (free_bytes(disk) - reserve - 300 * 1024))
        agent = AgentProcess(tmp_path, broker.port, node_key[0], state_dir=disk / "state", host_interval="20ms",
                             spool_section=SPOOL.replace('min_free = "0"', 'min_free = "4MiB"\nmax_bytes = "1MiB"'))
        agent.start()
        lowest = [free_bytes(disk)]
        try:
            def reserve_reached() -> dict | None:
                lowest.append(free_bytes(disk))
                return storage_is(agent, "degraded")

            degraded = wait_until(reserve_reached, "the reserve reached", timeout=120)
            assert degraded["cause"] == "disk reserve reached"
            assert (agent.spool_stats().depth or 0) > 50  # the spool did grow up to the reserve
            for _ in range(20):  # and stays there while readings keep coming
                lowest.append(free_bytes(disk))
                time.sleep(0.1)
            assert min(lowest) >= reserve - 64 * 1024, f"free space fell to {min(lowest)} bytes"
            assert agent.terminate() == 0
            no_traceback(agent)
        finally:
            agent.kill()


def test_the_spool_footprint_with_its_wal_stays_within_max_bytes(make_broker, node_key, public_key,
                                                                 tmp_path) -> None:
    broker = make_broker()
    broker.kill()
    budget = 256 * 1024
    with tmpfs(tmp_path / "disk", "16m") as disk:
        agent = AgentProcess(tmp_path, broker.port, node_key[0], state_dir=disk / "state", host_interval="20ms",
                             spool_section=SPOOL + 'max_bytes = "256KiB"\n')
        agent.start()
        sizes = []
        try:
            def footprint() -> int:
                total = 0
                for suffix in ("", "-wal", "-shm", "-journal"):
                    try:
                        stat = (agent.state_dir / f"{spool.FILENAME}{suffix}").stat()
                    except FileNotFoundError:
                        continue
                    total += max(stat.st_size, stat.st_blocks * 512)
                sizes.append(total)
                return total

            wait_until(lambda: footprint() and (s := agent.spool_stats()) and s.dropped_total >= 30,
                       "the spool full and dropping", timeout=120)
            assert max(sizes) <= budget, f"the spool took {max(sizes)} bytes"
            assert agent.terminate() == 0
        finally:
            agent.kill()


# ----------------------------------------------------------------------------- corruption


def signed_spool(path: Path, private_key, count: int) -> None:
    """A spool of `count` genuine messages of an earlier session, as a crash would leave it."""
    kid = keys.key_id(private_key.public_key())
    store = Spool(path, max_bytes=64 * 1024 * 1024, max_age_s=86400)
    now = int(time.time() * 1000)
    messages = []
    for n in range(count):
        stream = ("host", "modbus/press")[n % 2]
        topic = f"edge/n1/{stream}"
        body = {"n": n, "values": {f"p{i}": i * 1.5 for i in range(20)}}
        payload = envelope.seal(private_key, kid=kid, node="n1", topic=topic, kind=stream.split("/")[0],
                                session="0.crashed", seq=n + 1, ts_ms=now - 60_000 + n, body=body)
        messages.append(Message(topic, payload, stream, Priority.STATE if n % 2 == 0 else Priority.BULK))
    store.put_many(messages)
    store.close()


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    pages = len(data) // page
    if how == "truncated to half":
        path.write_bytes(bytes(data[: pages // 2 * page]))
        return
    where = {"first page": [0], "a page at a third": [pages // 3],
             "pages at two thirds and the end": [2 * pages // 3, pages - 1]}[how]
    for at in where:
        data[at * page:(at + 1) * page] = os.urandom(page)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["first page", "a page at a third", "pages at two thirds and the end",
                                 "truncated to half"])
def test_a_damaged_spool_is_quarantined_and_the_agent_publishes_within_10_s(make_broker, node_key, public_key,
                                                                            tmp_path, how: str) -> None:
    broker = make_broker()
    recorder = Recorder(broker.port, public_key)
    agent = AgentProcess(tmp_path, broker.port, node_key[0], spool_section=SPOOL)
    agent.state_dir.mkdir()
    signed_spool(agent.state_dir / spool.FILENAME, node_key[1], 1000)
    damage(agent.state_dir / spool.FILENAME, how)
    agent.start()
    try:
        told = event(recorder, "spool quarantined", "the quarantine event", timeout=10)
        record = told.body["storage"]["quarantined"]
        assert told.retained is False and told.fields["kid"] == node_key[2]  # signed by the node, verified
        assert "corrupt" in record["path"] and record["problem"]
        if how == "first page":
            assert record["salvaged"] == 0 and record["lost"] is None  # nothing says what it held
        elif how == "truncated to half":
            assert 0 < record["salvaged"] < 1000 and record["lost"] is None  # the b-trees lost their ends
        else:
            assert 0 < record["salvaged"] and record["salvaged"] + record["lost"] == 1000
        salvaged = lambda got: [g for g in got if g.session == "0.crashed"]  # noqa: E731
        recorder.wait_for(lambda got: len(salvaged(got)) >= record["salvaged"], "the salvaged messages published")
        report = agent.status_json()
        assert [r["salvaged"] for r in report["quarantined"]] == [record["salvaged"]]
        assert report["daemon"]["storage"]["quarantined"]["path"] == record["path"]
        assert agent.alive and agent.terminate() == 0
        assert recorder.invalid == []
        no_traceback(agent)
    finally:
        agent.kill()
        recorder.close()


def test_damage_found_while_running_is_quarantined_without_a_restart(make_broker, node_key, public_key,
                                                                     tmp_path) -> None:
    broker = make_broker(DURABLE_BROKER)
    recorder = Recorder(broker.port, public_key)
    wait_until(recorder.client.is_connected, "the recorder's session")
    broker.kill()
    agent = AgentProcess(tmp_path, broker.port, node_key[0], spool_section=SPOOL)
    agent.state_dir.mkdir()
    signed_spool(agent.state_dir / spool.FILENAME, node_key[1], 6000)  # larger than SQLite's page cache
    agent.start()
    try:
        wait_until(lambda: "agent started" in agent.log(), "the agent running")
        damage(agent.state_dir / spool.FILENAME, "a page at a third")
        broker.start()  # the publisher now reads the backlog and meets the damage
        told = event(recorder, "spool quarantined", "the quarantine event")
        assert 0 < told.body["storage"]["quarantined"]["salvaged"] < 6000
        pid = agent.process.pid
        wait_until(lambda: len(host_after(recorder, told.session, told.seq)) >= 10, "readings go on")
        assert agent.alive and agent.process.pid == pid
        agent.signal(signal.SIGTERM)
        assert agent.process.wait(60) == 0
        no_traceback(agent)
    finally:
        agent.kill()
        recorder.close()
