"""Maintenance windows and patch SLA: pure functions of the config, the updates and `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.collectors.patches.config import WEEKDAYS, MaintenanceConfig


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
