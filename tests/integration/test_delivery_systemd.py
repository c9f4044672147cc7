"""The daemon speaks sd_notify like a Type=notify service with a watchdog: READY, STATUS,
WATCHDOG pings from its main loop, STOPPING on SIGTERM, to the socket systemd names."""

from __future__ import annotations

import socket
import threading

import pytest
from delivery_harness import AgentProcess, wait_until

pytestmark = pytest.mark.integration


def test_ready_status_watchdog_and_stopping_reach_the_notify_socket(make_broker, node_key, tmp_path) -> None:
    broker = make_broker()
    path = tmp_path / "notify"
    received: list[str] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(0.2)

    def listen() -> None:
        while server.fileno() != -1:
            try:
                received.append(server.recv(4096).decode())
            except (TimeoutError, OSError):
                continue

    threading.Thread(target=listen, daemon=True).start()
    agent = AgentProcess(tmp_path, broker.port, node_key[0])
    agent.start(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
    try:
        wait_until(lambda: any(m.startswith("READY=1") for m in received), "READY=1")
        wait_until(lambda: sum(m == "WATCHDOG=1" for m in received) >= 3, "repeated watchdog pings")
        wait_until(lambda: any(m.startswith("STATUS=connected; spool") for m in received), "a STATUS= line")
        assert agent.terminate() == 0
        assert any(m.startswith("STOPPING=1") for m in received)
    finally:
        agent.kill()
        server.close()
