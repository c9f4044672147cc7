"""Modbus collectors for the daemon: one per device, named "modbus/<device>".

`build(config)` imports nothing from pymodbus itself (clients are created on first
connect), so an agent without Modbus devices never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.collectors.modbus.poller import DevicePoller
from agent.collectors.modbus.transports import Lines
from agent.core.reading import Priority, Reading
from agent.core.timing import Backoff, now_ms

if TYPE_CHECKING:
    from agent.config import Config


@dataclass
class ModbusCollector:
    """Collector for one device; `collect()` runs one poll cycle (the daemon keeps the grid)."""

    name: str
    interval: float
    poller: DevicePoller
    lines: Lines

    @property
    def phase_group(self) -> str:
        return self.poller.device.line  # devices on one line take turns on it: they start together

    async def collect(self) -> list[Reading]:
        taken_ms = now_ms()
        body = await self.poller.poll()
        return [Reading(kind="modbus", subject=self.poller.device.name, body=body, priority=Priority.BULK,
                        ts_ms=taken_ms)]

    async def close(self) -> None:
        self.lines.close()


def build(config: Config, *, root: Path = Path("/"), backoff: Backoff = Backoff()) -> list[ModbusCollector]:
    """One collector per configured device; devices on one line share its connection."""
    lines = Lines(backoff)
    return [
        ModbusCollector(f"modbus/{device.name}", device.interval,
                        DevicePoller(device, lines.for_device(device), backoff=backoff), lines)
        for device in config.modbus.devices
    ]
