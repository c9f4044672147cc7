"""The fleet board (`edge-agent board`): wires the verified MQTT feed (agent.fleet.feed), the fleet state (agent.fleet.state) and the
HTTP server (agent.web.server) together; the clock is passed in so drills can run it on
simulated time. See docs/readiness.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.fleet.feed import Feed
from agent.fleet.state import SILENT_AFTER_S, FleetState
from agent.trust import keys
from agent.trust.verify import MAX_AGE_MS, MAX_SKEW_MS, Verifier
from agent.web.server import make_server

log = logging.getLogger(__name__)


class Board:
    def __init__(self, broker_url: str, trust: keys.TrustStore, *, listen: tuple[str, int] = ("127.0.0.1", 8080),
                 prefix: str = "edge", group: str | None = "board", silent_after_s: float = SILENT_AFTER_S,
                 history_s: float = 6 * 3600.0, tick_s: float = 1.0, max_skew_s: float = MAX_SKEW_MS / 1000,
                 max_age_s: float = MAX_AGE_MS / 1000,
                 tls_files: tuple[str | None, str | None, str | None] = (None, None, None),
                 clock: Callable[[], float] = time.time, serve_http: bool = True) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.state = FleetState(started_ms=self.now_ms(), silent_after_ms=int(silent_after_s * 1000),
                                history_ms=int(history_s * 1000))
        self.verifier = Verifier(trust, max_skew_ms=int(max_skew_s * 1000), max_age_ms=int(max_age_s * 1000),
                                 clock=clock)
        self.feed = Feed(broker_url, self.verifier, self.state, self.lock, prefix=prefix, group=group,
                         tls_files=tls_files, clock=clock)
        self.http = make_server(listen, self.fleet, self.node) if serve_http else None
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def url(self) -> str:
        assert self.http is not None
        host, port = self.http.server_address[:2]
        return f"http://{host}:{port}/"

    def fleet(self) -> dict[str, Any]:
        with self.lock:
            return self.state.snapshot(self.now_ms())

    def node(self, node: str) -> dict[str, Any] | None:
        with self.lock:
            return self.state.node_detail(node, self.now_ms())

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            with self.lock:
                self.state.tick(self.now_ms())

    def start(self) -> "Board":
        self.feed.start()
        targets = [self._tick] + ([self.http.serve_forever] if self.http else [])
        for target in targets:
            thread = threading.Thread(target=target, name=f"board-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.http:
            self.http.shutdown()
            self.http.server_close()
        self.feed.stop()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> "Board":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
