"""sd_notify datagrams reach a unix socket, including an abstract one; no socket means no-op."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from agent.daemon.sdnotify import Notifier, watchdog_interval


def receive(sock: socket.socket) -> str:
    sock.settimeout(10)
    return sock.recv(4096).decode()


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        notifier.ready("connected")
        assert receive(server) == "READY=1\nSTATUS=connected"
        notifier.watchdog()
        assert receive(server) == "WATCHDOG=1"
        notifier.stopping()
        assert receive(server) == "STOPPING=1"
        notifier.close()


def test_messages_reach_an_abstract_socket() -> None:
    name = f"edge-agent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        notifier = Notifier({"NOTIFY_SOCKET": f"@{name}"})
        notifier.status("spool depth 3")
        assert receive(server) == "STATUS=spool depth 3"


def test_without_systemd_nothing_happens_and_a_dead_socket_does_not_raise(tmp_path: Path) -> None:
    assert not Notifier({}).enabled
    Notifier({}).ready()
    Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).watchdog()


def test_watchdog_interval_is_half_the_timeout_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "2"}, pid=2) == 10.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
