"""`edge-agent status` from a state directory: spool figures, daemon snapshot, rendering."""

from __future__ import annotations

import os
from pathlib import Path

from agent import cli
from agent.cli import status as status_cmd
from agent.core.reading import Priority
from agent.daemon.runtime import write_runtime
from agent.delivery import spool
from agent.delivery.session import Session


def test_empty_state_dir_says_so_and_exits_1(tmp_path: Path, capsys) -> None:
    assert cli.main(["status", "--state-dir", str(tmp_path)]) == 1
    assert "spool:          none yet" in capsys.readouterr().out


def test_report_combines_spool_session_and_daemon_snapshot(tmp_path: Path) -> None:
    Session(tmp_path, boot_id="b")
    store = spool.Spool(tmp_path / spool.FILENAME, max_bytes=10**6, max_age_s=60, clock_ms=lambda: 1000)
    store.put_many([spool.Message("edge/n/host", b"x" * 10, "host", Priority.STATE)] * 3)
    store.put(spool.Message("edge/n/status", b"w", "status", Priority.SECURITY), held=True)
    store.close()
    write_runtime(tmp_path, {
        "pid": os.getpid(), "updated_ms": 2000, "session": "1.ab", "stopped": False,
        "broker": {"url": "mqtt://b:1883", "connected": False, "last_error": "connect: refused"},
        "collectors": {"modbus/press": {"state": "failing", "last_ok_ms": None, "last_error": "TimeoutError()"}},
    })
    report = status_cmd.gather(tmp_path)
    assert report["running"]
    assert report["spool"]["depth"] == 4 and report["spool"]["held"] == 1
    assert report["spool"]["depth_by_priority"] == {"bulk": 0, "state": 3, "security": 1, "trust": 0}
    assert report["session"]["run"] == 1
    text = status_cmd.render(report, now_ms=5000)
    assert "disconnected (connect: refused)" in text
    assert "4 queued (bulk 0, state 3, security 1, trust 0; 1 held Will)" in text
    assert "modbus/press" in text and "failing, last ok never, last error: TimeoutError()" in text


def test_a_stopped_daemon_is_not_running(tmp_path: Path) -> None:
    write_runtime(tmp_path, {"pid": os.getpid(), "stopped": True})
    assert not status_cmd.gather(tmp_path)["running"]


def test_an_unreadable_spool_is_reported_not_raised(tmp_path: Path, capsys) -> None:
    (tmp_path / spool.FILENAME).write_bytes(b"this is not a database" * 100)
    assert cli.main(["status", "--state-dir", str(tmp_path)]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_storage_faults_publisher_and_quarantine_are_shown(tmp_path: Path) -> None:
    (tmp_path / "spool.db.corrupt-20261127T130000.000Z").write_bytes(b"damaged")
    (tmp_path / "spool.db.corrupt-20261127T130000.000Z.json").write_text(
        '{"at_ms": 1000, "path": "/s/spool.db.corrupt-20261127T130000.000Z", "problem": "database disk image is '
        'malformed", "salvaged": 480, "lost": 520}')
    write_runtime(tmp_path, {
        "pid": os.getpid(), "updated_ms": 4000, "session": "2.cd", "stopped": False,
        "publisher": {"state": "restarting", "faults": 2, "last_fault": "RuntimeError('boom')"},
        "storage": {"state": "degraded", "cause": "disk full", "since_ms": 3000, "memory_depth": 120,
                    "memory_bytes": 300_000, "memory_max_bytes": 8 * 1024**2, "free_bytes": 0,
                    "min_free": 256 * 1024**2, "last_error": "disk full: database or disk is full"},
        "sequence": {"persisted": False, "write_error": "[Errno 28] No space left on device", "unsealable": 3},
        "parts": {"report": {"state": "restarting", "restarts": 1, "last_error": "OSError(28)"},
                  "readiness": {"state": "running", "restarts": 0, "last_error": ""}},
    })
    text = status_cmd.render(status_cmd.gather(tmp_path), now_ms=5000)
    assert "publisher:      restarting, 2 faults, last: RuntimeError('boom')" in text
    assert "storage:        DEGRADED: disk full since" in text and "120 messages (293 KiB) in memory, max 8.0 MiB" in text
    assert "0 KiB free, reserve 256.0 MiB" in text
    assert "sequence:       NOT persisted, numbering from memory ([Errno 28] No space left on device)" in text
    assert "unsealable:     3 readings could not be sealed and were dropped (see the log)" in text
    assert "report" in text and "restarting, 1 restarts, last error: OSError(28)" in text and "readiness" not in text
    assert "quarantined:    /s/spool.db.corrupt-20261127T130000.000Z at" in text
    assert "480 salvaged, 520 lost (database disk image is malformed)" in text
