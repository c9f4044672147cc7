"""The board's web side configuration (`edge-agent board --config board.toml`): where it listens,
HTTPS, a reverse proxy it trusts, sessions, the login rate limit and single sign-on. These pydantic models are
the schema; docs/configuration.md's board table is generated from them. Command-line flags
(--listen, --insecure-listen) override the file."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from agent.core.settings import ConfigPath, PositiveDuration, Problem, Section, every_problem, is_loopback
from agent.web.server import parse_listen

DEFAULT_NAME = "board.toml"
HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
CALLBACK_PATH = "/login/oidc/callback"  # where the OpenID Connect provider sends browsers back
DEFAULT_SCOPES = ("openid", "profile", "email")


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


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a provider or callback address: https, or http on loopback only (tests, labs)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return None
    return f"{url!r} must be an https:// URL (plain http only to localhost, for a lab)"


class OidcConfig(Section):
    """Single sign-on through the company's OpenID Connect provider. Local users keep working beside it.
    Register the board at the provider as a confidential client with the redirect URL below."""

    name: str = Field("single sign-on", min_length=1, max_length=64,
                      description='the provider as people know it: the login page shows "Sign in with NAME"')
    issuer: str = Field(description="the provider's issuer URL, exactly as its discovery document and ID tokens "
                                    "state it, e.g. https://login.example.com/realms/plant")
    client_id: str = Field(min_length=1, description="the board's client id at the provider")
    client_secret_file: ConfigPath = Field(description="file holding the client secret (never inline; read at "
                                                       "start, never logged)")
    redirect_url: str = Field(description=f"the board's callback as browsers reach it, registered at the provider: "
                                          f"https://BOARD{CALLBACK_PATH}")
    ca_file: ConfigPath | None = Field(None, description="CA bundle for the provider's certificate (default: the "
                                                         "system's trust store)")
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES),
                              description="scopes asked for; some providers send the groups claim only with a "
                                          "'groups' scope")
    username_claim: str = Field("preferred_username", min_length=1,
                                description="the ID token claim that names the user on the board and in the audit")
    groups_claim: str = Field("groups", min_length=1, description="the ID token claim listing the user's groups")
    admin_groups: list[str] = Field(default_factory=list, description="members of any of these sign in as admin")
    viewer_groups: list[str] = Field(default_factory=list, description="members of any of these (and no admin "
                                                                       "group) sign in as viewer")
    timeout: PositiveDuration = Field(10.0, description="for each request to the provider")

    @field_validator("issuer", "redirect_url")
    @classmethod
    def _https(cls, url: str) -> str:
        if problem := url_problem(url):
            raise ValueError(problem)
        return url

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: Any) -> Any:
        return every_problem(cls, data, handler, _config_problems)


def _config_problems(value: Any) -> list[Problem]:
    get = value.get if isinstance(value, dict) else lambda name, default=None: getattr(value, name, default)
    problems: list[Problem] = []
    redirect = get("redirect_url")
    if isinstance(redirect, str) and urlsplit(redirect).path.rstrip("/") != CALLBACK_PATH:
        problems.append((("redirect_url",), f"must end in {CALLBACK_PATH} (the board's callback), e.g. "
                                            + f"https://board.example.com{CALLBACK_PATH}"))
    scopes = get("scopes", list(DEFAULT_SCOPES))
    if isinstance(scopes, list) and "openid" not in scopes:
        problems.append((("scopes",), "must include \"openid\" (without it the provider sends no ID token)"))
    admin, viewer = get("admin_groups", []), get("viewer_groups", [])
    if isinstance(admin, list) and isinstance(viewer, list):
        if not admin and not viewer:
            problems.append((("admin_groups",), "name at least one group in admin_groups or viewer_groups: "
                                                + "without one nobody could sign in"))
        if both := sorted(set(admin) & set(viewer), key=str):
            problems.append((("viewer_groups",), f"{', '.join(map(str, both))} also in admin_groups: "
                                                 + "list each group once"))
    return problems


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
    oidc: OidcConfig | None = Field(None, description="single sign-on through the company's OpenID Connect "
                                                      "provider, beside local users (docs/oidc.md)")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value


def load(path: Path) -> BoardConfig:
    """The validated board config; agent.config.ConfigError with one line per problem otherwise."""
    from agent.config import load_as

    return load_as(BoardConfig, path, DEFAULT_NAME)
