"""The real patches and posture collectors on this machine: sanity checks, no fixed counts."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.collectors.patches.collector import PatchesCollector
from agent.collectors.patches.config import PatchesConfig
from agent.collectors.posture import collector as posture
from agent.collectors.posture.config import PostureConfig
from agent.core.reading import Priority
from agent.readiness.maintenance import MaintenanceConfig

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/var/lib/dpkg/status").exists() or shutil.which("apt") is None, reason="needs apt"),
]


def apt_list_upgradable() -> set[str]:
    out = subprocess.run(["apt", "list", "--upgradable"], capture_output=True, text=True, check=True,
                         env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}).stdout
    return {line.split("/", 1)[0] for line in out.splitlines() if "[upgradable from:" in line}


def test_live_patches_agree_with_apt(tmp_path: Path) -> None:
    collector = PatchesCollector(PatchesConfig(backend="apt-get"), MaintenanceConfig(), Path("/"), tmp_path)
    [reading] = asyncio.run(collector.collect())
    body = reading.body
    assert reading.kind == "patches" and reading.priority == Priority.SECURITY
    json.dumps(body)  # plain JSON data only
    assert body["status"] in ("ok", "stale", "unknown")
    if body["status"] == "ok":
        assert body["freshness"]["last_update_ms"] is not None
    # apt lists the same packages as upgradable (names; multi-arch suffixes aside)
    assert {u.split(":")[0] for u in body["kept_back"]} <= apt_list_upgradable()
    assert body["upgradable"] == len(apt_list_upgradable())
    assert body["security_pending"] == len(body["security_updates"]) >= body["security_hidden"]
    for update in body["security_updates"]:
        assert update["fixed"] != update["installed"] and update["first_seen_ms"] > 0
    assert body["reboot"]["running_kernel"]
    assert (tmp_path / "patches-first-seen.json").exists() or body["security_pending"] == 0


def test_live_backends_agree(tmp_path: Path) -> None:
    """python3-apt (run with the system's dist-packages on the path) and the parser agree."""
    probe = subprocess.run([sys.executable, "-c", "import sys; sys.path.append('/usr/lib/python3/dist-packages'); import apt_pkg"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("python3-apt not installed for this Python")
    script = (
        "import sys, json; sys.path.append('/usr/lib/python3/dist-packages');"
        "from pathlib import Path;"
        "from agent.collectors.patches.collector import PatchesCollector;"
        "from agent.collectors.patches.config import PatchesConfig; from agent.readiness.maintenance import MaintenanceConfig;"
        "b = PatchesCollector(PatchesConfig(backend=sys.argv[1]), MaintenanceConfig(), Path('/'), None).read()[0].body;"
        "print(json.dumps({k: b[k] for k in ('upgradable', 'upgrade_installs', 'security_pending', 'held')}"
        " | {'security': sorted(u['package'].split(':')[0] for u in b['security_updates'])}))"
    )
    results = [
        json.loads(subprocess.run([sys.executable, "-c", script, backend], capture_output=True, text=True, check=True).stdout)
        for backend in ("python-apt", "apt-get")
    ]
    assert results[0] == results[1]


def test_live_posture() -> None:
    body = posture.run_checks(Path("/"), PostureConfig())
    assert {c["status"] for c in body["checks"]} <= {"pass", "fail", "unknown"}
    checks = {c["id"]: c for c in body["checks"]}
    assert checks["time_sync"]["status"] in ("pass", "fail")  # adjtimex is readable without root
    assert body["listening"] is not None and all(0 < s["port"] < 65536 for s in body["listening"])
