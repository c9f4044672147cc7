"""The agent's configuration: these pydantic models *are* the schema.

`load(path)` returns a `Config` or raises `ConfigError` whose `problems` are ready-made
lines `FILE: dotted.field: what is wrong and how to fix it`. Relative paths inside a
config file are taken relative to that file's folder.
"""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from agent.collectors.config import CollectorsConfig
from agent.collectors.modbus.config import ModbusConfig
from agent.core.settings import ConfigPath, Name, Section
from agent.delivery.config import MqttConfig, SpoolConfig, settings_file_problems
from agent.readiness.maintenance import MaintenanceConfig
from agent.readiness.policy import ReadinessConfig
from agent.trust import keys
from agent.trust.config import SigningConfig

M = TypeVar("M", bound=BaseModel)


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


def _given(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {json.dumps(value)}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# pydantic's error types in plain words: what the field must be, then what it was given.
_MUST_BE = {
    "bool_type": "must be true or false", "int_type": "must be a whole number",
    "float_type": "must be a number", "string_type": "must be text in quotes",
    "list_type": "must be a list, e.g. [1, 2]", "dict_type": "must be a table", "model_type": "must be a table",
    "datetime_type": "must be a date and time, e.g. 2026-12-27T06:00:00",
    "path_type": "must be a path in quotes", "int_from_float": "must be a whole number",
}


def _message(error: dict[str, Any]) -> str:
    kind, msg, ctx = error["type"], error["msg"], error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing: add it"
    if kind == "extra_forbidden":
        return "unknown field: remove it or check its spelling against docs/configuration.md"
    given = f" (got {_given(error.get('input'))})"
    if kind in _MUST_BE:
        return _MUST_BE[kind] + given
    bounds = {"less_than_equal": "at most {le}", "less_than": "below {lt}", "greater_than_equal": "at least {ge}",
              "greater_than": "above {gt}"}
    if kind in bounds:
        return "must be " + bounds[kind].format(**ctx) + given
    if kind in ("too_short", "too_long"):
        return f"needs {'at least' if kind == 'too_short' else 'at most'} " \
               f"{ctx.get('min_length', ctx.get('max_length'))} item(s)"
    if kind == "literal_error":
        return msg.replace("Input should be", "must be") + given
    return msg.removeprefix("Value error, ").replace("Input should be", "must be")


def validate(data: dict[str, Any], source: str, base_dir: Path | None = None) -> Config:
    """Build a Config from already-parsed TOML data, or raise ConfigError naming `source`."""
    return validate_as(Config, data, source, base_dir)


def validate_as(model: type[M], data: dict[str, Any], source: str, base_dir: Path | None = None) -> M:
    """Any config model (the agent's, the board's) from parsed TOML, or ConfigError naming `source`."""
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        # Errors raised by a model validator carry the model's own location.
        raise ConfigError([f"{source}: {_dotted(e['loc'])}: {_message(e)}" for e in exc.errors()]) from None


MAX_CONFIG_BYTES = 1024 * 1024  # far above any real config; bounds what a wrong path can cost
DEFAULT_NAME = "agent.toml"


def _read_config_file(path: Path, default_name: str = DEFAULT_NAME) -> bytes:
    """The file's bytes; ConfigError for a folder without agent.toml, a FIFO or device, a huge file."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError([f"{path}: is a folder, not a config file: give the file, e.g. {path / default_name}"])
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError([f"{path}: not a regular file (a device, pipe or socket): give the TOML config file"])
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: {info.st_size} bytes is too large for a config file "
                               f"(limit {MAX_CONFIG_BYTES}): is this the right file?"])
        with path.open("rb") as handle:
            return handle.read(MAX_CONFIG_BYTES + 1)[:MAX_CONFIG_BYTES]
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None


def resolve_path(path: str | Path, default_name: str = DEFAULT_NAME) -> Path:
    """A config file path as given, or the agent.toml inside a folder given instead."""
    path = Path(path)
    return path / default_name if path.is_dir() and (path / default_name).is_file() else path


def load(path: str | Path) -> Config:
    """Parse and validate one TOML config file (a UTF-8 byte order mark is allowed)."""
    return load_as(Config, path)


def load_as(model: type[M], path: str | Path, default_name: str = DEFAULT_NAME) -> M:
    """`load` for any config model; `default_name` is the file looked for in a folder given instead."""
    path = resolve_path(path, default_name)
    raw = _read_config_file(path, default_name)
    try:
        data = tomllib.loads(raw.decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: the config file is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    except (ValueError, RecursionError) as exc:  # found by fuzzing: 5000-digit integers, deep nesting
        raise ConfigError([f"{path}: TOML value out of range or nested too deep: {str(exc)[:120]}"]) from None
    return validate_as(model, data, str(path), path.resolve().parent)


def file_problems(config: Config, source: str) -> list[str]:
    """What the text alone cannot show: the files the config names exist, can be read, and hold
    what they should (the signing key, with a safe mode; TLS files; the MQTT password)."""
    problems = []
    try:
        keys.load_private(config.signing.key_file)
    except keys.KeyError_ as exc:
        problems.append(f"signing.key_file: {exc}")
    problems += settings_file_problems(config.mqtt)
    return [f"{source}: {problem}" for problem in problems]


def load_checked(path: str | Path) -> Config:
    """`load`, then `file_problems`: what `check-config` and `run` accept."""
    config = load(path)
    problems = file_problems(config, str(resolve_path(path)))
    if problems:
        raise ConfigError(problems)
    return config
