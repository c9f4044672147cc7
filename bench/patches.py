"""Cost of the patches collector on this machine: full package scan and a cached cycle.

Each measurement runs in a fresh interpreter so peak RSS belongs to that scan alone.
Baseline in the same run: the same interpreter importing the collector without scanning,
so `scan_rss_ratio` shows what the scan adds over the agent's own imports.

    python bench/patches.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_APT = "/usr/lib/python3/dist-packages"

PROBE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
if {python_apt!r}:
    sys.path.append({system_apt!r})
from pathlib import Path
from agent.collectors.patches.collector import PatchesCollector
from agent.collectors.patches.config import PatchesConfig
from agent.readiness.maintenance import MaintenanceConfig
out = {{}}
if {backend!r}:
    collector = PatchesCollector(PatchesConfig(backend={backend!r}), MaintenanceConfig(), Path("/"), None)
    started = time.perf_counter(); body = collector.read()[0].body; out["full_s"] = time.perf_counter() - started
    cached = []
    for _ in range({cached_runs}):
        started = time.perf_counter(); collector.read(); cached.append(time.perf_counter() - started)
    out["cached_s"] = min(cached)
    out["upgradable"] = body["upgradable"]; out["security"] = body["security_pending"]
import gc; gc.collect()
out["rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["child_rss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
out["rss_after_kib"] = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
print(json.dumps(out))
"""


def probe(backend: str, python_apt: bool, cached_runs: int) -> dict:
    code = PROBE.format(root=str(ROOT), python_apt=python_apt, system_apt=SYSTEM_APT, backend=backend, cached_runs=cached_runs)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one scan per backend (about 10 s)")
    args = parser.parse_args()
    cached_runs = 3 if args.quick else 10
    baseline = probe("", False, 0)
    results = {"apt-get": probe("apt-get", False, cached_runs)}
    has_python_apt = subprocess.run([sys.executable, "-c", f"import sys; sys.path.append({SYSTEM_APT!r}); import apt_pkg"],
                                    capture_output=True).returncode == 0
    if has_python_apt:
        results["python-apt"] = probe("python-apt", True, cached_runs)
    for name, result in results.items():
        print(f"# {name}: upgradable={result['upgradable']} security_pending={result['security']}", file=sys.stderr)
    print(f"baseline_rss: {baseline['rss_kib'] / 1024:.1f} MiB")
    for name, result in results.items():
        key = name.replace("-", "_")
        print(f"{key}_full_scan: {result['full_s']:.2f} s")
        print(f"{key}_cached_cycle: {result['cached_s'] * 1000:.1f} ms")
        print(f"{key}_peak_rss: {result['rss_kib'] / 1024:.1f} MiB")
        print(f"{key}_rss_after_scan: {result['rss_after_kib'] / 1024:.1f} MiB")
        print(f"{key}_child_peak_rss: {result['child_rss_kib'] / 1024:.1f} MiB")
        print(f"{key}_scan_rss_ratio: {result['rss_kib'] / baseline['rss_kib']:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
