"""Ingest (`edge-agent ingest`, and inside `edge-agent board`): MQTT shared subscription ->
verify -> check the body -> the fleet store.

Subscriptions: `$share/<group>/<prefix>/#` for the bulk, so any number of ingest processes
split the fleet's messages, plus plain subscriptions to `<prefix>/+/<kind>` for the retained
kinds, because Mosquitto never delivers retained messages to a shared subscription (a late
ingest would not learn who is online or what each agent last concluded). A message arriving
on both is a duplicate, which the store recognises. Behind site bridges (`bridges`), the same
again under every bridge prefix (`+/<prefix>/...`, and each longer configured prefix); a
message is filed under the node and stream of its topic as its site published it.

Threads: paho's network loop verifies each message as it arrives (agent.trust.verify, with
duplicates and replays left to the store) and checks its body (agent.fleet.bodies); a writer
thread admits batches to the store and re-judges the nodes they touched; an upkeep thread
writes the heartbeat and, while this process holds the fleet lease, judges every node every
`tick_s` and applies retention. The queue between paho and the writer is bounded: when the
store cannot keep up, paho stops reading and the broker queues for us.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.fleet import bodies
from agent.fleet.defaults import SILENT_AFTER_S
from agent.fleet.store import StoreError
from agent.fleet.store.assess import Assessor
from agent.fleet.store.db import Database
from agent.fleet.store.upkeep import Retention, heartbeat, prune, take_lease
from agent.fleet.store.writes import Arrival, StoreWriter
from agent.fleet.subscription import TlsFiles, consumer_client
from agent.trust import envelope, keys
from agent.trust.bridge import Bridges
from agent.trust.envelope import NO_BRIDGES
from agent.trust.verify import MAX_AGE_MS, MAX_SKEW_MS, Verifier

log = logging.getLogger(__name__)

RETAINED_KINDS = ("status", "readiness", "patches", "posture", "key")
BATCH = 500  # messages per store transaction at most
BATCH_WAIT_S = 0.05  # how long a batch may wait to fill: the latency a message adds
QUEUE_LIMIT = 20_000  # received but not yet stored; beyond, paho waits (and the broker queues)
ASSESS_EVERY_S = 0.25  # re-judge the nodes recent batches touched at most this often
HEARTBEAT_S = 2.0
PRUNE_EVERY_S = 60.0
LOG_EVERY_S = 10.0  # at most one line per rejection reason this often; the rest are counted


def topic_filters(prefix: str, group: str | None, bridges: Bridges = NO_BRIDGES) -> list[tuple[str, int]]:
    """The bulk and the retained kinds, directly and under every bridge prefix (Bridges.roots)."""
    roots = bridges.roots(prefix)
    bulk = [(f"$share/{group}/{root}/#" if group else f"{root}/#", 1) for root in roots]
    retained = [(f"{root}/+/{kind}", 1) for root in roots for kind in RETAINED_KINDS] if group else []
    return [*bulk, *retained]


def envelope_text_problem(fields: dict) -> str | None:
    """Strings the store keeps as text must not carry NUL (PostgreSQL text cannot)."""
    for name in ("node", "session", "kid", "kind"):
        if "\x00" in fields[name]:
            return f"field {name!r} contains a NUL character"
    return None


def check(verifier: Verifier, topic: str, payload: bytes, retained: bool, received_ms: int) -> Arrival:
    """Verify one message and check its body: what the writer stores."""
    verdict = verifier.check(payload, topic)
    problem = None
    if verdict.valid:
        fields = verdict.fields
        assert fields is not None
        text = envelope_text_problem(fields)
        if text:
            verdict = replace(verdict, valid=False, reason=envelope.MALFORMED, detail=text)
        else:
            problem = bodies.problem(fields["kind"], fields["body"])
    local = verifier.bridges.local_topic(topic, (verdict.fields or {}).get("topic"))
    return Arrival(topic, payload, verdict, received_ms, retained, problem, local_topic=local)


class RateLimitedLog:
    """One WARNING per reason per `every_s`; the lines in between are counted and reported."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def rejected(self, topic: str, reason: str, detail: str) -> bool:
        now = self.clock()
        if now - self._last.get(reason, float("-inf")) < self.every_s:
            self._held[reason] = self._held.get(reason, 0) + 1
            return False
        held = self._held.pop(reason, 0)
        self._last[reason] = now
        log.warning("message rejected topic=%s reason=%s detail=%s%s", topic[:200], reason, detail[:200],
                    f" (and {held} more with this reason since the last line)" if held else "")
        return True


