"""Security posture checks, each {id, title, status: pass|fail|unknown, evidence}.

Every check reads files an unprivileged service user can read; where it cannot see (a
copied disk image has no /proc, a mode-0600 file), the honest answer is "unknown".
`build(config, *, root)` returns the collector; `run_checks(root, ...)` is the pure-ish core.
"""

from __future__ import annotations

import glob
import ipaddress
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.collectors.base import BlockingCollector
from agent.collectors.host.clock import STA_UNSYNC, ClockState, read_clock
from agent.collectors.patches import system
from agent.collectors.posture.config import PostureConfig
from agent.core.reading import Priority, Reading

if TYPE_CHECKING:
    from agent.config import Config

Check = dict[str, str]


def _check(id_: str, title: str, status: str, evidence: str) -> Check:
    return {"id": id_, "title": title, "status": status, "evidence": evidence}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


# ---------------------------------------------------------------- services

UnitState = Callable[[str], str | None]  # unit -> "active"/"inactive"/... or None if unknowable


def systemctl_state(root: Path) -> UnitState:
    """Live unit state via `systemctl is-active` (works unprivileged) on the running system only."""
    live = root == Path("/") and Path("/run/systemd/system").is_dir()

    def state(unit: str) -> str | None:
        if not live:
            return None
        try:
            done = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() or None

    return state


def _running(root: Path, name: str) -> bool | None:
    """Whether a process with this comm runs (the live system only; /proc/*/comm is world-readable)."""
    if root != Path("/"):
        return None
    for comm in glob.glob("/proc/[0-9]*/comm"):
        if (_read(Path(comm)) or "").strip() == name:
            return True
    return False


def _service(root: Path, units: UnitState, unit: str, process: str | None = None) -> tuple[bool | None, str]:
    state = units(unit)
    if state is not None:
        return state == "active", f"{unit} is {state}"
    if process is not None and (running := _running(root, process)) is not None:
        return running, f"process {process} {'running' if running else 'not running'}"
    if system.unit_enabled(root, unit):
        return None, f"{unit} enabled at boot (runtime state not visible)"
    return False, f"{unit} not enabled"


def check_firewall(root: Path, units: UnitState) -> Check:
    title = "A host firewall is active"
    ufw = _read(root / "etc/ufw/ufw.conf") or ""
    if re.search(r"^\s*ENABLED\s*=\s*yes", ufw, re.M):
        return _check("firewall", title, "pass", "ufw.conf ENABLED=yes")
    answers, evidence = [], []
    for unit in ("nftables.service", "firewalld.service", "netfilter-persistent.service", "iptables.service"):
        active, why = _service(root, units, unit, "firewalld" if unit == "firewalld.service" else None)
        if active:
            return _check("firewall", title, "pass", why)
        answers.append(active)
        evidence.append(why)
    # the ruleset itself needs CAP_NET_ADMIN, so only the services that load it can be seen
    status = "fail" if all(a is False for a in answers) else "unknown"
    return _check("firewall", title, status, "; ".join(evidence) + "; ruleset not readable without CAP_NET_ADMIN")


# ---------------------------------------------------------------- sshd

def sshd_settings(root: Path, path: Path | None = None) -> tuple[dict[str, str], list[str], bool]:
    """Effective global sshd settings (first value wins, Include expanded in place) and
    the Match blocks that override them. Returns (settings, match overrides, readable)."""
    path = path or root / "etc/ssh/sshd_config"
    settings: dict[str, str] = {}
    overrides: list[str] = []
    readable = True

    def walk(file: Path, in_match: str | None) -> None:
        nonlocal readable
        text = _read(file)
        if text is None:
            readable = False
            return
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            key, _, value = line.replace("=", " ", 1).partition(" ")
            key, value = key.lower(), value.strip()
            if key == "match":
                in_match = value
            elif key == "include":
                for pattern in value.split():
                    full = pattern if pattern.startswith("/") else f"/etc/ssh/{pattern}"
                    for inc in sorted(glob.glob(str(root / full.lstrip("/")))):
                        walk(Path(inc), in_match)  # a Match opened in an included file ends with it
            elif in_match is not None:
                overrides.append(f"Match {in_match}: {key} {value}")
            else:
                settings.setdefault(key, value.lower())

    walk(path, None)
    return settings, overrides, readable


