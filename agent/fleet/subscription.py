"""Consumer side: subscribe to the agents' topics and verify every message.

Used by `edge-agent verify`, the demo's live view and (for its client setup) the board. The
verification is `agent.trust.verify.Verifier` (the pure `open_envelope` plus the replay guard and
key rotations); this module is the MQTT shell around it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.delivery.config import parse_broker_url
from agent.trust import envelope
from agent.trust.verify import Verifier

TlsFiles = tuple[str | None, str | None, str | None]
"""(CA bundle, client certificate, its key) for mqtts:// brokers."""

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


def consumer_client(url: str, *, client_id: str = "", tls_files: TlsFiles = (None, None, None),
                    persistent: bool = False) -> tuple[mqtt.Client, str, int]:
    """A paho client for `url`, with TLS (and a client certificate, if given) for mqtts://.
    `persistent` (needs a `client_id`): the broker keeps the session and queues QoS 1 messages
    while the client is away."""
    address = parse_broker_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
    if address.tls:  # never falls back to plain text
        ca_file, cert_file, key_file = tls_files
        client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client, address.host, address.port


class Subscription:
    """A subscription to `topic_filter` (one, or several) whose messages are verified as they arrive.

    With a `client_id` and `persistent`, the broker keeps the session while this client or the
    broker restarts, and delivers what it queued meanwhile."""

    def __init__(self, url: str, verifier: Verifier, *, topic_filter: str | Sequence[str] = "edge/#",
                 client_id: str = "", tls_files: TlsFiles = (None, None, None), persistent: bool = False) -> None:
        self.verifier = verifier
        self._inbox: queue.Queue[Received] = queue.Queue()
        self.subscribed = threading.Event()
        self.refused: list[str] = []  # filters the broker refused (its ACL), at the last subscription
        self._client, host, port = consumer_client(url, client_id=client_id, tls_files=tls_files,
                                                   persistent=persistent)
        self.filters = [topic_filter] if isinstance(topic_filter, str) else list(topic_filter)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.connect_async(host, port, keepalive=30)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the subscriber reason=%s", reason_code)
            return
        client.subscribe([(topic_filter, 1) for topic_filter in self.filters])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.refused = [f for f, code in zip(self.filters, reason_codes) if code.is_failure]
        self.subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        verdict = self.verifier.check(message.payload, message.topic)
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
