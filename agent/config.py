"""The agent's configuration: these pydantic models *are* the schema.

`load(path)` returns a `Config` or raises `ConfigError` whose `problems` are ready-made
lines `FILE: dotted.field: what is wrong and how to fix it`. Relative paths inside a
config file are taken relative to that file's folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from agent.collectors.config import CollectorsConfig
from agent.collectors.modbus.config import ModbusConfig
from agent.core.settings import ConfigPath, Name, Section
from agent.delivery.config import MqttConfig, SpoolConfig
from agent.readiness.maintenance import MaintenanceConfig
from agent.readiness.policy import ReadinessConfig
from agent.trust.config import SigningConfig


class NodeConfig(Section):
    """Who this panel PC is: these names appear in every message and topic."""

    id: Name = Field(description="unique node id, e.g. the panel PC's asset tag")
    site: str = Field("", description="plant or site name")
    area: str = Field("", description="line, hall or area on the floor")


class Config(Section):
    """The whole agent configuration (one TOML file)."""

    node: NodeConfig
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    signing: SigningConfig
    state_dir: ConfigPath = Field(Path("/var/lib/edge-agent"), description="where the spool and counters live")
    collectors: CollectorsConfig = Field(default_factory=CollectorsConfig)
    modbus: ModbusConfig = Field(default_factory=ModbusConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    readiness: ReadinessConfig = Field(default_factory=ReadinessConfig)


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds one printable line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(error: dict[str, Any]) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        return "required field is missing: add it"
    if kind == "extra_forbidden":
        return "unknown field: remove it or check its spelling against docs/configuration.md"
    if kind == "literal_error":
        return msg.replace("Input should be", "must be")
    return msg.removeprefix("Value error, ")


def validate(data: dict[str, Any], source: str, base_dir: Path | None = None) -> Config:
    """Build a Config from already-parsed TOML data, or raise ConfigError naming `source`."""
    try:
        return Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        # Errors raised by a model validator carry the model's own location.
        raise ConfigError([f"{source}: {_dotted(e['loc'])}: {_message(e)}" for e in exc.errors()]) from None


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: the config file is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    except (ValueError, RecursionError) as exc:  # found by fuzzing: 5000-digit integers, deep nesting
        raise ConfigError([f"{path}: TOML value out of range or nested too deep: {str(exc)[:120]}"]) from None
    return validate(data, str(path), path.resolve().parent)
