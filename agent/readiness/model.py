"""Edge readiness: one verdict, two lenses, reasons in plain words. Pure functions only.

`evaluate(latest, policy, now_ms)` reads a node's latest verified messages (one per stream:
"status", "host", "modbus/<device>", "patches", "posture"; each a dict with at least `ts`
and `body`, i.e. the envelope's fields) and the tolerances agreed in advance (`Policy`), and
returns a `Readiness`:

- *security*: security updates pending against the patch SLA, reboot pending, patch state
  unknown or stale, failed hardening checks, messages that failed verification, revoked key;
- *operations*: node offline or silent, each device's outage against its tolerable
  downtime, host health (disk, memory, temperature, clock sync, failed units), the agent's
  own storage (spool not writable, spool quarantined).

Levels, worst last: ready < degraded < at_risk < down. An outage ladders by criticality:
inside its tolerance a critical asset is at risk and any other degraded; past it a critical
asset is down, an important one at risk and a supporting one degraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.core.reading import Priority, Reading
from agent.readiness.policy import Asset, Policy, policy_from_config

READY, DEGRADED, AT_RISK, DOWN = "ready", "degraded", "at_risk", "down"
LEVELS: tuple[str, ...] = (READY, DEGRADED, AT_RISK, DOWN)
SECURITY, OPERATIONS = "security", "operations"
INPUT_KINDS = ("status", "host", "modbus", "patches", "posture")  # streams a verdict is computed from


@dataclass(frozen=True)
class Reason:
    lens: str
    level: str
    code: str
    text: str
    subject: str = ""

    def as_body(self) -> dict[str, str]:
        return {"lens": self.lens, "level": self.level, "code": self.code, "text": self.text, "subject": self.subject}


@dataclass(frozen=True)
class Readiness:
    reasons: tuple[Reason, ...]

    def lens(self, name: str) -> str:
        return worst(r.level for r in self.reasons if r.lens == name)

    @property
    def level(self) -> str:
        return worst(r.level for r in self.reasons)

    def as_body(self) -> dict[str, Any]:
        return {"level": self.level, SECURITY: self.lens(SECURITY), OPERATIONS: self.lens(OPERATIONS),
                "reasons": [r.as_body() for r in self.reasons]}


def worst(levels: Any) -> str:
    return max(levels, key=LEVELS.index, default=READY)


def human(seconds: float) -> str:
    """A duration as people say it: 45 s, 12 min, 5 hours, 3 days."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 2 * 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} hours"
    return f"{int(seconds // 86400)} days"


def counted(count: int, word: str, plural: str = "") -> str:
    """"1 security update", "3 security updates"."""
    return f"{count} {word if count == 1 else plural or word + 's'}"


# What a failing hardening check means, said as the problem (a check's title names what it
# expects: "The clock is synchronised" after "failed:" reads as a contradiction). The
# evidence (adjtimex state, config lines) stays in the drill-down. Ids: agent/collectors/posture.
CHECK_FAILED = {
    "firewall": "no host firewall is active",
    "ssh_root_login": "SSH lets root log in",
    "ssh_password_auth": "SSH accepts passwords",
    "listening_ports": "ports are open that were not agreed",
    "time_sync": "the clock is not kept in sync with a time server",
    "mac": "neither AppArmor nor SELinux enforces",
    "auditd": "the audit daemon (auditd) is not running",
    "usb_storage": "USB storage is not blocked",
    "disk_encryption": "the disk is not encrypted",
}


def outage_level(asset: Asset, outage_s: float) -> str:
    past = outage_s >= asset.max_downtime_s
    if asset.criticality == "critical":
        return DOWN if past else AT_RISK
    if asset.criticality == "important" and past:
        return AT_RISK
    return DEGRADED


def outage_text(what: str, asset: Asset, outage_s: float) -> str:
    context = ", ".join(filter(None, [asset.process, asset.criticality]))
    if outage_s >= asset.max_downtime_s:
        core = f"{what} {human(outage_s)}, past the {human(asset.max_downtime_s)} tolerated"
    else:
        core = f"{what} {human(outage_s)} of {human(asset.max_downtime_s)} tolerated"
    return f"{core} ({context})"


def said(error: Any) -> str:
    """A device's `last_error` in words: its message (docs/modbus.md: `{kind, message, ts_ms}`) or kind."""
    error = error if isinstance(error, dict) else {"message": error}
    return str(error.get("message") or error.get("kind") or "?")[:200]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ----------------------------------------------------------------------------- operations


