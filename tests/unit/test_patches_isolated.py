"""The package scan runs in a child process: same result as in-process, and a child that dies
becomes a scan error instead of taking the daemon down."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.collectors.patches import apt
from agent.collectors.patches.collector import PatchesCollector
from agent.collectors.patches.config import PatchesConfig
from agent.readiness.maintenance import MaintenanceConfig
from agent.collectors.patches.common import Update
from agent.collectors.patches.isolated import ChildScans, from_json, to_json
from agent.collectors.patches.scan import Scan, scan

ROOTS = Path(__file__).resolve().parents[1] / "fixtures" / "roots"


def test_json_round_trip_keeps_every_field():
    original = Scan("dnf", [Update("openssl", "1:3.0.7-1", "1:3.0.7-2", "1:3.0.7-2", True, True, True,
                                   severity="Important", advisories=("RHSA-2024:1", "RHSA-2024:2"))],
                    None, 1_700_000_000_000, dnf_metadata_ms=1_699_000_000_000, dnf_reboot=True)
    assert from_json(to_json(original)) == original


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_child_scan_equals_in_process_scan(tmp_path):
    root = tmp_path / "debian12"
    shutil.copytree(ROOTS / "debian12", root, symlinks=True)
    in_process = scan("apt-get", root, 1)
    assert in_process.error is None and in_process.updates
    assert ChildScans()("apt-get", root, 1) == in_process


def test_a_dying_child_is_a_scan_error(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    result = ChildScans()("apt-get", Path("/"), 5)
    assert result.updates == [] and result.scanned_ms == 5
    assert result.error is not None and result.error.startswith("scan process failed (1)")


@pytest.mark.skipif(not list(Path(apt.PYTHON_APT_PATH).glob(f"apt_pkg.cpython-{sys.version_info.major}{sys.version_info.minor}-*.so")),
                    reason="Debian's python3-apt is not installed for this Python version")
def test_the_child_finds_debians_python_apt(tmp_path):
    """Even a venv without system site packages scans with python3-apt: the child loads apt_pkg
    from Debian's dist-packages; the daemon only looks whether it is there, without loading it."""
    probe = ("import sys; from agent.collectors.patches import apt; "
             "available = apt.python_apt_available(); loaded = 'apt_pkg' in sys.modules; "
             "print(available, loaded, apt.import_apt_pkg() is not None)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["True", "False", "True"]
    root = tmp_path / "debian12"
    shutil.copytree(ROOTS / "debian12", root, symlinks=True)
    child = ChildScans()("python-apt", root, 1)
    assert child.error is None and child == scan("python-apt", root, 1)


class SlowScans(ChildScans):
    """A child that never finishes by itself, standing in for a long apt-get scan."""

    def command(self, backend: str, root: Path, now_ms: int) -> list[str]:
        return [sys.executable, "-c", "import sys, time; print('started', flush=True); time.sleep(600)"]


def test_stopping_the_agent_ends_a_scan_in_progress_and_refuses_new_ones(tmp_path):
    collector = PatchesCollector(PatchesConfig(backend="apt-get"), MaintenanceConfig(), ROOTS / "debian12", None)
    collector.child_scans = SlowScans()
    collector.scanner = collector.child_scans

    async def collect_then_stop() -> list:
        cycle = asyncio.create_task(collector.collect())
        while collector.child_scans._child is None:  # the scan's child is running
            await asyncio.sleep(0.01)
        await collector.close()
        return await asyncio.wait_for(cycle, 60)  # a hang guard only: without stop() this takes 600 s

    body = asyncio.run(collect_then_stop())[0].body
    assert body["status"] == "unknown"
    assert body["status_reasons"][0].startswith("scan process failed (-15)")
    refused = collector.child_scans("apt-get", ROOTS / "debian12", 1)
    assert refused.error == "scan process: not started, the agent is stopping"


def test_a_failed_scan_is_logged_as_a_failure_not_as_no_updates(caplog):
    failing = ChildScans()
    failing.command = lambda backend, root, now_ms: [sys.executable, "-c", "import sys; sys.exit('apt is broken')"]
    collector = PatchesCollector(PatchesConfig(backend="apt-get"), MaintenanceConfig(), ROOTS / "debian12", None,
                                 scanner=failing)
    with caplog.at_level("INFO", logger="agent.collectors.patches.collector"):
        collector.read()
    assert [r.getMessage() for r in caplog.records if "package scan" in r.getMessage()][0].startswith(
        "package scan failed backend=apt-get error=scan process failed (1): apt is broken")
