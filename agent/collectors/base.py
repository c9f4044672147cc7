"""The one Collector shape shared by host, patches, posture and every Modbus device."""

from __future__ import annotations

from typing import Protocol

from agent.core.reading import Reading


class Collector(Protocol):
    """Something the daemon runs on a fixed grid of `interval` seconds.

    `collect()` returns the readings of one cycle. It may raise: the daemon logs the
    error, counts it, and runs the collector again on its next tick; other collectors
    are never affected. Blocking work belongs in `asyncio.to_thread`.
    """

    name: str
    interval: float

    async def collect(self) -> list[Reading]: ...

    async def close(self) -> None: ...
