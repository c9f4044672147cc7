"""Config sections for the patches collector and the agreed maintenance windows."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from agent.core.settings import PositiveDuration, Section

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Severity = Literal["critical", "important", "moderate", "low", "unspecified"]
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class PatchesConfig(Section):
    """Pending updates, security fixes, index freshness and reboot state."""

    enabled: bool = True
    interval: PositiveDuration = Field(300.0, description="how often a patches reading is published")
    rescan_interval: PositiveDuration = Field(
        21600.0, description="re-read package state at least this often even if dpkg status and the lists are untouched"
    )
    stale_after: PositiveDuration = Field(
        7 * 86400.0, description="package lists older than this make the status \"stale\""
    )
    backend: Literal["auto", "python-apt", "apt-get", "dnf"] = Field(
        "auto", description="auto: python3-apt if importable, else apt-get -s; dnf on the RHEL family"
    )


class PostureConfig(Section):
    """Security posture checks (firewall, SSH, ports, time sync, MAC, USB storage, encryption)."""

    enabled: bool = True
    interval: PositiveDuration = Field(3600.0, description="how often a posture reading is published")
    allowed_ports: list[int] | None = Field(
        None, description="ports allowed to listen beyond loopback; unset: the ports are listed, not judged"
    )


class WeeklySlot(Section):
    day: Weekday
    start: str = Field(description="local wall-clock time in the window's time zone, HH:MM")
    duration: PositiveDuration

    @field_validator("start")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time of day: write HH:MM, e.g. \"02:00\"")
        return value


class OneOffWindow(Section):
    start: datetime = Field(description="local date and time in the time zone, e.g. 2026-12-27T06:00:00")
    duration: PositiveDuration


class SlaConfig(Section):
    """How long a security update may stay pending, by severity (apt gives none: `unspecified`)."""

    critical: PositiveDuration = 7 * 86400.0
    important: PositiveDuration = 14 * 86400.0
    moderate: PositiveDuration = 30 * 86400.0
    low: PositiveDuration = 90 * 86400.0
    unspecified: PositiveDuration = 14 * 86400.0


class MaintenanceConfig(Section):
    """Windows agreed between operations and security for installing updates and rebooting."""

    time_zone: str = "UTC"
    weekly: list[WeeklySlot] = Field(default_factory=list)
    dates: list[OneOffWindow] = Field(default_factory=list)
    sla: SlaConfig = Field(default_factory=SlaConfig)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known IANA time zone, e.g. \"Europe/Berlin\"") from None
        return value
