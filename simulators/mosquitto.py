"""A private Mosquitto on a free local port, for drills, benchmarks and tests.

The caller owns it: start, kill (SIGKILL, as a crash), stop, start again on the same port and
persistence folder (so QoS 1 sessions and retained messages survive a restart).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from simulators.localnet import free_port, wait_for_port


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError("mosquitto is not installed: apt-get install -y mosquitto")
    return found


def write_config(directory: Path, port: int, extra: str = "") -> Path:
    # As root, Mosquitto drops to user `mosquitto`, which cannot read a 0700 temp folder.
    # `listener 0` would mean a unix socket, so the port is explicit.
    user = "user root\n" if os.geteuid() == 0 else ""
    config = directory / "mosquitto.conf"
    config.write_text(
        f"{user}listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {directory}/\n"
        f"log_dest file {directory}/mosquitto.log\n{extra}"
    )
    return config


@dataclass
class PrivateMosquitto:
    port: int
    config: Path
    log: Path
    process: subprocess.Popen | None = None

    @classmethod
    def in_folder(cls, directory: Path, extra_config: str = "") -> "PrivateMosquitto":
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        return cls(port, write_config(directory, port, extra_config), directory / "mosquitto.log")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "PrivateMosquitto":
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_for_port(self.port, timeout=0.5)
                return self
            except TimeoutError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log.read_text(errors="replace")[-600:] if self.log.exists() else "(no log)"
                    raise RuntimeError(f"mosquitto did not start on port {self.port}: {tail}") from None

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
