"""The agent's configuration: these pydantic models *are* the schema.

`load(path)` returns a `Config` or raises `ConfigError` whose `problems` are ready-made
lines `FILE: dotted.field: what is wrong and how to fix it`. Relative paths inside a
config file are taken relative to that file's folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.functional_validators import AfterValidator

from agent.core.settings import Name, PositiveDuration, Section
from agent.collectors.patches.config import MaintenanceConfig, PatchesConfig, PostureConfig
from agent.modbus.config import ModbusConfig
from agent.readiness.policy import ReadinessConfig
from agent.delivery.config import SpoolConfig


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return value if value.is_absolute() or base is None else (Path(base) / value)


ConfigPath = Annotated[Path, AfterValidator(_resolve)]
"""A file or folder path; relative ones are resolved against the config file's folder."""


class NodeConfig(Section):
    """Who this panel PC is: these names appear in every message and topic."""

    id: Name = Field(description="unique node id, e.g. the panel PC's asset tag")
    site: str = Field("", description="plant or site name")
    area: str = Field("", description="line, hall or area on the floor")


class TlsConfig(Section):
    """TLS towards the broker (used when the URL is mqtts://); never falls back to plain text."""

    ca_file: ConfigPath | None = Field(None, description="CA bundle that signed the broker's certificate")
    cert_file: ConfigPath | None = Field(None, description="client certificate for mutual TLS")
    key_file: ConfigPath | None = Field(None, description="client certificate's private key")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> "TlsConfig":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file for mutual TLS, or neither")
        return self


class MqttConfig(Section):
    """The plant's MQTT broker and how this node talks to it."""

    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port, or mqtts://host:port for TLS")
    client_id: str = Field("", description="MQTT client id; empty means the node id")
    topic_prefix: Name = Field("edge", description="first topic level of every message")
    qos: Literal[0, 1] = Field(1, description="1 (at least once) unless you accept losing messages")
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive: int = Field(30, ge=5, le=3600, description="seconds")
    username: str = ""
    password_file: ConfigPath | None = Field(None, description="file holding the password (never inline)")
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{url!r} is not a broker URL: write mqtt://host:1883 or mqtts://host:8883")
        if parts.username or parts.password:
            raise ValueError("put no credentials in the URL: use username and password_file")
        try:
            parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in {url!r}: {exc}") from None
        return url

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class SigningConfig(Section):
    """The node's own signing key; consumers trust its public half (`<key_file>.pub`)."""

    key_file: ConfigPath = Field(description="the node's Ed25519 private key (PEM, mode 0600)")


class HostCollectorConfig(Section):
    """Host health: CPU, memory, disks, temperatures, clock sync, failed units."""

    enabled: bool = True
    interval: PositiveDuration = Field(30.0, description="how often to sample")


class CollectorsConfig(Section):
    """Which collectors run and how often."""

    host: HostCollectorConfig = Field(default_factory=HostCollectorConfig)
    patches: PatchesConfig = Field(default_factory=PatchesConfig)
    posture: PostureConfig = Field(default_factory=PostureConfig)


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
