"""Host health: CPU, load, memory, swap, filesystems, temperatures, uptime, network errors,
clock synchronisation, failed systemd units and eMMC wear.

A value the host does not expose is left out of the body, never reported as zero.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from agent.collectors.base import BlockingCollector
from agent.collectors.host.clock import read_clock
from agent.core.reading import Priority, Reading

if TYPE_CHECKING:
    from agent.config import Config

log = logging.getLogger(__name__)

# Pseudo and container file systems say nothing about the panel PC's disks.
_SKIP_FSTYPES = {"tmpfs", "devtmpfs", "squashfs", "overlay", "proc", "sysfs", "cgroup", "cgroup2",
                 "devpts", "mqueue", "debugfs", "tracefs", "securityfs", "pstore", "autofs",
                 "fusectl", "configfs", "bpf", "hugetlbfs", "efivarfs", "ramfs", "nsfs", "binfmt_misc"}


def cpu_busy_percent(before: Any, after: Any) -> float | None:
    """Share of CPU time not idle between two psutil.cpu_times() samples."""
    idle_fields = ("idle", "iowait")
    total = sum(after) - sum(before)
    if total <= 0:
        return None
    idle = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in idle_fields)
    return round(100.0 * (total - idle) / total, 1)


def parse_pressure(text: str) -> dict[str, float]:
    """`some avg10=0.12 ...` lines of /proc/pressure/* as {"some_avg10": 0.12, ...}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, *pairs = line.split()
        for pair in pairs:
            key, _, value = pair.partition("=")
            if key.startswith("avg"):
                out[f"{kind}_{key}"] = float(value)
    return out


def clock_state() -> dict[str, Any] | None:
    clock = read_clock()
    if clock is None:
        return None
    fields = {"synchronized": clock.synchronized, "source": clock.source, "offset_us": clock.offset_us,
              "max_error_us": clock.max_error_us, "est_error_us": clock.est_error_us}
    return {key: value for key, value in fields.items() if value is not None}


def failed_units() -> list[str] | None:
    """Names of failed systemd units, or None where systemd is not running."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        return None
    try:
        out = subprocess.run(["systemctl", "list-units", "--state=failed", "--plain", "--no-legend",
                              "--no-pager"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def emmc_wear(sys_root: Path = Path("/sys")) -> dict[str, str]:
    """eMMC life-time estimates (JEDEC: 0x01 = 0-10 % used ... 0x0b = exceeded)."""
    return {path.parent.name: path.read_text().strip()
            for path in sys_root.glob("class/mmc_host/*/*/life_time") if path.is_file()}


def filesystems() -> list[dict[str, Any]]:
    disks = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _SKIP_FSTYPES or part.device in seen:
            continue
        seen.add(part.device)
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        disks.append({"mount": part.mountpoint, "device": part.device, "fstype": part.fstype,
                      "total_bytes": usage.total, "used_bytes": usage.used, "free_bytes": usage.free,
                      "percent": usage.percent})
    return disks


def temperatures() -> dict[str, float]:
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return {}
    out = {}
    for chip, sensors in reader().items():
        for index, sensor in enumerate(sensors):
            out[f"{chip}/{sensor.label or index}"] = sensor.current
    return out


class HostCollector(BlockingCollector):
    """Samples the host it runs on; `interval` comes from [collectors.host]."""

    name = "host"

    # CPU use is a difference of two samples; the first reading waits this long after the
    # baseline so that `edge-agent collect host` shows it too.
    FIRST_CPU_WINDOW_S = 0.5

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._cpu_before = psutil.cpu_times()
        self._cpu_before_at = time.monotonic()

    def sample(self) -> dict[str, Any]:
        time.sleep(max(0.0, self._cpu_before_at + self.FIRST_CPU_WINDOW_S - time.monotonic()))
        now = time.time()
        cpu_after = psutil.cpu_times()
        self._cpu_before_at = time.monotonic()
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        body: dict[str, Any] = {
            "cpu": {"count": psutil.cpu_count()},
            "memory": {"total_bytes": memory.total, "available_bytes": memory.available,
                       "percent": memory.percent},
            "swap": {"total_bytes": swap.total, "used_bytes": swap.used, "percent": swap.percent},
            "disks": filesystems(),
            "boot_time_ms": int(psutil.boot_time() * 1000),
            "uptime_s": int(now - psutil.boot_time()),
            "network": {name: {"errin": c.errin, "errout": c.errout, "dropin": c.dropin, "dropout": c.dropout}
                        for name, c in psutil.net_io_counters(pernic=True).items() if name != "lo"},
        }
        busy = cpu_busy_percent(self._cpu_before, cpu_after)
        self._cpu_before = cpu_after
        if busy is not None:
            body["cpu"]["percent"] = busy
        if hasattr(os, "getloadavg"):
            body["cpu"]["load1"], body["cpu"]["load5"], body["cpu"]["load15"] = (round(x, 2) for x in os.getloadavg())
        try:
            body["memory"]["pressure"] = parse_pressure(Path("/proc/pressure/memory").read_text())
        except OSError:
            pass  # kernel without PSI: leave it out
        optional = {"temperatures": temperatures(), "clock": clock_state(),
                    "failed_units": failed_units(), "emmc_life_time": emmc_wear()}
        body.update({key: value for key, value in optional.items() if value not in (None, {})})
        return body

    def read(self) -> list[Reading]:
        return [Reading(kind="host", body=self.sample(), priority=Priority.STATE)]


def build(config: Config, *, root: Path = Path("/")) -> list[HostCollector]:
    """The host collector always describes the running host; `root` does not apply to it."""
    host = config.collectors.host
    return [HostCollector(host.interval)] if host.enabled else []
