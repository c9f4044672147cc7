"""Local sockets for the demo, drills, benchmarks and tests: free ports and readiness waits."""

from __future__ import annotations

import contextlib
import random
import socket
import time
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral() -> range:
    try:
        low, high = (int(n) for n in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, outside the kernel's ephemeral range.

    A port from bind(0) lies in the range the kernel hands out as the local port of outgoing
    connections: once a test stops a broker to restart it on the same port, any connection
    made meanwhile may take that port and the restart fails. Ports below the range are only
    ever taken by listeners.
    """
    ephemeral = _ephemeral()
    candidates = [p for p in range(10000, 65536) if p not in ephemeral]
    for port in random.sample(candidates, 50):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded machine: take what the kernel gives
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Return once something accepts connections on host:port; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")
