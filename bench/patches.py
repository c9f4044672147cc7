"""Cost of the patches collector on this machine: the scan child's CPU per full scan, a cached cycle.

Each backend is measured in a fresh interpreter that runs the collector as the daemon does
(the package scan in a child process, agent.collectors.patches.isolated): the child's CPU
(user + system, from getrusage of reaped children, its own children included) per full scan,
and per cached cycle (package database unchanged: no child at all) the collector's own CPU.
Baseline in the same run: the CPU of a bare child (`python -c pass`, the same interpreter),
so `..._scan_over_bare_child` says how many interpreter start-ups a scan costs whatever the
machine. Also the peak RSS of the collector's process and of the scan child.

The python-apt figures need Debian's python3-apt for this Python version (the child finds it
in /usr/lib/python3/dist-packages even from a venv without system site packages).

    python bench/patches.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.collectors.patches import apt  # noqa: E402

PROBE = """
import json, resource, subprocess, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from agent.collectors.patches.collector import PatchesCollector
from agent.collectors.patches.config import PatchesConfig
from agent.readiness.maintenance import MaintenanceConfig

def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

def timed(work):
    child, own = children_cpu(), time.process_time()
    result = work()
    return result, children_cpu() - child, time.process_time() - own

out = {{"bare_child": [], "full_child": [], "full_own": [], "cached_child": [], "cached_own": []}}
for _ in range({scans}):
    out["bare_child"].append(timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))[1])
    collector = PatchesCollector(PatchesConfig(backend={backend!r}), MaintenanceConfig(), Path("/"), None)
    readings, child, own = timed(collector.read)
    out["full_child"].append(child); out["full_own"].append(own)
    for _ in range({cached_runs}):
        _, child, own = timed(collector.read)
        out["cached_child"].append(child); out["cached_own"].append(own)
body = readings[0].body
out["backend"] = body["backend"]; out["error"] = body["status_reasons"][:1]
out["upgradable"] = body["upgradable"]; out["security"] = body["security_pending"]
out["rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["child_rss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(out))
"""


def probe(backend: str, scans: int, cached_runs: int) -> dict:
    code = PROBE.format(root=str(ROOT), backend=backend, scans=scans, cached_runs=cached_runs)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(name: str, result: dict) -> None:
    bare = statistics.median(result["bare_child"])
    full = statistics.median(result["full_child"])
    print(f"# {name}: backend={result['backend']} upgradable={result['upgradable']} "
          f"security_pending={result['security']} {result['error']}", file=sys.stderr)
    print(f"{name}_full_scan_child_cpu: {full:.2f} s")
    print(f"{name}_full_scan_collector_cpu: {statistics.median(result['full_own']) * 1000:.1f} ms")
    print(f"{name}_cached_cycle_child_cpu: {max(result['cached_child']) * 1000:.1f} ms")
    print(f"{name}_cached_cycle_collector_cpu: {statistics.median(result['cached_own']) * 1000:.2f} ms")
    print(f"{name}_full_scan_over_bare_child: {full / bare:.1f} x")
    print(f"{name}_peak_rss: {result['rss_kib'] / 1024:.1f} MiB")
    print(f"{name}_child_peak_rss: {result['child_rss_kib'] / 1024:.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one full scan per backend (about 10 s)")
    args = parser.parse_args()
    scans, cached_runs = (1, 5) if args.quick else (3, 20)
    results = {"apt_get": probe("apt-get", scans, cached_runs)}
    if apt.python_apt_available():
        results["python_apt"] = probe("python-apt", scans, cached_runs)
    bare = statistics.median(sample for result in results.values() for sample in result["bare_child"])
    print(f"bare_child_cpu: {bare * 1000:.0f} ms")
    for name, result in results.items():
        report(name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
