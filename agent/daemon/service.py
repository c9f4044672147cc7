"""The daemon's service: builds collectors from the config, runs each on its own grid, seals every
Reading into the spool, and lets the publisher drain the spool to the broker. Collectors are
isolated: one raising or hanging never stops or delays another.

Service life: SIGTERM/SIGINT stop (publish offline, flush within `spool.stop_timeout`, exit
0); SIGHUP reloads the config file (a config that does not load is logged and the running
one kept); under systemd `Type=notify` it reports READY, STATUS= text and watchdog pings
from the main loop, only while the publisher thread makes progress and no part has failed.

Faults: storage faults are absorbed by the store (agent.delivery.store: memory queue,
quarantine) and reported on the status stream as they happen. Every part runs supervised
(agent.daemon.parts); one that fails for good, or a publisher that gave up, stops the
watchdog pings and the agent (exit 1), so systemd restarts it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent import __version__
from agent import config as config_mod
from agent.collectors import registry
from agent.config import Config
from agent.core import memory
from agent.core.reading import Priority, Reading
from agent.core.schedule import lead_ins, spread_phases
from agent.core.timing import now_ms
from agent.daemon.collecting import CollectorHealth, run_collector, stopped_within
from agent.daemon.parts import PartHealth, supervise
from agent.daemon.runtime import write_runtime
from agent.daemon.sdnotify import Notifier, watchdog_interval
from agent.daemon.sealer import Sealer, config_digest
from agent.delivery import spool
from agent.delivery.config import SettingsFileError, read_password, tls_context
from agent.delivery.message import Message
from agent.delivery.publisher import Lifecycle, Publisher
from agent.delivery.session import Session
from agent.delivery.store import Store, StoreOptions
from agent.readiness import model as readiness
from agent.trust import keys, rotation

log = logging.getLogger(__name__)

STALL_S = 60.0  # a publisher without a heartbeat for this long is hung: stop the watchdog pings
CHANGE_CHECK_S = 1.0  # how soon status.json shows a connection or collector state change
# Readings emitted within this long of the first are sealed and spooled together, in one transaction: the
# devices of a line finish their cycles together, and each transaction costs about as much as its rows.
BURST_S = 0.02


class Agent:
    def __init__(self, config: Config, private_key, *, root: Path = Path("/"),
                 config_path: Path | None = None, notifier: Notifier | None = None, carried: list | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier({})
        self.digest = config_digest(config)
        self.session = Session(config.state_dir)
        self.first_seq = self.session.last_seq + 1  # logged at start: where this session's numbers begin
        self.sealer = Sealer(config, private_key, self.session)
        options = config.spool
        self.spool = Store(config.state_dir / spool.FILENAME, StoreOptions(
            max_bytes=options.max_bytes, max_age_s=options.max_age, sync=options.sync, min_free=options.min_free,
            memory_bytes=options.memory_bytes), accept=self.sealer.vouches_for)
        self.spool.adopt(carried or [])  # what the previous run on a reloaded config held in memory
        self.carried: list = []
        self.collectors = registry.build_all(config, root=root)
        self.health = {c.name: CollectorHealth() for c in self.collectors}
        self.parts = {name: PartHealth() for name in ("report", "status-file", "readiness",
                                                      *(f"collector:{c.name}" for c in self.collectors))}
        self.stop_event = asyncio.Event()
        self.reload_to: tuple[Config, Any] | None = None
        self.exit_status = 0
        self.announced: tuple[int, tuple[str, str]] = (0, ("ok", ""))  # what the status stream has told
        self.latest: dict[str, dict[str, Any]] = {}  # stream -> last sealed seq/ts/body, for the verdict
        self.burst: list[Reading] = []  # emitted, to be sealed and spooled when the burst ends
        self.burst_end: asyncio.TimerHandle | None = None
        self.unsealable = 0  # readings dropped because they could not be sealed (a collector's bug)
        lifecycle = Lifecycle(
            seal_will=lambda: self.sealer.seal(self.status_reading("offline", "connection lost (Last Will, sealed "
                                                                              "when the connection opened)")),
            seal_birth=lambda will: self.sealer.seal(
                self.status_reading("online", "connected", will_seq=json.loads(will.payload)["seq"])),
            seal_goodbye=lambda: self.sealer.seal(
                self.status_reading("offline", "reloading" if self.reload_to else "stopped")),
        )
        self.publisher = Publisher(config.mqtt, config.mqtt.client_id or config.node.id, self.spool, lifecycle,
                                   window=config.spool.inflight)

    def status_reading(self, state: str, reason: str, will_seq: int | None = None) -> Reading:
        identity = self.session.identity
        stats = self.spool.stats()
        # A birth names its connection's Last Will: the broker holds that sequence number until
        # the connection ends, so consumers must not count it as lost meanwhile.
        held = {} if will_seq is None else {"will_seq": will_seq}
        return Reading(kind="status", priority=Priority.SECURITY, retain=True, body={**held,
            "state": state, "reason": reason, "agent_version": __version__, "key_id": self.sealer.kid,
            "config_digest": self.digest, "boot_id": identity.boot_id, "session": identity.session,
            "run": identity.run, "rebooted": identity.rebooted,
            "site": self.config.node.site, "area": self.config.node.area,
            "collectors": sorted(self.health), "devices": [d.name for d in self.config.modbus.devices],
            "collector_state": {name: h.state for name, h in sorted(self.health.items())},
            "spool": {"depth": stats.depth, "bytes": stats.bytes, "dropped_total": stats.dropped_total,
                      "dropped": stats.dropped, "oldest_ms": stats.oldest_ms},
            "storage": self.storage_body(),
            "parts": self.part_states(),
        })

    def storage_body(self) -> dict[str, Any]:
        """What the status stream says about storage: where messages go, why, what was quarantined."""
        health = self.spool.health()
        return {**{k: health[k] for k in ("state", "cause", "since_ms", "last_error", "memory_depth", "memory_bytes",
                                          "free_bytes", "quarantined")},
                "sequence_persisted": self.session.persisted}

    def storage_state(self) -> tuple[str, str]:
        return ("ok" if self.spool.writable else "degraded"), self.spool.cause

    def part_states(self) -> dict[str, str]:
        return {"publisher": self.publisher.state, **{name: part.state for name, part in sorted(self.parts.items())}}

    def spool_rotation_notice(self) -> None:
        """Queue the notice `keygen --rotate` left (pre-signed by the old key), then forget it."""
        key_path = self.config.signing.key_file
        notice = rotation.pending_rotation_notice(key_path)
        if notice is None:
            return
        topic, payload = notice
        self.spool.put_many([Message(topic, payload, rotation.KIND, Priority.TRUST, retain=True)])
        if not self.spool.writable:  # only in memory: keep the file, the next start queues it again
            log.warning("key rotation notice queued in memory only, kept for the next start path=%s", key_path)
            return
        rotation.rotation_notice_published(key_path)
        log.info("key rotation notice spooled topic=%s kid=%s", topic, self.sealer.kid)

    def emit(self, readings: list[Reading]) -> None:
        """Queue readings to be sealed and spooled with the rest of their burst, BURST_S after its first."""
        self.burst.extend(readings)
        if self.burst_end is None:
            self.burst_end = asyncio.get_running_loop().call_later(BURST_S, self.flush)

    def flush(self) -> None:
        """Seal the burst's readings and spool them in one transaction (the store never refuses:
        storage faults go to memory). Sealing at the end of the burst, not at each emit, means a
        crash inside it leaves no gap in the sequence numbers: the readings were never sealed."""
        if self.burst_end is not None:
            self.burst_end.cancel()
            self.burst_end = None
        readings, self.burst = self.burst, []
        if not readings:
            return
        messages = []
        for reading in readings:
            try:
                message, seq, ts_ms = self.sealer.seal_stamped(reading)
            except Exception as exc:  # noqa: BLE001 - one bad reading (a collector's bug) costs itself only
                self.unsealable += 1
                log.error("reading could not be sealed, dropped stream=%s error=%r total=%d", reading.stream, exc,
                          self.unsealable)
                continue
            readiness.remember(self.latest, reading.stream, seq, ts_ms, reading.body)
            messages.append(message)
        try:
            self.spool.put_many(messages)
        except Exception as exc:  # outside any supervised part: stop, so systemd restarts the agent
            log.critical("spooling failed, stopping so the agent is restarted readings=%d error=%r",
                         len(messages), exc, exc_info=exc)
            self.exit_status = 1
            self.stop_event.set()

    def announce_storage(self) -> None:
        """A status event as soon as the spool is quarantined or storage degrades or recovers,
        so the board does not wait for the next periodic report."""
        seen, state = self.announced
        quarantines = self.spool.quarantines
        for record in quarantines[seen:]:
            self.emit([self.status_reading("online", f"spool quarantined: {record.summary}")])
        if (current := self.storage_state()) != state:
            reason = "storage: spool writable again" if current[0] == "ok" else \
                f"storage: {current[1]}, new messages kept in memory"
            self.emit([self.status_reading("online", reason)])
        self.announced = (len(quarantines), self.storage_state())

    def runtime_snapshot(self, stopped: bool = False) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "updated_ms": now_ms(), "stopped": stopped, "node": self.config.node.id,
            "session": self.session.session, "agent_version": __version__, "config_digest": self.digest,
            "broker": {"url": self.config.mqtt.url, "connected": self.publisher.connected,
                       "last_error": self.publisher.last_error, "connections": self.publisher.connections,
                       "refused_messages": self.publisher.refused},
            "publisher": {"state": self.publisher.state, "faults": self.publisher.faults,
                          "last_fault": self.publisher.last_fault},
            "parts": {name: asdict(part) for name, part in sorted(self.parts.items())},
            "storage": self.spool.health(),
            "sequence": {"persisted": self.session.persisted, "write_error": self.session.write_error,
                         "unsealable": self.unsealable},
            "collectors": {name: asdict(h) for name, h in self.health.items()},
        }

    def status_text(self) -> str:
        link = "connected" if self.publisher.connected else f"disconnected ({self.publisher.last_error or 'connecting'})"
        storage = "" if self.spool.writable else f" ({self.spool.cause}: {self.spool.memory.depth} in memory)"
        return f"{link}; spool {self.spool.depth} queued{storage}"

    async def report(self) -> None:
        """Every report interval: expire old messages, publish the node's status, update status.json,
        hand freed heap back to the system."""
        while not await stopped_within(self.stop_event, self.config.spool.report_interval):
            self.spool.maintain()
            self.emit([self.status_reading("online", "periodic")])
            write_runtime(self.config.state_dir, self.runtime_snapshot())
            self.notifier.status(self.status_text())
            memory.release()  # what Modbus cycles and the publisher freed since (about 0.1 ms)

    def _salient(self) -> tuple[Any, ...]:
        """What `status` must show as soon as it changes: the broker link, storage, each part's
        and each collector's state."""
        return (self.publisher.connected, self.publisher.last_error, self.publisher.state, self.storage_state(),
                len(self.spool.quarantines), self.session.persisted, tuple(self.part_states().items()),
                tuple((name, h.state, h.last_ok_ms is None, h.last_error) for name, h in sorted(self.health.items())))

    async def follow_changes(self) -> None:
        """status.json follows a change within a second: one write per change, not per cycle (eMMC wear)."""
        written: tuple[Any, ...] = ()
        while True:
            self.announce_storage()
            if (current := self._salient()) != written:
                write_runtime(self.config.state_dir, self.runtime_snapshot())
                self.notifier.status(self.status_text())
                written = current
            if await stopped_within(self.stop_event, CHANGE_CHECK_S):
                return

    async def publish_readiness(self) -> None:
        """Every readiness interval: the agent's own retained verdict (agent.readiness.model)."""
        while not await stopped_within(self.stop_event, self.config.readiness.interval):
            self.emit([readiness.verdict_reading(self.latest, self.config, now_ms())])

    def problem(self) -> tuple[str, bool] | None:
        """(what is wrong, whether it is for good) if a part is dead, failed or stuck."""
        if self.publisher.failed or not self.publisher.alive:
            return f"publisher {self.publisher.state}: {self.publisher.last_fault or 'thread ended'}", True
        if time.monotonic() - self.publisher.heartbeat >= STALL_S:
            return f"publisher stuck for {time.monotonic() - self.publisher.heartbeat:.0f} s", False
        failed = [f"{name} ({part.last_error})" for name, part in sorted(self.parts.items()) if part.state == "failed"]
        return (f"part failed: {', '.join(failed)}", True) if failed else None

    async def watch(self, ping_every: float | None) -> None:
        """Ping systemd's watchdog (if it has one) only while every part makes progress; stop the
        agent with exit status 1 when a part failed for good, so systemd restarts it."""
        last_ping = float("-inf")
        while not self.stop_event.is_set():
            found = self.problem()
            if found is not None:
                what, for_good = found
                if for_good:
                    log.critical("a part of the agent failed for good, stopping so it is restarted problem=%s", what)
                    self.notifier.status(f"failed: {what}")
                    self.exit_status = 1
                    self.stop_event.set()
                    return
                log.error("withholding the watchdog ping problem=%s", what)
            elif ping_every is not None and time.monotonic() - last_ping >= ping_every:
                self.notifier.watchdog()
                last_ping = time.monotonic()
            await stopped_within(self.stop_event, min(CHANGE_CHECK_S, ping_every or CHANGE_CHECK_S))

    def request_reload(self) -> None:
        """SIGHUP: load the config file again; keep running on the old one if it is unusable."""
        if self.config_path is None:
            log.warning("SIGHUP ignored: no config file to reload")
            return
        try:
            new = config_mod.load(self.config_path)
            private_key = keys.load_private(new.signing.key_file)
            tls_context(new.mqtt)
            read_password(new.mqtt)
        except config_mod.ConfigError as exc:
            for problem in exc.problems:
                log.error("config reload failed, keeping the running config problem=%s", problem)
            return
        except (keys.KeyError_, SettingsFileError) as exc:
            log.error("config reload failed, keeping the running config problem=%s", exc)
            return
        log.info("config reload accepted path=%s digest=%s", self.config_path, config_digest(new))
        self.reload_to = (new, private_key)
        self.stop_event.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        handled: list[int] = []
        for sig, handler in ((signal.SIGTERM, self.stop_event.set), (signal.SIGINT, self.stop_event.set),
                             (signal.SIGHUP, self.request_reload)):
            try:
                loop.add_signal_handler(sig, handler)
                handled.append(sig)
            except (RuntimeError, ValueError):
                pass  # not the main thread (e.g. the demo): the caller sets stop_event
        self.spool_rotation_notice()
        self.publisher.start()
        log.info("agent started node=%s collectors=%d session=%s seq_from=%d spool_depth=%d",
                 self.config.node.id, len(self.collectors), self.session.session, self.first_seq,
                 self.spool.depth)
        slots = [(c.interval, c.phase_group) for c in self.collectors]
        bodies = {f"collector:{c.name}": (lambda c=c, phase=phase, lead_in=lead_in: run_collector(
            c, self.emit, self.stop_event, health=self.health[c.name], phase=phase, lead_in=lead_in))
            for c, phase, lead_in in zip(self.collectors, spread_phases(slots), lead_ins(slots))}
        bodies.update({"report": self.report, "status-file": self.follow_changes, "readiness": self.publish_readiness})
        tasks = [asyncio.create_task(supervise(name, body, self.parts[name], self.stop_event), name=name)
                 for name, body in bodies.items()]
        tasks.append(asyncio.create_task(self.watch(watchdog_interval()), name="watch"))
        write_runtime(self.config.state_dir, self.runtime_snapshot())
        self.notifier.ready(self.status_text())
        memory.release()  # what start-up parsed and built and dropped (config, schemas, imports)
        await self.stop_event.wait()
        reloading = self.reload_to is not None
        self.notifier.notify("RELOADING=1" if reloading else "STOPPING=1")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for collector in self.collectors:
            await collector.close()
        self.flush()  # the last burst, before the publisher's final flush and goodbye
        flushed = await asyncio.to_thread(self.publisher.stop, self.config.spool.stop_timeout)
        write_runtime(self.config.state_dir, self.runtime_snapshot(stopped=True))
        log.info("agent stopped node=%s flushed=%s backlog=%d reload=%s exit_status=%d", self.config.node.id,
                 flushed, self.spool.depth, reloading, self.exit_status)
        self.carried = self.spool.close(hand_over=reloading)
        for sig in handled:
            loop.remove_signal_handler(sig)


def run(config: Config, *, config_path: Path | None = None, root: Path = Path("/")) -> int:
    """Run until stopped; a SIGHUP with a good config restarts the internals on the new one."""
    memory.limit_arenas()  # before the publisher and collector threads start
    private_key = keys.load_private(config.signing.key_file)
    notifier = Notifier()
    carried: list = []
    while True:
        try:
            agent = Agent(config, private_key, root=root, config_path=config_path, notifier=notifier,
                          carried=carried)
        except (SettingsFileError, OSError) as exc:  # MQTT files (storage faults never stop a start)
            log.error("cannot start: %s", exc)
            return 2
        asyncio.run(agent.run())
        if agent.reload_to is None or agent.exit_status:
            return agent.exit_status
        config, private_key = agent.reload_to
        carried = agent.carried
        log.info("running on the reloaded config path=%s", config_path)
