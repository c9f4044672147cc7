"""Find a collector by name for one-shot use (`edge-agent collect NAME`)."""

from __future__ import annotations

import importlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.collectors.base import Collector
from agent.config import Config, validate
from agent.core.reading import Reading

# name -> module with `build(config, *, root) -> Collector`
MODULES = {"host": "agent.collectors.host", "patches": "agent.collectors.patches",
           "posture": "agent.collectors.posture"}


class UnknownCollector(Exception):
    pass


def default_config() -> Config:
    """Enough config to run host, patches and posture once without a config file."""
    return validate({"node": {"id": socket.gethostname()[:64] or "local"},
                     "signing": {"key_file": "/dev/null"}, "state_dir": "/nonexistent"}, "(defaults)")


def build_one(name: str, config: Config | None, *, root: Path = Path("/")) -> Collector:
    config = config or default_config()
    if name in MODULES:
        return importlib.import_module(MODULES[name]).build(config, root=root)
    if name.startswith("modbus/"):
        from agent.modbus import collector as modbus

        for candidate in modbus.build_all(config):
            if candidate.name == name:
                return candidate
        devices = ", ".join(f"modbus/{d.name}" for d in config.modbus.devices) or "none configured (use -c)"
        raise UnknownCollector(f"no Modbus device {name[7:]!r}; devices: {devices}")
    raise UnknownCollector(f"unknown collector {name!r}: choose host, patches, posture or modbus/<device>")


async def collect_once(collector: Collector) -> list[Reading]:
    try:
        return await collector.collect()
    finally:
        await collector.close()


def flatten(value: Any, prefix: str = "") -> Iterator[str]:
    """`dotted.path = value` lines, for reading a body in a terminal."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield f"{prefix} = {value}"
