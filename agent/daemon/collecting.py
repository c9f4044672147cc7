"""Each collector on its own fixed grid: one raising or hanging never stops or delays another."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.collectors.base import Collector
from agent.core.reading import Reading
from agent.core.schedule import next_tick
from agent.core.timing import now_ms

log = logging.getLogger(__name__)


@dataclass
class CollectorHealth:
    state: str = "starting"  # "ok", "failing", or what the readings report (a device's "offline")
    failures: int = 0
    last_ok_ms: int | None = None
    last_error: str = ""


def reported_state(readings: list[Reading]) -> tuple[str, str] | None:
    """(state, last error) a reading reports about its subject in `body.status`, as Modbus
    devices do (online, degraded, offline); None if it reports none."""
    for reading in readings:
        status = reading.body.get("status")
        if isinstance(status, dict) and isinstance(status.get("state"), str):
            error = status.get("last_error")
            return status["state"], "" if error is None or status["state"] == "online" else str(error)[:200]
    return None


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`, waking early when `stop` is set; True if it was."""
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, seconds)):  # a timer, not a task per sleep as wait_for makes
            await stop.wait()
    except TimeoutError:
        return False
    return True


async def run_collector(collector: Collector, emit: Callable[[list[Reading]], None], stop: asyncio.Event,
                        clock: Callable[[], float] = time.monotonic, health: CollectorHealth | None = None,
                        phase: float = 0.0, lead_in: float = 0.0) -> None:
    """Run `collector` on its grid (ticks `phase` + k x interval seconds from now; the first
    cycle `lead_in` s after the first tick: agent.core.schedule.lead_ins) until `stop` is set;
    errors are logged and counted."""
    health = health or CollectorHealth()
    start = clock() + phase
    if await stopped_within(stop, phase + lead_in):
        return
    while not stop.is_set():
        try:
            async with asyncio.timeout(max(collector.interval, 10.0)):
                readings = await collector.collect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a collector's failure must never stop the daemon
            health.failures += 1
            health.state, health.last_error = "failing", repr(exc)[:200]
            log.warning("collector failed collector=%s error=%r consecutive=%d", collector.name, exc, health.failures)
        else:
            if health.failures:
                log.info("collector recovered collector=%s after=%d", collector.name, health.failures)
            health.failures = 0
            health.state, health.last_error = reported_state(readings) or ("ok", "")
            if health.state != "offline":  # an offline device is not "ok" just because we asked
                health.last_ok_ms = now_ms()
            emit(readings)
        await stopped_within(stop, next_tick(start, collector.interval, clock()) - clock())