def node_liveness(latest: dict[str, dict], policy: Policy, now_ms: int, last_heard_ms: int | None,
                  silent_after_ms: int | None) -> list[Reason]:
    """A node whose death message or silence says it is gone."""
    status = latest.get("status")
    if status and _dict(status.get("body")).get("state") == "offline":
        # The Last Will is sealed when the agent starts, so its own timestamp is old news:
        # the node went away after its last sign of life, whichever stream carried it.
        last_sign = max(m.get("ts", 0) for m in latest.values())
        out_s = (now_ms - last_sign) / 1000
        return [Reason(OPERATIONS, outage_level(policy.node, out_s), "node_offline",
                       outage_text("node offline", policy.node, out_s))]
    if last_heard_ms is not None and silent_after_ms is not None and now_ms - last_heard_ms > silent_after_ms:
        out_s = (now_ms - last_heard_ms) / 1000
        return [Reason(OPERATIONS, outage_level(policy.node, out_s), "node_silent",
                       outage_text("node silent", policy.node, out_s))]
    return []


def device_reasons(latest: dict[str, dict], policy: Policy, now_ms: int) -> list[Reason]:
    names = set(policy.devices) | {s.split("/", 1)[1] for s in latest if s.startswith("modbus/")}
    out: list[Reason] = []
    for name in sorted(names):
        asset = policy.device(name)
        message = latest.get(f"modbus/{name}")
        if message is None:
            out.append(Reason(OPERATIONS, DEGRADED, "device_no_data", f"no data from {name} yet", name))
            continue
        status = _dict(_dict(message.get("body")).get("status"))
        last_success = _num(status.get("last_success_ms"))
        age_s = (now_ms - message.get("ts", now_ms)) / 1000
        if age_s > policy.stale_after_s:
            since = min(last_success, message["ts"]) if last_success is not None else message["ts"]
            out_s = (now_ms - since) / 1000
            out.append(Reason(OPERATIONS, outage_level(asset, out_s), "device_stale",
                              outage_text(f"{name} no data", asset, out_s), name))
        elif status.get("state") == "offline":
            since = last_success if last_success is not None else message["ts"]
            out_s = (now_ms - since) / 1000
            what = f"{name} offline" if last_success is not None else f"{name} offline (never reached)"
            text = outage_text(what, asset, out_s)
            if status.get("last_error"):
                text += f": {said(status['last_error'])}"
            out.append(Reason(OPERATIONS, outage_level(asset, out_s), "device_offline", text, name))
        elif status.get("state") == "degraded":
            failures = status.get("consecutive_failures", 0)
            text = f"{name} degraded: {failures} failed reads in a row"
            if status.get("last_error"):
                text += f", last error {said(status['last_error'])}"
            out.append(Reason(OPERATIONS, DEGRADED, "device_degraded", text, name))
    return out


def _limit(value: float, warn: float, critical: float) -> str | None:
    if value >= critical:
        return AT_RISK
    if value >= warn:
        return DEGRADED
    return None


def host_reasons(latest: dict[str, dict], policy: Policy, now_ms: int) -> list[Reason]:
    message = latest.get("host")
    if message is None:
        return [Reason(OPERATIONS, DEGRADED, "host_no_data", "no host health reported yet", "host")]
    age_s = (now_ms - message.get("ts", now_ms)) / 1000
    if age_s > policy.stale_after_s:
        return [Reason(OPERATIONS, DEGRADED, "host_stale", f"no host health for {human(age_s)}", "host")]
    body, limits, out = _dict(message.get("body")), policy.host, []
    for disk in body.get("disks") or []:
        percent = _num(_dict(disk).get("percent"))
        level = percent is not None and _limit(percent, limits["disk_warn_percent"], limits["disk_critical_percent"])
        if level:
            out.append(Reason(OPERATIONS, level, "disk_full", f"disk {disk.get('mount', '?')} {percent:.0f} % full",
                              f"disk:{disk.get('mount', '?')}"))
    percent = _num(_dict(body.get("memory")).get("percent"))
    level = percent is not None and _limit(percent, limits["memory_warn_percent"], limits["memory_critical_percent"])
    if level:
        out.append(Reason(OPERATIONS, level, "memory_high", f"memory {percent:.0f} % used", "memory"))
    temperatures = {k: v for k, v in _dict(body.get("temperatures")).items() if _num(v) is not None}
    if temperatures:
        sensor, celsius = max(temperatures.items(), key=lambda item: item[1])
        level = _limit(celsius, limits["temperature_warn_c"], limits["temperature_critical_c"])
        if level:
            out.append(Reason(OPERATIONS, level, "temperature_high", f"temperature {sensor} at {celsius:.0f} °C",
                              "temperature"))
    clock = _dict(body.get("clock"))
    if clock.get("synchronized") is False:
        # Unsynchronised means no time server disciplines the clock; the offset the kernel last
        # measured (often 0) says nothing then, so it is named only when it is large.
        offset = abs(_num(clock.get("offset_us")) or 0.0) / 1000
        drift = f", {offset / 1000:.1f} s off" if offset >= 1000 else f", {offset:.0f} ms off" if offset >= 100 else ""
        out.append(Reason(OPERATIONS, DEGRADED, "clock_unsynced",
                          f"clock not synchronised with a time server{drift}", "clock"))
    failed = [str(u) for u in body.get("failed_units") or []]
    if failed:  # the unit names are in the drill-down
        out.append(Reason(OPERATIONS, DEGRADED, "failed_units", f"{counted(len(failed), 'system service')} failed",
                          "units"))
    return out


