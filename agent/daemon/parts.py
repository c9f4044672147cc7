"""No silent death: each part of the daemon (a collector's loop, the status report, the status
file, the readiness verdict) runs supervised. An unexpected error is logged with its cause
and traceback and the part starts over after a backoff; a part that ran `STEADY_S` before
failing counts as recovered. After `MAX_FAILURES` in a row the part is given up (state
"failed"): the daemon then stops pinging systemd's watchdog and exits 1, and systemd
restarts the agent (agent.daemon.service)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.core.timing import Backoff, now_ms
from agent.daemon.collecting import stopped_within

log = logging.getLogger(__name__)

RESTART = Backoff(base=1.0, cap=30.0)
MAX_FAILURES = 5
STEADY_S = 60.0


@dataclass
class PartHealth:
    state: str = "starting"  # running, restarting, failed, stopped
    restarts: int = 0
    last_error: str = ""
    last_error_ms: int | None = None


async def supervise(name: str, body: Callable[[], Awaitable[None]], health: PartHealth, stop: asyncio.Event, *,
                    clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random) -> None:
    """Run `body()` until it returns or `stop` is set, starting it over after each unexpected error."""
    in_a_row = 0
    while not stop.is_set():
        started = clock()
        health.state = "running"
        try:
            await body()
        except asyncio.CancelledError:
            health.state = "stopped"
            raise
        except Exception as exc:  # noqa: BLE001 - the point: whatever it was, it is logged and survived
            in_a_row = 1 if clock() - started >= STEADY_S else in_a_row + 1
            health.restarts += 1
            health.last_error, health.last_error_ms = repr(exc)[:300], now_ms()
            if in_a_row >= MAX_FAILURES:
                health.state = "failed"
                log.critical("part gave up part=%s failures_in_a_row=%d error=%r", name, in_a_row, exc, exc_info=exc)
                return
            delay = RESTART.delay(in_a_row, rand)
            health.state = "restarting"
            log.error("part failed, restarting part=%s error=%r in_a_row=%d restart_in_s=%.1f", name, exc,
                      in_a_row, delay, exc_info=exc)
            if await stopped_within(stop, delay):
                break
            continue
        break
    health.state = "stopped"
