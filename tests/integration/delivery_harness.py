"""Shared by the test_delivery_* tests: the real daemon as a subprocess and a recording,
verifying subscriber with a persistent session (so it misses nothing across broker restarts)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from waiting import wait_until

from agent.delivery import spool
from agent.trust import envelope, keys

DEADLINE_S = 60.0
# The broker writes its state (sessions, queued messages) after every change, so a SIGKILL
# loses nothing it acknowledged: the tests then measure the agent, not Mosquitto.
DURABLE_BROKER = "autosave_interval 1\nautosave_on_changes true\n"


@dataclass(frozen=True)
class Got:
    topic: str
    payload: bytes
    retained: bool
    fields: dict[str, Any]

    @property
    def seq(self) -> int:
        return self.fields["seq"]

    @property
    def session(self) -> str:
        return self.fields["session"]

    @property
    def body(self) -> dict[str, Any]:
        return self.fields["body"]


class Recorder:
    """Subscribes to `<prefix>/#` at QoS 1 with a persistent session; verifies every message."""

    def __init__(self, port: int, public_key_path: Path, client_id: str = "recorder") -> None:
        self.trust = keys.TrustStore()
        self.trust.add(keys.load_public(public_key_path))
        self.invalid: list[tuple[str, str]] = []
        self._got: list[Got] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("edge/#", qos=1) if not rc.is_failure else None
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        verdict = envelope.open_envelope(message.payload, message.topic, self.trust)
        with self._lock:
            if verdict.valid and verdict.fields is not None:
                self._got.append(Got(message.topic, bytes(message.payload), bool(message.retain), verdict.fields))
            else:
                self.invalid.append((message.topic, f"{verdict.reason}: {verdict.detail}"))

    def got(self) -> list[Got]:
        with self._lock:
            return list(self._got)

    def unique(self) -> dict[tuple[str, int], Got]:
        """Received messages without duplicates, by (session, seq)."""
        return {(g.session, g.seq): g for g in self.got()}

    def wait_for(self, predicate: Callable[[list[Got]], Any], what: str, timeout: float = DEADLINE_S) -> Any:
        return wait_until(lambda: predicate(self.got()), what, timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def statuses(got: list[Got], state: str | None = None, reason: str | None = None) -> list[Got]:
    return [g for g in got if g.fields["kind"] == "status" and (state is None or g.body["state"] == state)
            and (reason is None or g.body["reason"] == reason)]


def read_retained(port: int, topic: str, trust: keys.TrustStore, timeout: float = 10.0) -> dict[str, Any] | None:
    """The verified retained message on `topic`, read by a fresh clean-session subscriber."""
    box: list[mqtt.MQTTMessage] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, m: box.append(m) if m.retain else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(lambda: box, f"a retained message on {topic}", timeout)
    except AssertionError:
        return None
    finally:
        client.loop_stop()
        client.disconnect()
    verdict = envelope.open_envelope(box[-1].payload, box[-1].topic, trust)
    assert verdict.valid, verdict
    return verdict.fields


class AgentProcess:
    """`edge-agent run -c PATH` as a subprocess, with a config written for the test."""

    def __init__(self, directory: Path, port: int, key_path: Path, *, host_interval: str = "100ms",
                 spool_section: str = "", extra: str = "", state_dir: Path | None = None) -> None:
        self.directory = directory
        self.state_dir = state_dir or directory / "state"
        self.config_path = directory / "agent.toml"
        self.log_path = directory / "agent.log"
        self.port = port
        self.key_path = key_path
        self.host_interval = host_interval
        self.spool_section = spool_section or 'report_interval = "1s"\nstop_timeout = "10s"\n'
        self.extra = extra
        self.process: subprocess.Popen | None = None
        self.write_config()

    def write_config(self, site: str = "") -> None:
        self.config_path.write_text(
            f'state_dir = "{self.state_dir}"\n[node]\nid = "n1"\nsite = "{site}"\n'
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{self.port}"\nkeepalive = 5\n{self.extra}\n'
            f'[signing]\nkey_file = "{self.key_path}"\n'
            f'[collectors.host]\ninterval = "{self.host_interval}"\n[spool]\n{self.spool_section}'
        )

    def start(self, env: dict[str, str] | None = None) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "-c", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def first_seqs(self) -> dict[str, int]:
        """session -> its first sequence number, from each start's log line (numbers start at the
        node's clock in milliseconds, see agent.delivery.session)."""
        return {m["session"]: int(m["seq"]) for m in re.finditer(
            r"agent started .*?session=(?P<session>\S+) seq_from=(?P<seq>\d+)", self.log())}

    def spool_stats(self) -> spool.SpoolStats | None:
        try:
            return spool.read_stats_file(self.state_dir / spool.FILENAME)
        except Exception:  # noqa: BLE001 - the daemon may be creating the file right now
            return None

    def status_json(self) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "agent.cli", "status", "-c", str(self.config_path), "--json"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode in (0, 1), out.stderr  # 1: nothing in the state dir yet
        return json.loads(out.stdout)
