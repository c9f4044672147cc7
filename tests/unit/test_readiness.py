"""The readiness model: one table row per reason, plus the ladder, the levels and the policy."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.readiness import model as readiness
from agent.readiness.model import AT_RISK, DEGRADED, DOWN, READY, evaluate
from agent.readiness.policy import Asset, Policy

NOW = 1_800_000_000_000
MIN = 60_000
DAY = 86_400_000

POLICY = Policy(
    node=Asset("critical", "Packaging line 2", 1800.0),
    devices={"plc-line2": Asset("critical", "Line 2 filling", 900.0),
             "meter-1": Asset("supporting", "Energy metering", 3600.0)},
)


def msg(body: dict[str, Any], ts: int = NOW - 5_000, seq: int = 1) -> dict[str, Any]:
    return {"ts": ts, "seq": seq, "body": body}


def device(state: str = "online", last_success_ms: int | None = NOW - 5_000, **status: Any) -> dict[str, Any]:
    return msg({"device": "x", "values": {}, "status": {"state": state, "last_success_ms": last_success_ms,
                                                         "consecutive_failures": 0, **status}})


def healthy() -> dict[str, dict]:
    return {
        "status": msg({"state": "online"}, ts=NOW - 3_600_000),
        "host": msg({"disks": [{"mount": "/", "percent": 40.0}], "memory": {"percent": 35.0},
                     "temperatures": {"coretemp/Package id 0": 55.0},
                     "clock": {"synchronized": True, "offset_us": 120}, "failed_units": []}),
        "modbus/plc-line2": device(),
        "modbus/meter-1": device(),
        "patches": msg({"status": "ok", "security_pending": 0, "security_updates": [], "reboot_required": False}),
        "posture": msg({"checks": [{"id": "ssh_root_login", "title": "SSH root login disabled", "status": "pass",
                                    "evidence": "PermitRootLogin no"}]}),
    }


def with_change(path: str, value: Any) -> dict[str, dict]:
    """The healthy node with one field replaced; path is "stream:key.key" (value None deletes the stream)."""
    latest = healthy()
    stream, _, keys = path.partition(":")
    if not keys:
        if value is None:
            del latest[stream]
        else:
            latest[stream] = value
        return latest
    target = latest[stream]["body"]
    *parents, last = keys.split(".")
    for key in parents:
        target = target[key]
    target[last] = value
    return latest


def security_update(package: str, age_ms: int, severity: str = "unspecified") -> dict[str, Any]:
    return {"package": package, "installed": "1.0", "fixed": "1.1", "severity": severity,
            "first_seen_ms": NOW - age_ms}


# (id, latest, evaluate kwargs, expected reason code, its level, words the text must hold)
CASES = [
    ("node offline by its death message", {"status": msg({"state": "offline"}, ts=NOW - 10 * MIN)},
     {}, "node_offline", AT_RISK, "node offline 10 min of 30 min tolerated (Packaging line 2, critical)"),
    ("node offline past tolerance", {"status": msg({"state": "offline"}, ts=NOW - 45 * MIN)},
     {}, "node_offline", DOWN, "node offline 45 min, past the 30 min tolerated"),
    ("node silent", healthy(), {"last_heard_ms": NOW - 5 * MIN, "silent_after_ms": 2 * MIN},
     "node_silent", AT_RISK, "node silent 5 min of 30 min tolerated"),
    ("PLC offline inside tolerance", with_change("modbus/plc-line2", device("offline", NOW - 12 * MIN)),
     {}, "device_offline", AT_RISK, "plc-line2 offline 12 min of 15 min tolerated (Line 2 filling, critical)"),
    ("PLC offline past tolerance", with_change("modbus/plc-line2", device("offline", NOW - 17 * MIN)),
     {}, "device_offline", DOWN, "plc-line2 offline 17 min, past the 15 min tolerated"),
    ("PLC never reached", with_change("modbus/plc-line2", device("offline", None, last_error="timeout")),
     {}, "device_offline", AT_RISK, "plc-line2 offline (never reached) 5 s of 15 min tolerated"),
    ("supporting meter past tolerance is only degraded",
     with_change("modbus/meter-1", device("offline", NOW - 2 * 3600_000)),
     {}, "device_offline", DEGRADED, "meter-1 offline 2 hours, past the 60 min tolerated"),
    ("device degraded", with_change("modbus/plc-line2", device("degraded", consecutive_failures=2, last_error="timeout")),
     {}, "device_degraded", DEGRADED, "plc-line2 degraded: 2 failed reads in a row, last error timeout"),
    ("device readings stale", with_change("modbus/plc-line2", msg(device()["body"], ts=NOW - 10 * MIN)),
     {}, "device_stale", AT_RISK, "plc-line2 no data 10 min of 15 min tolerated"),
    ("configured device never reported", with_change("modbus/meter-1", None),
     {}, "device_no_data", DEGRADED, "no data from meter-1 yet"),
    ("no host health", with_change("host", None), {}, "host_no_data", DEGRADED, "no host health reported yet"),
    ("host health stale", with_change("host", msg({}, ts=NOW - 20 * MIN)), {}, "host_stale", DEGRADED,
     "no host health for 20 min"),
    ("disk nearly full", with_change("host:disks", [{"mount": "/var", "percent": 93.0}]), {}, "disk_full", DEGRADED,
     "disk /var 93 % full"),
    ("disk full", with_change("host:disks", [{"mount": "/var", "percent": 98.4}]), {}, "disk_full", AT_RISK,
     "disk /var 98 % full"),
    ("memory", with_change("host:memory.percent", 98.0), {}, "memory_high", AT_RISK, "memory 98 % used"),
    ("temperature", with_change("host:temperatures", {"acpi/cpu": 84.0, "nvme/x": 40.0}), {}, "temperature_high",
     DEGRADED, "temperature acpi/cpu at 84 °C"),
    ("clock not synchronised", with_change("host:clock", {"synchronized": False, "offset_us": 2_500_000}), {},
     "clock_unsynced", DEGRADED, "clock not synchronised with a time server, 2.5 s off"),
    # The kernel's last offset (often 0) means nothing while no time server disciplines the clock.
    ("clock not synchronised, offset 0", with_change("host:clock", {"synchronized": False, "offset_us": 0}), {},
     "clock_unsynced", DEGRADED, "clock not synchronised with a time server"),
    ("failed systemd units", with_change("host:failed_units", ["hmi.service"]), {}, "failed_units", DEGRADED,
     "1 system service failed"),  # unit names: the drill-down
    ("spool not writable", with_change("status:storage", {"state": "degraded", "cause": "disk full",
                                                          "memory_depth": 120, "quarantined": None}),
     {}, "storage_degraded", DEGRADED, "storage disk full: 120 new messages held in memory, lost if the agent stops"),
    ("spool quarantined", with_change("status:storage", {"state": "ok", "cause": "", "quarantined": {
        "salvaged": 480, "lost": 520, "path": "/var/lib/edge-agent/spool.db.corrupt-x", "problem": "malformed"}}),
     {}, "spool_quarantined", DEGRADED, "spool was corrupt and quarantined: 480 messages salvaged, 520 lost"),
    ("no patch status", with_change("patches", None), {}, "patches_no_data", DEGRADED, "no patch status reported yet"),
    ("patch state stale", healthy() | {
        "patches": msg({"status": "stale", "status_reasons": ["package lists 40 days old"], "security_updates": []})},
     {}, "patch_state_unknown", DEGRADED, "patch state stale, \"0 pending\" cannot be trusted: package lists 40 days old"),
    ("security updates pending within SLA",
     with_change("patches:security_updates", [security_update("openssl", 3 * DAY), security_update("curl", DAY)]),
     {}, "security_pending", DEGRADED, "2 security updates pending, oldest 3 days, SLA 14 days"),
    ("security updates pending under different SLAs",
     with_change("patches:security_updates", [security_update("zlib", 3 * DAY), security_update("openssl", DAY, "critical")]),
     {}, "security_pending", DEGRADED,
     "2 security updates pending, oldest 3 days; openssl is due first, in 6 days (SLA 7 days)"),
    ("one security update pending", with_change("patches:security_updates", [security_update("apt", 52_000)]),
     {}, "security_pending", DEGRADED, "1 security update pending, oldest 52 s, SLA 14 days"),
    ("security update past SLA",
     with_change("patches:security_updates", [security_update("openssl", 10 * DAY, "critical"),
                                               security_update("curl", DAY)]),
     {}, "sla_breach", AT_RISK, "1 security update past its SLA: openssl pending 10 days, SLA 7 days (critical)"),
    ("reboot required", healthy() | {"patches": msg({
        "status": "ok", "security_updates": [], "reboot_required": True,
        "reboot": {"flag_packages": ["libc6"], "kernel_pending": False}})},
     {}, "reboot_required", DEGRADED, "reboot required for libc6"),
    ("hardening check failed", with_change("posture:checks", [{"id": "ssh_root_login", "title": "SSH root login disabled",
                                                               "status": "fail", "evidence": "PermitRootLogin yes"}]),
     {}, "check_failed", DEGRADED, "hardening: SSH lets root log in"),  # the evidence: the drill-down
    ("clock check failed", with_change("posture:checks", [{"id": "time_sync", "title": "The clock is synchronised",
                                                           "status": "fail", "evidence": "adjtimex: STA_UNSYNC"}]),
     {}, "check_failed", DEGRADED, "hardening: the clock is not kept in sync with a time server"),
    ("a check the model has no words for", with_change("posture:checks", [{"id": "new_check", "title": "Something holds",
                                                                           "status": "fail"}]),
     {}, "check_failed", DEGRADED, "hardening check not met: Something holds"),
    ("forged messages", healthy(), {"rejected": {"bad_signature": 2, "unknown_key": 1}}, "messages_rejected", AT_RISK,
     "3 messages claiming this node failed verification: bad signature ×2, unknown key ×1"),
    ("revoked key", healthy(), {"rejected": {"revoked_key": 1}}, "key_revoked", DOWN,
     "1 message signed with a revoked key"),
    ("agent's verdict disagrees with its data", healthy(), {"disagreement": "the agent says ready; its messages say down"},
     "verdict_disagrees", DEGRADED, "the agent says ready; its messages say down"),
]


def test_a_healthy_node_is_ready_in_both_lenses() -> None:
    verdict = evaluate(healthy(), POLICY, NOW, last_heard_ms=NOW - 1000, silent_after_ms=120_000)
    assert verdict.reasons == ()
    assert (verdict.level, verdict.lens("security"), verdict.lens("operations")) == (READY, READY, READY)


@pytest.mark.parametrize(("latest", "kwargs", "code", "level", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_reason(latest: dict, kwargs: dict, code: str, level: str, words: str) -> None:
    verdict = evaluate(latest, POLICY, NOW, **kwargs)
    matching = [r for r in verdict.reasons if r.code == code]
    assert len(matching) == 1, verdict.reasons
    assert matching[0].level == level
    assert words in matching[0].text
    assert verdict.level == readiness.worst(r.level for r in verdict.reasons)
    assert readiness.LEVELS.index(verdict.lens(matching[0].lens)) >= readiness.LEVELS.index(level)


def test_every_reason_code_has_a_case() -> None:
    import inspect
    import re

    codes = set(re.findall(r'Reason\([A-Z_]+,\s+[^,]+,\s+"([a-z_]+)"', inspect.getsource(readiness)))
    assert codes and codes <= {c[3] for c in CASES}


def test_lenses_are_separate_and_the_verdict_is_the_worst() -> None:
    latest = with_change("patches:security_updates", [security_update("openssl", 10 * DAY, "critical")])
    latest["host"]["body"]["disks"] = [{"mount": "/", "percent": 92.0}]
    verdict = evaluate(latest, POLICY, NOW)
    assert verdict.lens("security") == AT_RISK
    assert verdict.lens("operations") == DEGRADED
    assert verdict.level == AT_RISK
    body = verdict.as_body()
    assert body["security"] == AT_RISK and body["operations"] == DEGRADED and len(body["reasons"]) == 2


def test_an_absent_node_is_not_judged_on_its_old_device_readings() -> None:
    latest = healthy()
    latest["modbus/plc-line2"] = device("offline", NOW - 3 * 3600_000)
    latest["status"] = msg({"state": "offline"}, ts=NOW - MIN)
    codes = [r.code for r in evaluate(latest, POLICY, NOW).reasons]
    assert codes == ["node_offline"]


def test_a_last_will_sealed_at_start_counts_from_the_last_sign_of_life() -> None:
    latest = {"status": msg({"state": "offline"}, ts=NOW - 5 * 3600_000),  # sealed when the agent started
              "host": msg(healthy()["host"]["body"], ts=NOW - 4 * MIN)}
    (reason,) = evaluate(latest, POLICY, NOW).reasons[:1]
    assert reason.code == "node_offline" and "node offline 4 min of 30 min" in reason.text


@pytest.mark.parametrize(("criticality", "past", "level"), [
    ("critical", False, AT_RISK), ("critical", True, DOWN), ("important", False, DEGRADED),
    ("important", True, AT_RISK), ("supporting", False, DEGRADED), ("supporting", True, DEGRADED)])
def test_outage_ladder(criticality: str, past: bool, level: str) -> None:
    asset = Asset(criticality, "", 900.0)
    assert readiness.outage_level(asset, 901.0 if past else 899.0) == level


def test_tolerance_boundary_is_exact() -> None:
    asset = Asset("critical", "", 900.0)
    assert readiness.outage_level(asset, 899.999) == AT_RISK
    assert readiness.outage_level(asset, 900.0) == DOWN


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (45, "45 s"), (119, "119 s"), (720, "12 min"),
                                               (7199, "119 min"), (7200, "2 hours"), (3 * 86400, "3 days")])
def test_human_durations(seconds: float, text: str) -> None:
    assert readiness.human(seconds) == text


def test_policy_round_trips_through_a_message_body() -> None:
    assert Policy.from_body(copy.deepcopy(POLICY.to_body())) == POLICY


@pytest.mark.parametrize("junk", [None, [], "x", {"node": "x", "devices": [], "patch_sla_s": {"critical": -1},
                                                   "host": {"disk_warn_percent": "a"}, "stale_after_s": True}])
def test_a_malformed_policy_falls_back_to_defaults(junk: Any) -> None:
    assert Policy.from_body(junk) == Policy()


def test_patch_sla_comes_from_the_policy() -> None:
    latest = with_change("patches:security_updates", [security_update("openssl", 3 * DAY, "critical")])
    strict = Policy(node=POLICY.node, devices=POLICY.devices, patch_sla_s={**POLICY.patch_sla_s, "critical": 2 * 86400})
    assert "sla_breach" in [r.code for r in evaluate(latest, strict, NOW).reasons]
    assert "sla_breach" not in [r.code for r in evaluate(latest, POLICY, NOW).reasons]


def test_malformed_bodies_do_not_crash_the_model() -> None:
    latest = {"status": msg({"state": 3}), "host": msg({"disks": [{"percent": "full"}], "memory": [],
                                                        "temperatures": {"x": "hot"}, "clock": None}),
              "modbus/plc-line2": msg({"status": "bad"}), "patches": msg({"security_updates": [{"x": 1}], "status": 5}),
              "posture": msg({"checks": [1, {"status": "fail"}]})}
    verdict = evaluate(latest, POLICY, NOW)
    assert verdict.level in readiness.LEVELS


def test_every_posture_check_has_words_for_its_failure() -> None:
    """The failure words name every check the posture collector has (a new check needs its words)."""
    import re
    from pathlib import Path

    source = (Path(readiness.__file__).parents[1] / "collectors" / "posture" / "collector.py").read_text()
    assert set(re.findall(r'_check\("(\w+)"', source)) | set(re.findall(r'\("(\w+)", \w+_title', source)) \
        == set(readiness.CHECK_FAILED)
