"""Maintenance windows and patch SLAs agreed between operations and security: the `[maintenance]`
config section, and pure functions of it, the pending security updates and `now`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator

from agent.core.settings import PositiveDuration, Section

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


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


def _iso_datetime(value: object) -> object:
    """TOML has a datetime type; a quoted ISO 8601 text is accepted too."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date and time: write 2026-12-27T06:00:00") from None
    return value


class OneOffWindow(Section):
    start: Annotated[datetime, BeforeValidator(_iso_datetime)] = Field(description="local date and time in the time zone, e.g. 2026-12-27T06:00:00")
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



@dataclass(frozen=True)
class Window:
    start: datetime  # aware
    end: datetime

    def as_body(self, now: datetime) -> dict[str, Any]:
        return {
            "start_ms": _ms(self.start),
            "end_ms": _ms(self.end),
            "start_local": self.start.isoformat(),
            "ongoing": self.start <= now < self.end,
        }


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def windows_after(config: MaintenanceConfig, now: datetime, count: int = 2) -> list[Window]:
    """The next `count` windows that have not ended at `now` (an ongoing one comes first)."""
    zone = ZoneInfo(config.time_zone)
    local_today = now.astimezone(zone).date()
    found: list[Window] = []
    for offset in range(-1, 15):  # -1: a slot that began yesterday may still be running
        day = local_today + timedelta(days=offset)
        for slot in config.weekly:
            if WEEKDAYS[day.weekday()] == slot.day:
                hour, minute = map(int, slot.start.split(":"))
                start = datetime.combine(day, time(hour, minute), tzinfo=zone)
                found.append(Window(start, start + timedelta(seconds=slot.duration)))
    for one_off in config.dates:
        start = one_off.start if one_off.start.tzinfo else one_off.start.replace(tzinfo=zone)
        found.append(Window(start, start + timedelta(seconds=one_off.duration)))
    upcoming = sorted((w for w in found if w.end > now), key=lambda w: w.start)
    return upcoming[:count]


def schedule(
    config: MaintenanceConfig, security_updates: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """Next window, updates due in it, and SLA breaches.

    Each update dict needs `package`, `severity` and `first_seen_ms`. An update is due in the
    next window when its SLA deadline falls before the window after it starts (skip the next
    window and it breaches); it is a breach once its deadline has passed.
    """
    upcoming = windows_after(config, now)
    following = upcoming[1].start if len(upcoming) > 1 else None
    due, breaches = [], []
    for update in security_updates:
        allowed = getattr(config.sla, update.get("severity", "unspecified"), config.sla.unspecified)
        deadline_ms = update["first_seen_ms"] + int(allowed * 1000)
        if deadline_ms <= _ms(now):
            breaches.append(
                {
                    "package": update["package"],
                    "severity": update.get("severity", "unspecified"),
                    "first_seen_ms": update["first_seen_ms"],
                    "deadline_ms": deadline_ms,
                    "overdue_s": (_ms(now) - deadline_ms) // 1000,
                }
            )
        if upcoming and (following is None or deadline_ms < _ms(following)):
            due.append(update["package"])
    return {
        "time_zone": config.time_zone,
        "next_window": upcoming[0].as_body(now) if upcoming else None,
        "following_window": upcoming[1].as_body(now) if len(upcoming) > 1 else None,
        "due_in_next_window": sorted(due),
        "sla_breaches": sorted(breaches, key=lambda b: b["deadline_ms"]),
    }
