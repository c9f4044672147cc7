"""Simulator fixtures: real pymodbus servers on free TCP ports or on a pty link.

`make_simulator({unit: profile}, kind)` starts one (kind "tcp", "rtu_over_tcp" or "rtu")
and returns the `simulators.plc.Simulator`: its `endpoint`, `request_count()`, `faults`
and `pin()` are what tests read and change. `modbus_config(devices)` builds an agent
Config from device tables (dicts), pointing each at its simulator.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.config import Config, validate
from simulators.plc import Simulator, agent_points, load_profile


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def make(units: dict[int, str], kind: str = "tcp") -> Simulator:
        sim = Simulator({unit: load_profile(name) for unit, name in units.items()}, seed=1)
        sim.start(kind, port=0, serial_port="pty")
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def device_table(name: str, sim: Simulator, unit: int, profile: str, kind: str = "tcp", **extra: Any) -> dict:
    """A [[modbus.devices]] table reading every point of `profile` from `sim`."""
    points = tomllib.loads(agent_points(load_profile(profile)))["modbus"]["devices"]["points"]
    table: dict[str, Any] = {"name": name, "unit": unit, "transport": kind, "points": points,
                             "timeout": 0.5, "retries": 0, "interval": 1}
    if kind == "rtu":
        table["serial"] = {"port": sim.endpoint, "baudrate": 115200, "parity": "N"}
    else:
        host, port = sim.endpoint.rsplit(":", 1)
        table.update(host=host, port=int(port))
    table.update(extra)
    return table


def modbus_config(devices: list[dict]) -> Config:
    return validate({"node": {"id": "test-node"}, "signing": {"key_file": "/nonexistent"},
                     "modbus": {"devices": devices}}, "test")


@pytest.fixture
def sim_device() -> Callable[..., dict]:
    return device_table


@pytest.fixture
def config_of() -> Callable[[list[dict]], Config]:
    return modbus_config
