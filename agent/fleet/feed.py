"""The board's MQTT side: a shared subscription for the bulk of the fleet's messages and plain
subscriptions for the retained kinds, every message verified before the state sees it.

Mosquitto never delivers retained messages to a shared subscription, so a board that joins
late would not learn who is online or what each agent last concluded; the plain
subscriptions to `<prefix>/+/<kind>` for the retained kinds fix that. A message arriving on
both subscriptions is a byte-identical duplicate, which the verifier drops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agent.fleet.state import FleetState
from agent.fleet.subscription import consumer_client
from agent.trust.verify import Verifier

log = logging.getLogger(__name__)

RETAINED_KINDS = ("status", "readiness", "patches", "posture", "key")


def topic_filters(prefix: str, group: str | None) -> list[tuple[str, int]]:
    bulk = f"$share/{group}/{prefix}/#" if group else f"{prefix}/#"
    retained = [(f"{prefix}/+/{kind}", 1) for kind in RETAINED_KINDS] if group else []
    return [(bulk, 1), *retained]


class Feed:
    def __init__(self, url: str, verifier: Verifier, state: FleetState, lock: threading.Lock, *,
                 prefix: str = "edge", group: str | None = "board", client_id: str = "",
                 tls_files: tuple[str | None, str | None, str | None] = (None, None, None),
                 clock: Callable[[], float] = time.time) -> None:
        self.verifier, self.state, self.lock, self.clock = verifier, state, lock, clock
        self.filters = topic_filters(prefix, group)
        self.subscribed = threading.Event()
        self.client, host, port = consumer_client(url, client_id=client_id, tls_files=tls_files)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._address = (host, port)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the board reason=%s", reason_code)
            return
        log.info("board connected filters=%s", ",".join(f for f, _ in self.filters))
        client.subscribe(self.filters)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # Connected, for the board, means receiving: only once the broker granted the filters.
        if any(code.is_failure for code in reason_codes):
            log.error("broker refused the board's subscriptions reasons=%s", reason_codes)
            return
        with self.lock:
            self.state.set_connected(True, self._now_ms())
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        log.warning("board lost the broker reason=%s", reason_code)
        self.subscribed.clear()
        with self.lock:
            self.state.set_connected(False, self._now_ms())

    def _on_message(self, client, userdata, message) -> None:
        verdict = self.verifier.check(message.payload, message.topic)
        with self.lock:
            self.state.ingest(message.topic, verdict, self._now_ms(), bool(message.retain))
        if not verdict.valid and verdict.reason != "duplicate":
            log.warning("message rejected topic=%s reason=%s", message.topic[:200], verdict.reason)

    def start(self) -> None:
        self.client.connect_async(*self._address, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
