"""Ingest's pure parts: its subscriptions, the rate-limited rejection log, retention never below
the verifier's age limit, and the listen address."""

from __future__ import annotations

import logging

import pytest

from agent.fleet.ingest import RateLimitedLog, guarded, topic_filters
from agent.fleet.store.upkeep import DAY_MS, Retention
from agent.trust import keys
from agent.trust.bridge import Bridges
from agent.trust.verify import Verifier
from agent.web.server import parse_listen


def test_topic_filters_share_the_bulk_and_take_the_retained_kinds_plainly() -> None:
    filters = [f for f, _ in topic_filters("edge", "fleet")]
    assert filters[0] == "$share/fleet/edge/#"
    assert set(filters[1:]) == {"edge/+/status", "edge/+/readiness", "edge/+/patches", "edge/+/posture", "edge/+/key"}
    assert topic_filters("edge", None) == [("edge/#", 1)]


def test_behind_site_bridges_ingest_subscribes_under_every_bridge_prefix_too() -> None:
    bridges = Bridges.parse(["site-a/=press-*", "region-1/site-c/"])
    filters = [f for f, _ in topic_filters("edge", "fleet", bridges)]
    assert filters[:3] == ["$share/fleet/edge/#", "$share/fleet/+/edge/#", "$share/fleet/region-1/site-c/edge/#"]
    assert {"edge/+/status", "+/edge/+/status", "region-1/site-c/edge/+/status"} <= set(filters[3:])
    assert len(filters) == 3 + 3 * 5
    assert [f for f, _ in topic_filters("edge", None, bridges)] == ["edge/#", "+/edge/#", "region-1/site-c/edge/#"]


def test_a_flood_of_rejections_logs_one_line_per_reason_per_period(caplog) -> None:
    now = [0.0]
    limited = RateLimitedLog(every_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="agent.fleet.ingest"):
        for i in range(1000):
            limited.rejected(f"edge/ghost-{i}/host", "unknown_key", "key not in the trust store")
        limited.rejected("edge/panel-1/host", "bad_signature", "altered")
        now[0] = 10.0
        limited.rejected("edge/ghost-x/host", "unknown_key", "key not in the trust store")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "reason=unknown_key" in lines[0] and "more" not in lines[0]
    assert "reason=bad_signature" in lines[1]
    assert "and 999 more with this reason" in lines[2]


def test_messages_are_kept_at_least_as_long_as_the_verifier_accepts_them() -> None:
    verifier = Verifier(keys.TrustStore(), max_skew_ms=60_000, max_age_ms=2 * DAY_MS)
    assert guarded(Retention(retention_ms=DAY_MS), verifier).retention_ms == 2 * DAY_MS + 60_000
    assert guarded(Retention(retention_ms=30 * DAY_MS), verifier).retention_ms == 30 * DAY_MS
    unbounded = Verifier(keys.TrustStore(), max_age_ms=None)
    assert guarded(Retention(retention_ms=DAY_MS), unbounded).retention_ms == DAY_MS


def test_listen_address() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8080", "host:", "host:http", "h:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)