def check_ssh(root: Path) -> list[Check]:
    root_title, pw_title = "SSH refuses root login", "SSH refuses password authentication"
    if not (root / "etc/ssh/sshd_config").exists():
        return [
            _check("ssh_root_login", root_title, "pass", "no /etc/ssh/sshd_config: OpenSSH server not installed"),
            _check("ssh_password_auth", pw_title, "pass", "no /etc/ssh/sshd_config: OpenSSH server not installed"),
        ]
    settings, overrides, readable = sshd_settings(root)
    checks = []
    for id_, title, key, default, good in (
        ("ssh_root_login", root_title, "permitrootlogin", "prohibit-password", {"no"}),
        ("ssh_password_auth", pw_title, "passwordauthentication", "yes", {"no"}),
    ):
        value = settings.get(key)
        effective = {"without-password": "prohibit-password"}.get(value or default, value or default)
        relevant = [o for o in overrides if o.split(": ", 1)[1].startswith(key + " ")]
        loosened = [o for o in relevant if o.rsplit(" ", 1)[1].lower() not in good]
        evidence = f"{key}={effective}" + ("" if value else " (OpenSSH default)")
        if loosened:
            evidence += "; " + "; ".join(loosened)
        if not readable:
            checks.append(_check(id_, title, "unknown", evidence + "; part of the config is unreadable"))
        else:
            checks.append(_check(id_, title, "pass" if effective in good and not loosened else "fail", evidence))
    return checks


# ---------------------------------------------------------------- ports

def _hex_address(text: str) -> tuple[str, int]:
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    if len(raw) == 4:
        ip = ipaddress.IPv4Address(raw[::-1])
    else:  # four little-endian 32-bit words
        ip = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    return str(ip), int(port, 16)


def parse_proc_net(text: str, proto: str) -> list[dict[str, Any]]:
    """Listening sockets from /proc/net/{tcp,tcp6,udp,udp6} text (TCP LISTEN, unconnected UDP)."""
    found = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        local, remote, state = parts[1], parts[2], parts[3]
        if proto.startswith("tcp") and state != "0A":
            continue
        if proto.startswith("udp") and (state != "07" or _hex_address(remote)[1] != 0):
            continue
        address, port = _hex_address(local)
        found.append({"proto": proto[:3], "address": address, "port": port})
    return found


def listening(root: Path) -> list[dict[str, Any]] | None:
    sockets: list[dict[str, Any]] = []
    seen_any = False
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        text = _read(root / "proc/net" / proto)
        if text is not None:
            seen_any = True
            sockets.extend(parse_proc_net(text, proto))
    if not seen_any:
        return None
    unique = {(s["proto"], s["address"], s["port"]): s for s in sockets}
    return [unique[k] for k in sorted(unique)]


def check_ports(sockets: list[dict[str, Any]] | None, allowed: list[int] | None) -> Check:
    title = "Only agreed ports listen beyond loopback"
    if sockets is None:
        return _check("listening_ports", title, "unknown", "no /proc/net under this root")
    exposed = [s for s in sockets if not ipaddress.ip_address(s["address"]).is_loopback]
    listed = ", ".join(sorted({f"{s['proto']}/{s['port']}" for s in exposed})) or "none"
    if allowed is None:
        return _check("listening_ports", title, "unknown", f"no allowed_ports policy configured; exposed: {listed}")
    extra = sorted({f"{s['proto']}/{s['port']}" for s in exposed if s["port"] not in allowed})
    if extra:
        return _check("listening_ports", title, "fail", f"not allowed: {', '.join(extra)}")
    return _check("listening_ports", title, "pass", f"exposed: {listed}")


# ---------------------------------------------------------------- time, MAC, audit, USB, crypto

def check_time_sync(root: Path, read: Callable[[], ClockState | None] = read_clock) -> Check:
    title = "The clock is synchronised"
    if root != Path("/"):
        return _check("time_sync", title, "unknown", "clock state only visible on the running system")
    result = read()
    if result is None:
        return _check("time_sync", title, "unknown", "adjtimex unavailable")
    return _check(
        "time_sync", title, "pass" if result.synchronized else "fail",
        f"timedated NTPSynchronized={'yes' if result.synchronized else 'no'}" if result.source == "timedated" else
        f"adjtimex state={result.state} STA_UNSYNC={'set' if result.status & STA_UNSYNC else 'clear'} "
        f"maxerror_us={result.max_error_us}",
    )


def check_auditd(root: Path, units: UnitState) -> Check:
    active, why = _service(root, units, "auditd.service", "auditd")
    return _check("auditd", "auditd is running", {True: "pass", False: "fail", None: "unknown"}[active], why)


