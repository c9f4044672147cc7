"""Consumer side: subscribe to the agents' topics and verify every message.

Used by `edge-agent verify`, the demo's live view and any other consumer. The verification
itself is the pure `agent.envelope.open_envelope`; this module is the MQTT shell around it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent import envelope
from agent.keys import TrustStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    topic: str
    verdict: envelope.Verdict
    retained: bool

    def as_json(self) -> dict[str, Any]:
        fields = self.verdict.fields or {}
        out: dict[str, Any] = {"topic": self.topic, "node": fields.get("node"), "kind": fields.get("kind"),
                               "seq": fields.get("seq"), "valid": self.verdict.valid}
        if not self.verdict.valid:
            out["reason"] = self.verdict.reason
            out["detail"] = self.verdict.detail
        out["body"] = fields.get("body")
        return out


def broker_address(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r} is not a broker URL: write mqtt://host:1883 or mqtts://host:8883")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


class Subscription:
    """A subscription to `<prefix>/#` whose messages are verified as they arrive."""

    def __init__(self, url: str, trust: TrustStore, *, topic_filter: str = "edge/#",
                 client_id: str = "", ca_file: str | None = None) -> None:
        host, port, tls = broker_address(url)
        self.trust = trust
        self._inbox: queue.Queue[Received] = queue.Queue()
        self.subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if tls:
            self._client.tls_set(ca_certs=ca_file)
        self._filter = topic_filter
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *args: self.subscribed.set()
        self._client.connect_async(host, port, keepalive=30)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the subscriber reason=%s", reason_code)
            return
        client.subscribe(self._filter, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        verdict = envelope.open_envelope(message.payload, message.topic, self.trust)
        self._inbox.put(Received(message.topic, verdict, bool(message.retain)))

    def __enter__(self) -> "Subscription":
        self._client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def messages(self, deadline: float | None = None) -> Iterator[Received]:
        """Verified messages as they come, until the `time.monotonic()` deadline if one is set."""
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                yield self._inbox.get(timeout=remaining)
            except queue.Empty:
                return
