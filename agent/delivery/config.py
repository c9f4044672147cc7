"""Delivery config sections: `[mqtt]` (the broker and how to reach it) and `[spool]` (disk budget,
durability and drain window of the store-and-forward spool)."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from agent.core.settings import ConfigPath, Name, PositiveDuration, Section

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_UNIT_BYTES = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_size(value: object) -> int:
    """Bytes from an integer or a string such as "64MiB", "500MB" or "1GiB"."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 67108864 or \"64MiB\"")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(float(match.group(1)) * _UNIT_BYTES[match.group(2)])
    raise ValueError(f"{value!r} is not a size: write a number of bytes or \"64MiB\", \"1GiB\"")


def at_least(minimum: int, what: str) -> AfterValidator:
    def check(size: int) -> int:
        if size < minimum:
            raise ValueError(f"{what} needs at least {minimum // 1024}KiB")
        return size
    return AfterValidator(check)


# The smallest spool that holds anything: SQLite's fixed pages, its shared-memory index and
# a bounded WAL take about 160 KiB before the first message (see agent.delivery.spool).
MIN_SPOOL_BYTES = 256 * 1024
SpoolSize = Annotated[int, BeforeValidator(parse_size), at_least(MIN_SPOOL_BYTES, "the spool")]
MemorySize = Annotated[int, BeforeValidator(parse_size), at_least(64 * 1024, "the memory queue")]
FreeSpace = Annotated[int, BeforeValidator(parse_size)]


class SpoolConfig(Section):
    """Store-and-forward spool in `state_dir`: every message waits here until the broker acks it."""

    max_bytes: SpoolSize = Field(
        128 * 1024**2, description="disk budget of the spool: its database, WAL and shared-memory files together, "
        "e.g. \"128MiB\" (at least 256KiB)"
    )
    min_free: FreeSpace = Field(
        256 * 1024**2, description="free space the spool leaves on its file system for the OS (apt, journald): it "
        "stops growing before free space falls below this and keeps new messages in memory instead; \"0\" turns "
        "the reserve off"
    )
    memory_bytes: MemorySize = Field(
        8 * 1024**2, description="in-memory queue used while the spool cannot be written (disk full, read-only, I/O "
        "errors, the reserve reached): the newest messages by priority, lost if the agent stops before the disk "
        "takes them back"
    )
    max_age: PositiveDuration = Field(7 * 86400.0, description="messages older than this are dropped, e.g. \"7d\"")
    sync: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite synchronous mode: \"normal\" (WAL, fsync at checkpoints; a power cut may lose the "
        "last moments of messages) or \"full\" (fsync every write: nothing accepted is lost, more eMMC wear)",
    )
    inflight: int = Field(64, ge=1, le=1000, description="messages handed to MQTT and not yet acknowledged")
    stop_timeout: PositiveDuration = Field(10.0, description="how long a stop waits to flush the backlog")
    report_interval: PositiveDuration = Field(
        60.0, description="how often the node publishes its status (spool depth, drops, collectors)"
    )


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """Host, port and TLS of `mqtt://host[:1883]` or `mqtts://host[:8883]`; ValueError saying how
    to write it otherwise. The one rule for the agent's config and every consumer's --broker."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r} is not a broker URL: write mqtt://host:1883 or mqtts://host:8883")
    if parts.username or parts.password:
        raise ValueError("put no credentials in the URL: use username and password_file")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), tls)


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
        parse_broker_url(url)
        return url

    @property
    def host(self) -> str:
        return parse_broker_url(self.url).host

    @property
    def port(self) -> int:
        return parse_broker_url(self.url).port

    @property
    def uses_tls(self) -> bool:
        return parse_broker_url(self.url).tls


class SettingsFileError(ValueError):
    """A file the MQTT settings name cannot be used; the message starts with the field."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context for an mqtts:// URL (None for mqtt://); SettingsFileError names the file."""
    if not config.uses_tls:
        return None
    tls = config.tls
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsFileError(f"mqtt.tls.ca_file: cannot load {tls.ca_file}: {_reason(exc)}") from None
    if tls.cert_file and tls.key_file:
        for field, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if not path.is_file():
                raise SettingsFileError(f"mqtt.tls.{field}: {path} does not exist or is not a file")
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise SettingsFileError(f"mqtt.tls.cert_file: cannot load {tls.cert_file} with key {tls.key_file}: "
                                    f"{_reason(exc)}") from None
    return context


def read_password(config: MqttConfig) -> str | None:
    if config.password_file is None:
        return None
    try:
        return config.password_file.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsFileError(f"mqtt.password_file: cannot read {config.password_file}: {_reason(exc)}") from None


def settings_file_problems(config: MqttConfig) -> list[str]:
    """Every problem with the files the MQTT settings name (TLS, password), as `field: problem` lines."""
    problems = []
    tls_set = any(path is not None for path in (config.tls.ca_file, config.tls.cert_file, config.tls.key_file))
    if tls_set and not config.uses_tls:
        problems.append(f"mqtt.tls: TLS files are set but mqtt.url {config.url!r} is plain text: "
                        "use mqtts:// or remove [mqtt.tls]")
    for check in (tls_context, read_password):
        try:
            check(config)
        except SettingsFileError as exc:
            problems.append(str(exc))
    return problems
