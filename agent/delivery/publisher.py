"""MQTT session towards the plant broker: drains the spool, removes what the broker acked.

One thread owns the connection (paho-mqtt 2.x driven through its external-loop interface,
`loop_read`/`loop_write`/`loop_misc`, so callbacks run in that thread and need no locks). A
fresh paho client per connection: paho's own queue of unacknowledged messages dies with it,
and the spool is the only store. The thread sleeps in one `select` until the broker sends
(a PUBACK), paho has bytes to write, or the store says something became publishable (a
byte on the wake-up socket pair; the daemon puts a whole burst of readings at once), and at
least once per `IDLE_WAKE_S` (heartbeat, keepalive): no polling, so an idle link costs a
wake-up every few seconds.

Per connection: seal an offline status and keep it in the spool as "held" while it serves
as the MQTT Last Will; connect (TLS and credentials as configured, never plain text
instead); release the earlier connections' Wills (so every sealed sequence number is
published once: by the broker as a Will, by us, or both, a harmless duplicate); spool a
new birth; then keep up to `window` messages in flight, refilling from `Spool.next_batch`
as PUBACKs arrive, and remove acknowledged messages from the spool in batches (`ACK_FLUSH_S`;
at once when stopping or when the connection ends). On MQTT 5 a PUBACK with reason code
>= 128 is a refusal: the message stays in the spool and is sent again on the next
connection. On disconnect: back off exponentially with jitter.

Stop: release the held Will, spool a final "offline" (the goodbye, which is also the Will
of any connection opened while stopping), flush until the spool is empty or the deadline
passes, then DISCONNECT cleanly so the broker discards the Will.

Faults: an unexpected error anywhere in the thread (a bug, a spool method raising) is logged
with its traceback, the connection is dropped and the loop starts over after a backoff
(`FAULTS`), keeping the held Will. After `MAX_FAULTS` in a row without a connection that
worked in between, the publisher gives up (`state` "failed", the thread ends): the daemon
then stops its watchdog pings and exits, and systemd restarts the agent.
"""

from __future__ import annotations

import logging
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from agent.core.timing import Backoff
from agent.delivery.config import MqttConfig, read_password, tls_context
from agent.delivery.message import Message, Spooled
from agent.delivery.store import Store

log = logging.getLogger(__name__)

RECONNECT = Backoff(base=1.0, cap=30.0)
FAULTS = Backoff(base=1.0, cap=30.0)  # after an unexpected error in the thread
MAX_FAULTS = 5  # in a row: about 30 s of retries before the publisher gives up
CONNACK_TIMEOUT_S = 15.0
# The longest the connection thread sleeps (heartbeat: STALL_S is 60 s; deadline); at most a quarter of
# the keepalive, so paho's PINGREQ goes out well inside the broker's 1.5 x keepalive.
IDLE_WAKE_S = 5.0
# Acks go to the spool in batches: one transaction a second (or per ACK_BATCH) instead of one
# per PUBACK. A crash can lose the last batch: those messages are sent again, as duplicates
# consumers drop (docs/operations.md, "Durability").
ACK_FLUSH_S = 1.0
ACK_BATCH = 32
_HANDSHAKE_RESETS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


@dataclass
class _Link:
    """One connection's paho client and bookkeeping (callbacks run in the same thread)."""

    client: mqtt.Client
    connack: Any = None  # the CONNACK's reason code, once it arrived
    inflight: dict[int, int] = field(default_factory=dict)  # paho mid -> spool id
    early: dict[int, bool] = field(default_factory=dict)  # QoS 0: on_publish may fire inside publish()
    acked: list[int] = field(default_factory=list)  # acknowledged, not yet removed from the spool
    acked_since: float | None = None  # when the oldest of them was seen


@dataclass(frozen=True)
class Lifecycle:
    """What the daemon seals for each connection; the publisher knows nothing of content."""

    seal_will: Callable[[], Message]  # offline status, registered as the MQTT Last Will
    # online status, the first thing spooled after CONNACK; given the Will the broker now holds,
    # so it can name that Will's sequence number (consumers then know it is held, not lost)
    seal_birth: Callable[[Message], Message]
    seal_goodbye: Callable[[], Message]  # offline status spooled when stopping


