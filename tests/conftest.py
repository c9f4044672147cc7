"""Fixtures shared by unit and integration tests: keys, free ports, a private Mosquitto."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import keys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


@dataclass
class Broker:
    """A Mosquitto the test owns: it may stop, kill and restart it."""

    port: int
    config: Path
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def write_mosquitto_config(directory: Path, port: int, extra: str = "") -> Path:
    # `user root`: as root Mosquitto would drop to user mosquitto, which cannot read a
    # 0700 pytest temp dir. `listener 0` would mean a unix socket, so the port is explicit.
    config = directory / "mosquitto.conf"
    config.write_text(
        f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {directory}/\n"
        f"log_dest file {directory}/mosquitto.log\n{extra}"
    )
    return config


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator:
    """Factory: `make_broker(extra_config="")` starts a private Mosquitto on a free port."""
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed: run `bash .ci/run` or `apt-get install -y mosquitto`")
    brokers: list[Broker] = []

    def start(extra_config: str = "") -> Broker:
        directory = tmp_path / f"broker{len(brokers)}"
        directory.mkdir()
        port = free_port()
        broker = Broker(port, write_mosquitto_config(directory, port, extra_config), directory / "mosquitto.log")
        broker.start()
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        broker.kill()


@pytest.fixture
def broker(make_broker) -> Broker:
    return make_broker()


@pytest.fixture
def node_key(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey, str]:
    """A fresh node key on disk: (path, private key, key id); `<path>.pub` beside it."""
    path = tmp_path / "keys" / "node.key"
    private_key, kid = keys.generate(path)
    return path, private_key, kid
