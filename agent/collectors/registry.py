"""The one list of collector families; each module offers `build(config, *, root) -> list[Collector]`.

The daemon runs `build_all`; `edge-agent collect NAME` runs one collector once (`build_one`).
Modules are imported only when their family is enabled, so an agent without Modbus devices
never loads the Modbus collector.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from agent.collectors.base import Collector
from agent.core.reading import Reading

if TYPE_CHECKING:
    from agent.config import Config

FAMILIES = {
    "host": "agent.collectors.host.collector",
    "patches": "agent.collectors.patches.collector",
    "posture": "agent.collectors.posture.collector",
    "modbus": "agent.collectors.modbus.collector",
}


class UnknownCollector(Exception):
    pass


def build_family(family: str, config: Config, *, root: Path = Path("/")) -> list[Collector]:
    return importlib.import_module(FAMILIES[family]).build(config, root=root)


def enabled(family: str, config: Config) -> bool:
    """Whether the config turns a family on, asked before its module is imported."""
    return bool(config.modbus.devices) if family == "modbus" else getattr(config.collectors, family).enabled


def build_all(config: Config, *, root: Path = Path("/")) -> list[Collector]:
    """Every enabled collector of the config, in FAMILIES order; a disabled family's module is
    never imported (a few hundred KiB RSS of modules an agent without it does not need)."""
    return [collector for family in FAMILIES if enabled(family, config)
            for collector in build_family(family, config, root=root)]


def build_one(name: str, config: Config, *, root: Path = Path("/")) -> Collector:
    """The collector called `name` ("host", "patches", "posture" or "modbus/<device>")."""
    family = name.split("/", 1)[0]
    if family not in FAMILIES or (family == "modbus") != ("/" in name):
        raise UnknownCollector(f"unknown collector {name!r}: choose host, patches, posture or modbus/<device>")
    built = build_family(family, config, root=root)
    for collector in built:
        if collector.name == name:
            return collector
    if family != "modbus":
        raise UnknownCollector(f"collector {name} is disabled in the config (collectors.{name}.enabled = false)")
    devices = ", ".join(c.name for c in built) or "none configured (use -c FILE)"
    raise UnknownCollector(f"no Modbus device {name[7:]!r}; devices: {devices}")


async def collect_once(collector: Collector) -> list[Reading]:
    try:
        return await collector.collect()
    finally:
        await collector.close()
