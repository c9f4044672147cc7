"""No silent thread death: a fault injected into the publisher's thread is logged with its cause
and the publisher starts over; one it cannot get past stops the watchdog pings and the agent
(exit 1), so systemd restarts it. The real daemon code (agent.daemon.service.run) against a
real Mosquitto and a real sd_notify socket; the fault is injected into the store's reads."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path

import pytest
from delivery_harness import AgentProcess, Recorder, statuses, wait_until

from agent import config as config_mod
from agent.core.timing import Backoff
from agent.daemon import service
from agent.delivery import publisher
from agent.delivery.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch) -> None:
    monkeypatch.setattr(publisher, "FAULTS", Backoff(base=0.2, cap=0.5))


class NotifySocket:
    """A stand-in for systemd's notify socket: records every datagram with the time it came."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.got: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def sigterm_when(condition, what: str, failures: list[BaseException], agent_done: threading.Event) -> threading.Thread:
    """In a helper thread: wait for `condition`, then SIGTERM this process, which the agent
    running in the main thread handles like systemd's stop (failures are kept for the test)."""
    def target() -> None:
        try:
            wait_until(lambda: agent_done.is_set() or condition(), what)
        except BaseException as exc:  # noqa: BLE001 - reported by the test, after the agent stopped
            failures.append(exc)
        if not agent_done.is_set():  # once the agent is gone, SIGTERM would end pytest itself
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_fault_in_the_publisher_is_logged_and_it_starts_over(make_broker, node_key, tmp_path, monkeypatch,
                                                               caplog) -> None:
    broker = make_broker()
    recorder = Recorder(broker.port, Path(f"{node_key[0]}.pub"))
    config = config_mod.load(AgentProcess(tmp_path, broker.port, node_key[0]).config_path)
    real = Store.next_batch
    injected = iter(range(2))

    def flaky(self, cursors, limit):
        if next(injected, None) is not None:
            raise RuntimeError("injected fault")
        return real(self, cursors, limit)

    monkeypatch.setattr(Store, "next_batch", flaky)
    failures: list[BaseException] = []
    agent_done = threading.Event()
    flowing = lambda: len(statuses(recorder.got(), "online", "connected")) and len(recorder.unique()) >= 10  # noqa: E731
    helper = sigterm_when(flowing, "messages flowing after the faults", failures, agent_done)
    with caplog.at_level(logging.INFO):
        try:
            status = service.run(config)
        finally:
            agent_done.set()
    helper.join()
    recorder.close()
    assert not failures and status == 0 and recorder.invalid == []
    faults = [r for r in caplog.records if "publisher fault, starting over" in r.getMessage()]
    assert len(faults) == 2 and all(r.exc_info and "injected fault" in str(r.exc_info[1]) for r in faults)
    assert not [r for r in caplog.records if "publisher gave up" in r.getMessage()]


def test_a_publisher_that_cannot_recover_stops_the_watchdog_and_the_agent(make_broker, node_key, tmp_path,
                                                                          monkeypatch, caplog) -> None:
    broker = make_broker()
    config = config_mod.load(AgentProcess(tmp_path, broker.port, node_key[0]).config_path)
    notify = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    def broken(self, cursors, limit):
        raise RuntimeError("injected for good")

    monkeypatch.setattr(Store, "next_batch", broken)
    with caplog.at_level(logging.INFO):
        status = service.run(config)  # returns by itself: nobody stops it
    notify.close()
    assert status == 1
    assert "READY=1" in notify.got[0]
    failed_at = next(i for i, text in enumerate(notify.got) if "STATUS=failed: publisher failed" in text)
    assert "WATCHDOG=1" in notify.got[:failed_at]  # it pinged while the publisher was trying
    assert "WATCHDOG=1" not in notify.got[failed_at:]  # and never once it had given up
    assert any("publisher gave up after 5 faults in a row" in r.getMessage() for r in caplog.records)
    assert any("a part of the agent failed for good" in r.getMessage() for r in caplog.records)