def _refusal_hint(reason: str) -> str:
    lowered = reason.lower()
    if "password" in lowered or "authori" in lowered or "identifier" in lowered:
        return "check mqtt.username, mqtt.password_file, the client certificate and the broker's ACL"
    return "see the broker's log"


class Publisher:
    def __init__(self, config: MqttConfig, client_id: str, spool: Store, lifecycle: Lifecycle, *,
                 window: int = 64, rand: Callable[[], float] = random.random) -> None:
        self._config = config
        self._client_id = client_id
        self._spool = spool
        self._lifecycle = lifecycle
        self._window = window
        self._rand = rand
        self._idle_wake_s = min(IDLE_WAKE_S, config.keepalive / 4)
        self._tls = tls_context(config)
        self._password = read_password(config)
        self._stop = threading.Event()
        self._cut_wait = threading.Event()  # stop() cuts a backoff wait short (once)
        self._deadline = float("inf")
        self._goodbye: Message | None = None
        self._flushed = False
        self._thread: threading.Thread | None = None
        # Wakes the connection thread's select: the store calls `wake` when something becomes publishable.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        spool.on_publishable(self.wake)
        # Read by the daemon for status messages (plain attributes: the GIL makes them atomic).
        self.connected = False
        self.last_error = ""
        self.connections = 0
        self.refused = 0
        self.heartbeat = time.monotonic()
        self.faults = 0  # unexpected errors in the thread, in all
        self.last_fault = ""
        self.restarting = False  # waiting to start over after a fault
        self.failed = False  # gave up after MAX_FAULTS in a row

    # -- the daemon's side --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Have the connection thread look at the spool now (any thread may call it)."""
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # its buffer is full (a wake-up is pending anyway) or the publisher has ended

    def stop(self, timeout: float) -> bool:
        """Say goodbye and flush within about `timeout` s, disconnect cleanly; True if all went."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._cut_wait.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout + CONNACK_TIMEOUT_S)
        return self._flushed

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> str:
        """connected, connecting, restarting (after a fault), failed, stopped or not started."""
        if self.failed:
            return "failed"
        if self._thread is None:
            return "not started"
        if not self._thread.is_alive():
            return "stopped"
        if self.restarting:
            return "restarting"
        return "connected" if self.connected else "connecting"

    # -- the connection thread ----------------------------------------------------------

    def _past_deadline(self) -> bool:
        return time.monotonic() >= self._deadline

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end and not self._past_deadline():
            self.heartbeat = now
            if self._cut_wait.wait(min(0.2, end - now)):
                self._cut_wait.clear()
                return

    def _say_goodbye(self) -> Message:
        """Once, when stopping: release held Wills, spool the final offline status."""
        if self._goodbye is None:
            self._spool.release_held()
            self._goodbye = self._lifecycle.seal_goodbye()
            self._spool.put(self._goodbye)
        return self._goodbye

    def _run(self) -> None:
        will: Message | None = None
        will_id: int | None = None
        attempt = faults = 0
        while not self._past_deadline():
            self.heartbeat = time.monotonic()
            try:
                if self._stop.is_set():
                    will, will_id = self._say_goodbye(), None
                    if self._spool.depth == 0:
                        self._flushed = True
                        break
                elif will is None:
                    will = self._lifecycle.seal_will()
                    will_id = self._spool.put(will, held=True)
                accepted = self._session(will, will_id)
            except Exception as exc:  # noqa: BLE001 - whatever it was: log it, start over, never die silently
                faults += 1
                if self._fault(exc, faults):
                    break
                continue
            if accepted:
                attempt, faults, will = 0, 0, None  # that Will is spent, or waits in the spool as held
                if self._flushed:
                    break
            else:
                attempt += 1
            self._wait(1.0 if self._stop.is_set() else RECONNECT.delay(attempt, self._rand))
        self.connected = False
        self._wake_r.close()
        self._wake_w.close()

    def _fault(self, exc: Exception, in_a_row: int) -> bool:
        """Log an unexpected error with its cause and wait to start over; True to give up."""
        self.faults += 1
        self.connected, self.last_fault = False, repr(exc)[:300]
        self.last_error = f"internal error: {self.last_fault}"
        if in_a_row >= MAX_FAULTS:
            self.failed = True
            log.critical("publisher gave up after %d faults in a row broker=%s error=%r", in_a_row,
                         self._config.url, exc, exc_info=exc)
            return True
        delay = FAULTS.delay(in_a_row, self._rand)
        log.error("publisher fault, starting over broker=%s error=%r in_a_row=%d restart_in_s=%.1f",
                  self._config.url, exc, in_a_row, delay, exc_info=exc)
        self.restarting = True
        self._wait(delay)
        self.restarting = False
        return False

    def _make_client(self, will: Message) -> mqtt.Client:
        protocol = mqtt.MQTTv5 if self._config.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=protocol)
        if self._config.username:
            client.username_pw_set(self._config.username, self._password)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        client.will_set(will.topic, will.payload, qos=1, retain=True)
        client.max_inflight_messages_set(self._window)
        return client

    def _session(self, will: Message, will_id: int | None) -> bool:
        """One connection, from connect to disconnect; True if the broker accepted us."""
        link = _Link(self._make_client(will))
        link.client.on_connect = lambda client, userdata, flags, reason_code, properties: setattr(
            link, "connack", reason_code)
        link.client.on_publish = lambda client, userdata, mid, reason_code, properties: self._on_publish(
            link, mid, reason_code)
        if not self._open(link):
            return False
        try:
            self.connected = True
            self.connections += 1
            self.last_error = ""
            released = 0
            if not self._stop.is_set():
                released = self._spool.release_held(keep=will_id)
                self._spool.put(self._lifecycle.seal_birth(will))
            log.info("connected to broker broker=%s protocol=%s released_wills=%d backlog=%d",
                     self._config.url, self._config.protocol, released, self._spool.depth)
            lost = self._pump(link)
            if link.acked:
                self._spool.ack(link.acked)
        except BaseException:
            # A fault mid-session: leave cleanly (the Will stays held in the spool and is released
            # on the next connection), so no half-dead connection lingers at the broker.
            self.connected = False
            link.client.disconnect()
            link.client.loop(0.1)
            raise
        self.connected = False
        self._close(link, lost)
        return True

    def _open(self, link: _Link) -> bool:
        """Connect and wait for CONNACK; False (with the reason logged) if that fails."""
        broker = self._config.url
        try:
            link.client.connect(self._config.host, self._config.port, keepalive=self._config.keepalive)
        except OSError as exc:
            # A reset after TCP connected, on a TLS URL, is the handshake failing (e.g. a plain port).
            if isinstance(exc, ssl.SSLError) or (self._tls is not None and isinstance(exc, _HANDSHAKE_RESETS)):
                self.last_error = f"TLS: {exc}"
                log.error("TLS handshake with broker failed broker=%s error=%s: check that the port speaks TLS, "
                          "mqtt.tls.ca_file, the client certificate and the broker's certificate; not falling "
                          "back to plain text", broker, exc)
            else:
                self.last_error = f"connect: {exc}"
                log.warning("cannot reach broker broker=%s error=%s", broker, exc)
            return False
        deadline = min(time.monotonic() + CONNACK_TIMEOUT_S, self._deadline)
        while link.connack is None and (now := time.monotonic()) < deadline:
            if not self._step(link.client, min(self._idle_wake_s, deadline - now)):
                break
        if link.connack is None or link.connack.is_failure:
            text = str(link.connack) if link.connack is not None else "no CONNACK"
            self.last_error = f"refused: {text}"
            log.error("broker refused connection broker=%s reason=%s: %s", broker, text, _refusal_hint(text))
            link.client.disconnect()
            return False
        return True

    def _pump(self, link: _Link) -> bool:
        """Hand spooled messages to MQTT within the in-flight window, pass acks to the spool,
        until stopped and flushed or past the deadline; True if the connection was lost."""
        cursors: dict[str, int] = {}
        stopping = False
        seen_generation, maybe_more = -1, True
        while not self._past_deadline():
            self.heartbeat = time.monotonic()
            if self._stop.is_set() and not stopping:
                stopping = True
                self._flush_acks(link, now=True)  # before the streams are read again from their start
                self._say_goodbye()
                # The released Will lies behind the cursors: read every stream again from its
                # start (a few in-flight messages go twice; consumers drop such duplicates).
                cursors.clear()
                maybe_more = True
            room = self._window - len(link.inflight)
            generation = self._spool.generation
            if room and (maybe_more or generation != seen_generation):
                batch = self._spool.next_batch(cursors, room)
                seen_generation, maybe_more = generation, len(batch) == room
                if not all(self._hand_over(link, item) for item in batch):
                    return True
            idle = ACK_FLUSH_S if link.acked else self._idle_wake_s  # acks waiting: back in time to flush them
            if not self._step(link.client, min(idle, max(0.0, self._deadline - time.monotonic()))):
                return True
            self._flush_acks(link, stopping)
            if stopping and not link.inflight and not maybe_more and generation == seen_generation:
                self._flushed = self._spool.depth == 0 or not self._spool.next_batch(dict(cursors), 1)
                if self._flushed:
                    return False
        return False

    def _flush_acks(self, link: _Link, now: bool) -> None:
        """Remove acknowledged messages from the spool: `now`, or once the batch is due."""
        if not link.acked:
            return
        seen = time.monotonic()
        link.acked_since = link.acked_since or seen
        if now or len(link.acked) >= ACK_BATCH or seen - link.acked_since >= ACK_FLUSH_S:
            self._spool.ack(link.acked)
            link.acked.clear()
            link.acked_since = None

    def _step(self, client: mqtt.Client, timeout: float) -> bool:
        """What `client.loop(timeout)` does, waking early on `wake` too: wait until the broker
        sent something, paho can write, or the store has news; then let paho read, write and
        keep the connection alive. False if the connection is gone."""
        sock = client.socket()
        if sock is None:
            return False
        pending = sock.pending() if hasattr(sock, "pending") else 0  # TLS: bytes already decrypted
        try:
            readable, writable, _ = select.select([sock, self._wake_r], [sock] if client.want_write() else [], [],
                                                  0.0 if pending else timeout)
        except (TypeError, ValueError, OSError):  # the socket was closed under us
            return False
        if self._wake_r in readable:
            try:
                self._wake_r.recv(4096)
            except BlockingIOError:
                pass
        ok = MQTTErrorCode.MQTT_ERR_SUCCESS
        if (sock in readable or pending) and client.loop_read() != ok:
            return False
        if sock in writable and client.loop_write() != ok:
            return False
        return client.loop_misc() == ok

    def _hand_over(self, link: _Link, item: Spooled) -> bool:
        info = link.client.publish(item.topic, item.payload, qos=self._config.qos, retain=item.retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        if info.mid in link.early:  # QoS 0: on_publish fired inside publish()
            if not link.early.pop(info.mid):
                link.acked.append(item.id)
        else:
            link.inflight[info.mid] = item.id
        return True

    def _close(self, link: _Link, lost: bool) -> None:
        broker = self._config.url
        if lost:
            self.last_error = "connection lost"
            log.warning("disconnected from broker broker=%s inflight=%d backlog=%d", broker, len(link.inflight),
                        self._spool.depth)
        else:
            link.client.disconnect()  # a clean DISCONNECT: the broker discards the Will
            link.client.loop(0.5)
            log.info("disconnected cleanly broker=%s flushed=%s backlog=%d", broker, self._flushed,
                     self._spool.depth)

    def _on_publish(self, link: _Link, mid: int, reason_code) -> None:
        failed = reason_code.is_failure  # MQTT 5: >= 128, e.g. "Not authorized"
        spool_id = link.inflight.pop(mid, None)
        if spool_id is None:
            link.early[mid] = failed
        elif failed:
            self.refused += 1
            log.warning("broker refused message spool_id=%d reason=%s", spool_id, reason_code)
        else:
            link.acked.append(spool_id)