def storage_reasons(latest: dict[str, dict]) -> list[Reason]:
    """What the node's status says about its own storage (agent.delivery.store): new readings
    held in memory because the spool cannot be written, or a corrupt spool quarantined in this run."""
    storage = _dict(_dict(latest.get("status", {}).get("body")).get("storage"))
    out = []
    if storage.get("state") == "degraded":
        held = storage.get("memory_depth")
        text = f"storage {storage.get('cause') or 'failing'}: " + (
            f"{held} new messages held in memory, lost if the agent stops" if isinstance(held, int) else
            "new messages held in memory")
        out.append(Reason(OPERATIONS, DEGRADED, "storage_degraded", text, "storage"))
    quarantined = _dict(storage.get("quarantined"))
    if quarantined:
        lost = quarantined.get("lost")
        out.append(Reason(OPERATIONS, DEGRADED, "spool_quarantined",
                          f"spool was corrupt and quarantined: {quarantined.get('salvaged')} messages salvaged, "
                          f"{'an unknown number' if lost is None else lost} lost", "storage"))
    return out


# ----------------------------------------------------------------------------- security


def patch_reasons(latest: dict[str, dict], policy: Policy, now_ms: int) -> list[Reason]:
    message = latest.get("patches")
    if message is None:
        return [Reason(SECURITY, DEGRADED, "patches_no_data", "no patch status reported yet", "patches")]
    body, out = _dict(message.get("body")), []
    if body.get("status") in ("stale", "unknown"):
        why = "; ".join(str(r) for r in body.get("status_reasons") or []) or "package state cannot be read"
        out.append(Reason(SECURITY, DEGRADED, "patch_state_unknown",
                          f"patch state {body['status']}, \"0 pending\" cannot be trusted: {why}", "patches"))
    pending, breaches = [], []
    for update in body.get("security_updates") or []:
        update = _dict(update)
        first_seen = _num(update.get("first_seen_ms"))
        if first_seen is None:
            continue
        severity = str(update.get("severity", "unspecified"))
        allowed_s = policy.sla_s(severity)
        age_s = (now_ms - first_seen) / 1000
        entry = (age_s, allowed_s, str(update.get("package", "?")), severity)
        (breaches if age_s >= allowed_s else pending).append(entry)
    if breaches:
        breaches.sort(key=lambda e: e[1] - e[0])  # most overdue first
        listed = "; ".join(f"{package} pending {human(age_s)}, SLA {human(allowed_s)} ({severity})"
                           for age_s, allowed_s, package, severity in breaches[:3])
        more = f"; and {len(breaches) - 3} more" if len(breaches) > 3 else ""
        whose = "its" if len(breaches) == 1 else "their"
        out.append(Reason(SECURITY, AT_RISK, "sla_breach",
                          f"{counted(len(breaches), 'security update')} past {whose} SLA: {listed}{more}", "patches"))
    if pending:
        out.append(Reason(SECURITY, DEGRADED, "security_pending", _pending_text(pending), "patches"))
    if body.get("reboot_required") is True:
        reboot = _dict(body.get("reboot"))
        packages = [str(p) for p in reboot.get("flag_packages") or []]
        detail = f" for {', '.join(packages[:3])}" if packages else ""
        if reboot.get("kernel_pending"):
            detail += f" (running kernel {reboot.get('running_kernel')}, newest {reboot.get('newest_kernel')})"
        out.append(Reason(SECURITY, DEGRADED, "reboot_required", f"reboot required{detail}", "reboot"))
    return out


def _pending_text(pending: list[tuple[float, float, str, str]]) -> str:
    """"76 security updates pending, oldest 52 s, SLA 14 days"; with several SLAs, which is due first."""
    oldest = max(age for age, _, _, _ in pending)
    text = f"{counted(len(pending), 'security update')} pending, oldest {human(oldest)}"
    if len({allowed for _, allowed, _, _ in pending}) == 1:
        return f"{text}, SLA {human(pending[0][1])}"
    age_s, allowed_s, package, _ = min(pending, key=lambda e: e[1] - e[0])
    return f"{text}; {package} is due first, in {human(allowed_s - age_s)} (SLA {human(allowed_s)})"


