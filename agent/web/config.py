"""The board's web side configuration (`edge-agent board --config board.toml`): where it listens,
HTTPS, a reverse proxy it trusts, sessions and the login rate limit. These pydantic models are
the schema; docs/configuration.md's board table is generated from them. Command-line flags
(--listen, --insecure-listen) override the file."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from agent.core.settings import ConfigPath, PositiveDuration, Section
from agent.web.server import parse_listen

DEFAULT_NAME = "board.toml"
HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class BoardTlsConfig(Section):
    """HTTPS served by the board itself (PEM files, as for the broker's TLS); unset: plain HTTP."""

    cert_file: ConfigPath | None = Field(None, description="the board's certificate chain (PEM), leaf first")
    key_file: ConfigPath | None = Field(None, description="the certificate's private key (PEM, readable by the "
                                                          "board's user only)")
    client_ca_file: ConfigPath | None = Field(None, description="require browsers to present a client certificate "
                                                                "signed by this CA (mutual TLS), before any login")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> BoardTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file for HTTPS, or neither")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("client_ca_file needs HTTPS: set cert_file and key_file too")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class ProxyConfig(Section):
    """A reverse proxy in front of the board that terminates TLS (config/nginx-board.conf)."""

    trusted: list[str] = Field(default_factory=list, description="addresses or networks (CIDR) of the proxies "
                               "whose forwarding headers are believed; from anyone else they are ignored")
    client_header: str = Field("X-Forwarded-For", description="header holding the client address chain")
    proto_header: str = Field("X-Forwarded-Proto", description="header holding the scheme the client used")

    @field_validator("trusted")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an address or network: write e.g. \"10.0.0.5\" or "
                                 "\"10.0.0.0/24\"") from None
        return values

    @field_validator("client_header", "proto_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not HEADER.match(value):
            raise ValueError(f"{value!r} is not an HTTP header name: letters, digits and '-'")
        return value


class SessionConfig(Section):
    """Browser sessions after a login."""

    lifetime: PositiveDuration = Field(8 * 3600.0, description="a login lasts this long, then the board asks "
                                                               "again, e.g. \"8h\"")


class LoginLimitConfig(Section):
    """The login rate limit, per user name and per client address."""

    failures: int = Field(5, ge=1, le=1000, description="failed logins allowed within the window")
    window: PositiveDuration = Field(300.0, description="the sliding window, e.g. \"5m\"")


class BoardConfig(Section):
    """The board's web side: where it listens and who may in (`edge-agent board --config board.toml`)."""

    listen: str = Field("127.0.0.1:8080", description="HOST:PORT; anything but loopback needs HTTPS (tls or "
                                                      "proxy.trusted) and at least one user")
    insecure_listen: bool = Field(False, description="labs only: allow a non-loopback address without HTTPS or "
                                                     "users (warns at every start)")
    tls: BoardTlsConfig = Field(default_factory=BoardTlsConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    login: LoginLimitConfig = Field(default_factory=LoginLimitConfig)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value


def load(path: Path) -> BoardConfig:
    """The validated board config; agent.config.ConfigError with one line per problem otherwise."""
    from agent.config import load_as

    return load_as(BoardConfig, path, DEFAULT_NAME)