def check_mac(root: Path) -> Check:
    title = "AppArmor or SELinux enforces"
    if root == Path("/"):
        enforce = _read(Path("/sys/fs/selinux/enforce"))
        if enforce is not None:
            return _check("mac", title, "pass" if enforce.strip() == "1" else "fail", f"selinux enforce={enforce.strip()}")
        apparmor = _read(Path("/sys/module/apparmor/parameters/enabled"))
        if apparmor is not None:
            on = apparmor.strip() == "Y"
            return _check("mac", title, "pass" if on else "fail", f"apparmor enabled={apparmor.strip()}")
        return _check("mac", title, "fail", "neither /sys/fs/selinux nor the apparmor module is present")
    selinux = _read(root / "etc/selinux/config") or ""
    if match := re.search(r"^\s*SELINUX\s*=\s*(\w+)", selinux, re.M):
        mode = match.group(1).lower()
        return _check("mac", title, "pass" if mode == "enforcing" else "fail", f"/etc/selinux/config SELINUX={mode}")
    return _check("mac", title, "unknown", "kernel state not visible under a copied root")


def check_usb_storage(root: Path) -> Check:
    title = "USB mass storage is blocked"
    rules = []
    for base in ("etc/modprobe.d", "usr/lib/modprobe.d", "lib/modprobe.d", "run/modprobe.d"):
        for conf in sorted((root / base).glob("*.conf")):
            for line in (_read(conf) or "").splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[1].replace("-", "_") == "usb_storage" and words[0] in ("blacklist", "install"):
                    if words[0] == "blacklist" or (len(words) >= 3 and words[2] in ("/bin/false", "/bin/true", "/usr/bin/false", "/usr/bin/true")):
                        rules.append(f"{conf.relative_to(root)}: {' '.join(words)}")
    loaded = (root / "sys/module/usb_storage").exists() if root == Path("/") else False
    if rules and not loaded:
        return _check("usb_storage", title, "pass", "; ".join(rules))
    if loaded:
        return _check("usb_storage", title, "fail", "usb_storage module is loaded" + (f" despite {'; '.join(rules)}" if rules else ""))
    return _check("usb_storage", title, "fail", "no modprobe rule blocks usb-storage")


def check_encryption(root: Path) -> Check:
    title = "Disk encryption is present"
    entries = [
        line.split()[0] for line in (_read(root / "etc/crypttab") or "").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    mapped = []
    if root == Path("/"):
        for uuid in glob.glob("/sys/block/*/dm/uuid"):
            if (_read(Path(uuid)) or "").startswith("CRYPT-"):
                mapped.append(uuid.split("/")[3])
    if entries or mapped:
        return _check("disk_encryption", title, "pass", f"crypttab={entries} active dm-crypt={mapped}")
    return _check("disk_encryption", title, "fail", "no /etc/crypttab entries and no dm-crypt device")


def check_auto_updates(root: Path) -> Check:
    unattended = None
    if (root / "var/lib/dpkg/status").exists():
        unattended = "unattended-upgrades" in system.installed_packages(root)
    auto = system.auto_updates(root, unattended)
    return _check(
        "auto_security_updates", "Security updates install automatically",
        "pass" if auto["enabled"] else "fail", f"{auto['mechanism']}: {auto['evidence']}",
    )


def run_checks(root: Path, config: PostureConfig, units: UnitState | None = None) -> dict[str, Any]:
    units = units or systemctl_state(root)
    sockets = listening(root)
    checks = [
        check_firewall(root, units),
        *check_ssh(root),
        check_ports(sockets, config.allowed_ports),
        check_time_sync(root),
        check_auditd(root, units),
        check_mac(root),
        check_usb_storage(root),
        check_encryption(root),
        check_auto_updates(root),
    ]
    counts = {s: sum(c["status"] == s for c in checks) for s in ("pass", "fail", "unknown")}
    return {"schema": 1, "checks": checks, **counts, "listening": sockets}


class PostureCollector(BlockingCollector):
    name = "posture"

    def __init__(self, config: PostureConfig, root: Path, clock: Callable[[], float] = time.time):
        self.config = config
        self.root = root.resolve()
        self.interval = config.interval
        self.clock = clock

    def read(self) -> list[Reading]:
        now = self.clock()
        body = run_checks(self.root, self.config)
        return [Reading(kind="posture", body=body, priority=Priority.SECURITY, retain=True, ts_ms=int(now * 1000))]


def build(config: Config, *, root: Path = Path("/")) -> list[PostureCollector]:
    posture = config.collectors.posture
    return [PostureCollector(posture, Path(root))] if posture.enabled else []
