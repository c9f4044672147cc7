"""Simulator fixtures: real pymodbus servers on free TCP ports or on a pty link.

`make_simulator({unit: profile}, kind)` starts one (kind "tcp", "rtu_over_tcp" or "rtu")
and returns the `simulators.plc.Simulator`: its `endpoint`, `request_count()`, `faults`
and `pin()` are what tests read and change. `modbus_config(devices)` builds an agent
Config from device tables (dicts), pointing each at its simulator.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config, validate
from simulators.plc import Simulator, agent_points, load_profile

# Tests in this folder write `from conftest import free_port, wait_for_port`, and under
# pytest's prepend import mode "conftest" then names this file: re-export those helpers
# from tests/conftest.py (loaded under its own name, so its fixtures are not registered twice).
_spec = importlib.util.spec_from_file_location("_tests_root_conftest", Path(__file__).parents[1] / "conftest.py")
assert _spec is not None and _spec.loader is not None
_root = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
free_port = _root.free_port
wait_for_port = _root.wait_for_port


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