@dataclass(frozen=True)
class IngestSettings:
    prefix: str = "edge"
    group: str | None = "board"
    tls_files: TlsFiles = (None, None, None)
    client_id: str = ""
    max_skew_ms: int | None = MAX_SKEW_MS
    max_age_ms: int | None = MAX_AGE_MS
    bridges: Bridges = NO_BRIDGES  # the prefixes site bridges add in front of the topics (agent.trust.bridge)
    silent_after_ms: int = int(SILENT_AFTER_S * 1000)
    tick_s: float = 5.0
    retention: Retention = Retention()


def guarded(keep: Retention, verifier: Verifier) -> Retention:
    """The retention to apply: stored messages are the replay guard, so they are kept at least as
    long as the verifier accepts a message by its timestamp (older ones fail as clock_skew)."""
    if verifier.max_age_ms is None:
        return keep
    floor = verifier.max_age_ms + (verifier.max_skew_ms or 0)
    if keep.retention_ms < floor:
        log.info("message retention raised to the verifier's max age retention_ms=%d max_age_ms=%d",
                 keep.retention_ms, verifier.max_age_ms)
        return replace(keep, retention_ms=floor)
    return keep


class Ingest:
    def __init__(self, broker_url: str, trust: keys.TrustStore, db: Database, settings: IngestSettings = IngestSettings(),
                 *, clock: Callable[[], float] = time.time, trust_dir=None) -> None:
        self.db, self.settings, self.clock, self.broker_url = db, settings, clock, broker_url
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.started_ms = self.now_ms()
        self.verifier = Verifier(trust, max_skew_ms=settings.max_skew_ms, max_age_ms=settings.max_age_ms, clock=clock,
                                 trust_dir=trust_dir, check_replays=False, bridges=settings.bridges)
        self.writer = StoreWriter(db, started_ms=self.started_ms)
        self.retention = guarded(settings.retention, self.verifier)
        self.assessor = Assessor(db, silent_after_ms=settings.silent_after_ms)
        self.inbox: queue.Queue[Arrival] = queue.Queue(QUEUE_LIMIT)
        self.connected, self.connected_since_ms = False, self.started_ms
        self.subscribed = threading.Event()
        self.stored = 0  # arrivals through the store, for tests and the bench
        self.unstorable = 0
        self._log = RateLimitedLog()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.filters = topic_filters(settings.prefix, settings.group, settings.bridges)
        self.client, host, port = consumer_client(broker_url, client_id=settings.client_id, tls_files=settings.tls_files)
        self.client.on_connect, self.client.on_disconnect = self._on_connect, self._on_disconnect
        self.client.on_subscribe, self.client.on_message = self._on_subscribe, self._on_message
        self._address = (host, port)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------ MQTT (paho's thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused ingest reason=%s", reason_code)
            return
        log.info("ingest connected broker=%s filters=%s", self.broker_url, ",".join(f for f, _ in self.filters))
        client.subscribe(self.filters)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # Connected, for the board, means receiving: only once the broker granted the filters.
        if any(code.is_failure for code in reason_codes):
            log.error("broker refused ingest's subscriptions reasons=%s", reason_codes)
            return
        self.connected, self.connected_since_ms = True, self.now_ms()
        self.subscribed.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected:
            log.warning("ingest lost the broker broker=%s reason=%s", self.broker_url, reason_code)
        self.subscribed.clear()
        self.connected, self.connected_since_ms = False, self.now_ms()
        self._wake.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            arrival = self.arrival(message.topic, message.payload, bool(message.retain))
        except Exception:  # noqa: BLE001 - a bug must cost one message, never the subscription
            log.exception("message could not be checked topic=%s", message.topic[:200])
            return
        self.inbox.put(arrival)

    def arrival(self, topic: str, payload: bytes, retained: bool) -> Arrival:
        return check(self.verifier, topic, payload, retained, self.now_ms())

    # ------------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        dirty: set[str] = set()
        assessed = time.monotonic()
        while not (self._stop.is_set() and self.inbox.empty()):
            batch = self._next_batch()
            if batch:
                dirty |= self._store(batch)
            if dirty and time.monotonic() - assessed >= ASSESS_EVERY_S:
                dirty = self._assess(dirty)
                assessed = time.monotonic()
        if dirty:
            self._assess(dirty)

    def _next_batch(self) -> list[Arrival]:
        try:
            batch = [self.inbox.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + BATCH_WAIT_S
        while len(batch) < BATCH:
            try:
                batch.append(self.inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[Arrival]) -> set[str]:
        """Admit `batch`; waits out a store outage, and isolates a message the store refuses."""
        delay = 0.5
        while True:
            try:
                admitted = self.writer.admit(batch, self.now_ms())
                break
            except StoreError as exc:
                if self._store_reachable():
                    return self._split(batch, exc)
                log.error("fleet store unavailable, holding batch=%d error=%s", len(batch), exc)
                if self._stop.wait(delay) and self.inbox.empty():
                    log.error("stopping with an unstored batch=%d", len(batch))
                    return set()
                delay = min(delay * 2, 10.0)
        self.stored += len(batch)
        for topic, reason, detail in admitted.rejections:
            self._log.rejected(topic, reason, detail)
        return admitted.dirty

    def _split(self, batch: list[Arrival], exc: StoreError) -> set[str]:
        if len(batch) == 1:
            self.unstorable += 1
            log.error("message could not be stored topic=%s error=%s", batch[0].topic[:200], exc)
            return set()
        half = len(batch) // 2
        return self._store(batch[:half]) | self._store(batch[half:])

    def _store_reachable(self) -> bool:
        try:
            with self.db.transaction(write=False) as tx:
                tx.rows("SELECT 1")
            return True
        except StoreError:
            return False

    def _assess(self, nodes: set[str]) -> set[str]:
        try:
            self.assessor.assess(nodes, self.now_ms())
            return set()
        except StoreError as exc:
            log.error("nodes could not be judged nodes=%d error=%s", len(nodes), exc)
            return nodes

    # ------------------------------------------------------------------ upkeep

    def _upkeep_loop(self) -> None:
        tick = pruned = float("-inf")
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                heartbeat(self.db, self.instance, started_ms=self.started_ms, connected=self.connected,
                          since_ms=self.connected_since_ms, broker=self.broker_url, now_ms=self.now_ms())
                if now - tick >= self.settings.tick_s and take_lease(
                        self.db, "fleet", self.instance, self.now_ms(), int(3 * max(self.settings.tick_s, HEARTBEAT_S) * 1000)):
                    tick = now
                    self.assessor.assess(None, self.now_ms())
                    if now - pruned >= PRUNE_EVERY_S:
                        pruned = now
                        prune(self.db, self.now_ms(), self.retention)
            except StoreError as exc:
                log.error("fleet upkeep failed error=%s", exc)
            self._wake.wait(min(HEARTBEAT_S, self.settings.tick_s))
            self._wake.clear()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> "Ingest":
        self.client.connect_async(*self._address, keepalive=30)
        self.client.loop_start()
        for target in (self._write_loop, self._upkeep_loop):
            thread = threading.Thread(target=target, name=f"ingest-{target.__name__.strip('_')}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(15)
        try:
            heartbeat(self.db, self.instance, started_ms=self.started_ms, connected=False,
                      since_ms=self.now_ms(), broker=self.broker_url, now_ms=self.now_ms())
        except StoreError as exc:
            log.warning("could not record ingest stop error=%s", exc)

    def __enter__(self) -> "Ingest":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
