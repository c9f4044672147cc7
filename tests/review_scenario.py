"""A scripted hour of two signed nodes played into a fleet store, with known answers (see
tests/integration/test_fleet_history.py for what happens when): the review's history, report,
asset register and /metrics are tested on it."""

from __future__ import annotations

from fleet_harness import T0, Clock, Fleet, make_nodes

from agent.readiness.maintenance import MaintenanceConfig

WINDOWS = MaintenanceConfig.model_validate({"time_zone": "Europe/Berlin",
                                            "weekly": [{"day": "sun", "start": "02:00", "duration": "3h"}]})

MIN = 60_000
DAY = 86_400_000


def set_updates(node, updates: list[dict]) -> None:
    node.patches = {**node.patches, "security_updates": updates, "security_pending": len(updates)}


def set_firewall(node, status: str) -> None:
    node.posture = {"checks": [{**c, "status": status} if c["id"] == "firewall" else c for c in node.posture["checks"]]}


def play(url: str, start: float = T0) -> tuple[Fleet, int]:
    """The hour from `start` (seconds); returns the fleet (clock at its end) and the first cycle's ms."""
    clock = Clock(start)
    trust, nodes = make_nodes(clock, "panel-1", "panel-2")
    board = Fleet(url, trust, clock)
    t0 = clock.ms()
    p1 = nodes["panel-1"]
    p1.maintenance = WINDOWS
    openssl = {"package": "openssl", "severity": "critical", "fixed": "3.0.16", "first_seen_ms": t0 - 8 * DAY}
    zlib = {"package": "zlib", "first_seen_ms": t0 - DAY}
    curl = {"package": "curl", "severity": "important", "first_seen_ms": t0 + 5 * MIN}
    set_updates(p1, [openssl, zlib])
    for minute in range(61):
        clock.now = t0 / 1000 + minute * 60
        p1.devices["plc-line2"].online = not (10 <= minute < 30 or 40 <= minute < 45)
        if minute == 5:
            set_updates(p1, [curl, openssl, zlib])
        if minute == 20:
            set_updates(p1, [openssl, zlib])
        if minute == 50:
            set_updates(p1, [zlib])
        if minute in (15, 35):
            set_firewall(p1, "fail" if minute == 15 else "pass")
        board.feed(p1.cycle() + nodes["panel-2"].cycle())
        if minute == 12:
            topic, payload, _ = p1.sent[-3]
            assert board.feed([(topic, payload.replace(b'"status":"ok"', b'"status":"OK"'), False)]) == ["rejected"]
        board.tick()
    return board, t0
