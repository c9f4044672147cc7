"""The daemon: builds collectors from the config, runs each on its own grid, seals every
Reading and hands it to the publisher. Collectors are isolated: one raising or hanging never
stops or delays another.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path

from agent import __version__, envelope, keys
from agent.collectors.base import Collector
from agent.config import Config
from agent.publisher import Publisher
from agent.reading import Priority, Reading
from agent.schedule import next_tick

log = logging.getLogger(__name__)


def topic_for(prefix: str, node: str, stream: str) -> str:
    return f"{prefix}/{node}/{stream}"


class Sealer:
    """Turns Readings into signed (topic, payload) pairs with this node's identity."""

    def __init__(self, config: Config, private_key, *, session: str, first_seq: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        self.private_key = private_key
        self.kid = keys.key_id(private_key.public_key())
        self.node = config.node.id
        self.prefix = config.mqtt.topic_prefix
        self.session = session
        self.seq = first_seq
        self._clock = clock

    def seal(self, reading: Reading) -> tuple[str, bytes]:
        topic = topic_for(self.prefix, self.node, reading.stream)
        payload = envelope.seal(
            self.private_key, kid=self.kid, node=self.node, topic=topic, kind=reading.kind,
            session=self.session, seq=self.seq, ts_ms=reading.ts_ms or int(self._clock() * 1000),
            body=reading.body,
        )
        self.seq += 1
        return topic, payload


def build_collectors(config: Config, root: Path = Path("/")) -> list[Collector]:
    collectors: list[Collector] = []
    if config.collectors.host.enabled:
        from agent.collectors import host
        collectors.append(host.build(config, root=root))
    if config.modbus.devices:
        from agent.modbus import collector as modbus
        collectors.extend(modbus.build_all(config))
    return collectors


def status_reading(config: Config, kid: str, state: str, collectors: list[Collector]) -> Reading:
    return Reading(kind="status", priority=Priority.SECURITY, retain=True, body={
        "state": state, "agent_version": __version__, "key_id": kid,
        "site": config.node.site, "area": config.node.area,
        "collectors": sorted(c.name for c in collectors),
    })


async def run_collector(collector: Collector, emit: Callable[[Reading], None], stop: asyncio.Event,
                        clock: Callable[[], float] = time.monotonic) -> None:
    """Run `collector` on its grid until `stop` is set; errors are logged and counted."""
    start = clock()
    failures = 0
    tick = start
    while not stop.is_set():
        try:
            readings = await asyncio.wait_for(collector.collect(), timeout=max(collector.interval, 10.0))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a collector's failure must never stop the daemon
            failures += 1
            log.warning("collector failed collector=%s error=%r consecutive=%d", collector.name, exc, failures)
        else:
            if failures:
                log.info("collector recovered collector=%s after=%d", collector.name, failures)
            failures = 0
            for reading in readings:
                emit(reading)
        tick = next_tick(start, collector.interval, clock())
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, tick - clock()))
        except TimeoutError:
            pass


class Agent:
    def __init__(self, config: Config, private_key, *, root: Path = Path("/")) -> None:
        self.config = config
        self.sealer = Sealer(config, private_key, session=secrets.token_hex(8))
        self.collectors = build_collectors(config, root)
        self.stop_event = asyncio.Event()
        offline = self.sealer.seal(status_reading(config, self.sealer.kid, "offline", self.collectors))
        self.publisher = Publisher(config.mqtt, config.mqtt.client_id or config.node.id, will=offline)

    def emit(self, reading: Reading) -> None:
        topic, payload = self.sealer.seal(reading)
        self.publisher.publish(topic, payload, retain=reading.retain)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop_event.set)
            except (RuntimeError, ValueError):
                pass  # not the main thread (e.g. the demo): the caller sets stop_event
        self.publisher.start()
        self.emit(status_reading(self.config, self.sealer.kid, "online", self.collectors))
        log.info("agent started node=%s collectors=%d session=%s", self.config.node.id,
                 len(self.collectors), self.sealer.session)
        tasks = [asyncio.create_task(run_collector(c, self.emit, self.stop_event), name=c.name)
                 for c in self.collectors]
        await self.stop_event.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for collector in self.collectors:
            await collector.close()
        self.emit(status_reading(self.config, self.sealer.kid, "offline", self.collectors))
        await asyncio.to_thread(self.publisher.stop)
        log.info("agent stopped node=%s", self.config.node.id)


def run(config: Config, *, root: Path = Path("/")) -> int:
    private_key = keys.load_private(config.signing.key_file)
    asyncio.run(Agent(config, private_key, root=root).run())
    return 0
