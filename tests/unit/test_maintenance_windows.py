"""Maintenance windows and SLA: pure functions with a pinned `now`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from agent.readiness.maintenance import MaintenanceConfig, schedule, windows_after

UTC = timezone.utc


def config(**kw: object) -> MaintenanceConfig:
    return MaintenanceConfig.model_validate({"time_zone": "Europe/Berlin", **kw})


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_weekly_slot_in_local_time_across_dst() -> None:
    cfg = config(weekly=[{"day": "sun", "start": "02:30", "duration": "2h"}])
    # Saturday 2026-03-28: next Sunday 02:30 Berlin falls in the spring-forward gap
    summer = windows_after(cfg, datetime(2026, 3, 30, 12, tzinfo=UTC))[0]
    assert summer.start.astimezone(UTC) == datetime(2026, 4, 5, 0, 30, tzinfo=UTC)  # 02:30 CEST
    winter = windows_after(cfg, datetime(2026, 11, 2, 12, tzinfo=UTC))[0]
    assert winter.start.astimezone(UTC) == datetime(2026, 11, 8, 1, 30, tzinfo=UTC)  # 02:30 CET


def test_ongoing_window_comes_first_and_one_offs_merge() -> None:
    cfg = config(
        weekly=[{"day": "wed", "start": "22:00", "duration": "4h"}],
        dates=[{"start": "2026-07-10T06:00:00", "duration": "8h"}],
    )
    now = datetime(2026, 7, 8, 23, 0, tzinfo=UTC)  # Thu 01:00 Berlin: inside Wed 22:00-02:00
    first, second = windows_after(cfg, now)
    assert first.start <= now < first.end
    assert second.start.astimezone(UTC) == datetime(2026, 7, 10, 4, 0, tzinfo=UTC)


def test_due_and_breaches() -> None:
    cfg = config(
        weekly=[{"day": "sat", "start": "06:00", "duration": "3h"}],
        sla={"critical": "7d", "unspecified": "14d"},
    )
    now = datetime(2026, 7, 8, 12, tzinfo=UTC)  # Wednesday
    updates = [
        {"package": "old", "severity": "unspecified", "first_seen_ms": ms(now - timedelta(days=20))},
        {"package": "soon", "severity": "critical", "first_seen_ms": ms(now - timedelta(days=3))},
        {"package": "fresh", "severity": "unspecified", "first_seen_ms": ms(now)},
    ]
    plan = schedule(cfg, updates, now)
    assert [b["package"] for b in plan["sla_breaches"]] == ["old"]
    assert plan["sla_breaches"][0]["overdue_s"] == 6 * 86400
    # "soon" breaches on the 12th, before the window after next (the 18th): due on the 11th
    assert plan["due_in_next_window"] == ["old", "soon"]
    assert plan["next_window"]["start_ms"] == ms(datetime(2026, 7, 11, 4, tzinfo=UTC))


def test_no_windows_configured() -> None:
    plan = schedule(config(), [{"package": "x", "severity": "low", "first_seen_ms": 0}], datetime(2026, 1, 1, tzinfo=UTC))
    assert plan["next_window"] is None and plan["due_in_next_window"] == []
    assert plan["sla_breaches"][0]["package"] == "x"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        MaintenanceConfig.model_validate({"time_zone": "Mars/Olympus"})
    with pytest.raises(ValidationError):
        MaintenanceConfig.model_validate({"weekly": [{"day": "sun", "start": "25:00", "duration": "1h"}]})
