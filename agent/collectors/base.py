"""The one Collector shape shared by host, patches, posture and every Modbus device."""

from __future__ import annotations

import asyncio
from typing import Protocol

from agent.core import memory
from agent.core.reading import Reading


class Collector(Protocol):
    """Something the daemon runs on a fixed grid of `interval` seconds.

    `collect()` returns the readings of one cycle. It may raise: the daemon logs the
    error, counts it, and runs the collector again on its next tick; other collectors
    are never affected. Each collector module offers `build(config, *, root) -> list[Collector]`
    (empty when its section is disabled); `agent.collectors.registry` holds the one list of them.
    """

    name: str
    interval: float

    @property
    def phase_group(self) -> str:
        """Collectors of one group (and interval) start their cycles together
        (agent.core.schedule.spread_phases): the devices of one Modbus line; else the name."""
        ...

    async def collect(self) -> list[Reading]: ...

    async def close(self) -> None: ...


class BlockingCollector:
    """Base of collectors whose cycle is blocking work (psutil, files, child processes):
    `read()` runs in a worker thread, so the event loop and every other collector go on.
    What a cycle read and dropped goes back to the system afterwards (agent.core.memory)."""

    name: str
    interval: float

    @property
    def phase_group(self) -> str:
        return self.name

    def read(self) -> list[Reading]:
        raise NotImplementedError

    def _read_and_release(self) -> list[Reading]:
        try:
            return self.read()
        finally:
            memory.release()

    async def collect(self) -> list[Reading]:
        return await asyncio.to_thread(self._read_and_release)

    async def close(self) -> None:
        return None