def posture_reasons(latest: dict[str, dict]) -> list[Reason]:
    message = latest.get("posture")
    checks = _dict(message.get("body")).get("checks") if message else None
    out = []
    for check in checks or []:
        check = _dict(check)
        if check.get("status") == "fail":
            problem = CHECK_FAILED.get(str(check.get("id")))
            text = f"hardening: {problem}" if problem else \
                f"hardening check not met: {check.get('title') or check.get('id')}"
            out.append(Reason(SECURITY, DEGRADED, "check_failed", text[:300], f"check:{check.get('id', '?')}"))
    return out


def integrity_reasons(rejected: dict[str, int]) -> list[Reason]:
    """Messages claiming to come from this node that failed verification (counted by the consumer)."""
    out = []
    if rejected.get("revoked_key"):
        out.append(Reason(SECURITY, DOWN, "key_revoked",
                          f"{counted(rejected['revoked_key'], 'message')} signed with a revoked key", "integrity"))
    others = {reason: n for reason, n in rejected.items() if reason != "revoked_key" and n}
    if others:
        total = sum(others.values())
        detail = ", ".join(f"{reason.replace('_', ' ')} ×{n}" for reason, n in sorted(others.items()))
        out.append(Reason(SECURITY, AT_RISK, "messages_rejected",
                          f"{counted(total, 'message')} claiming this node failed verification: {detail}",
                          "integrity"))
    return out


# ----------------------------------------------------------------------------- verdict


def disagreement_reasons(disagreement: str | None) -> list[Reason]:
    """The agent's signed verdict differs from the consumer's recomputation over the same messages."""
    if not disagreement:
        return []
    return [Reason(SECURITY, DEGRADED, "verdict_disagrees", disagreement, "integrity")]


def evaluate(latest: dict[str, dict], policy: Policy, now_ms: int, *, last_heard_ms: int | None = None,
             silent_after_ms: int | None = None, rejected: dict[str, int] | None = None,
             disagreement: str | None = None) -> Readiness:
    """The verdict for one node. The keyword arguments are a consumer's view (the agent leaves
    them unset): `last_heard_ms`/`silent_after_ms` judge silence, `rejected` counts failed
    verifications by reason, `disagreement` says how the agent's own verdict differs."""
    reasons = node_liveness(latest, policy, now_ms, last_heard_ms, silent_after_ms)
    if not reasons:  # an absent node's device and host readings are history, not news
        reasons += device_reasons(latest, policy, now_ms) + host_reasons(latest, policy, now_ms)
        reasons += storage_reasons(latest)
    reasons += patch_reasons(latest, policy, now_ms) + posture_reasons(latest)
    reasons += integrity_reasons(rejected or {}) + disagreement_reasons(disagreement)
    return Readiness(tuple(reasons))


def inputs_of(latest: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """The streams a verdict is computed from (drops readiness, key notices and the like)."""
    return {s: m for s, m in latest.items() if s.split("/", 1)[0] in INPUT_KINDS}


def verdict_reading(latest: dict[str, dict], config: Any, now_ms: int) -> Reading:
    """The agent's own retained `readiness` Reading from its latest sealed messages.

    `latest` maps stream ("host", "modbus/plc-1", ...) to {"seq", "ts", "body"} of the last
    message the daemon sealed on it. The body carries the verdict, the policy it was judged
    against, and the (stream -> seq) inputs, so a consumer can recompute it exactly.
    """
    return policy_reading(latest, policy_from_config(config), now_ms)


def policy_reading(latest: dict[str, dict], policy: Policy, now_ms: int) -> Reading:
    """`verdict_reading` for a policy already built (simulated nodes, tests)."""
    used = inputs_of(latest)
    verdict = evaluate(used, policy, now_ms)
    return Reading(kind="readiness", priority=Priority.SECURITY, retain=True, ts_ms=now_ms, body={
        "verdict": verdict.as_body(),
        "policy": policy.to_body(),
        "inputs": {stream: message.get("seq") for stream, message in sorted(used.items())},
    })


def remember(latest: dict[str, dict], stream: str, seq: int, ts_ms: int, body: dict[str, Any]) -> None:
    """Record a just-sealed message in the daemon's `latest` (only the streams a verdict reads)."""
    if stream.split("/", 1)[0] in INPUT_KINDS:
        latest[stream] = {"seq": seq, "ts": ts_ms, "body": body}
