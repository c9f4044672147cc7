"""Run the package scan in a child process.

Reading the package state costs the scanning process tens of MiB (python3-apt's cache, or
`apt-get -s` output and every index parsed), which a long-lived daemon would keep as heap
it never returns to the system; a crash inside apt_pkg's C code would take the daemon and
every other collector with it. A child costs a Python start-up per rescan, and rescans are
rare (package state changed, or `rescan_interval`).

    python -m agent.collectors.patches.isolated BACKEND ROOT NOW_MS   # prints the Scan as JSON
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from agent.collectors.patches.common import Update
from agent.collectors.patches.scan import Scan, scan

TIMEOUT_S = 600.0


def to_json(result: Scan) -> str:
    return json.dumps(dataclasses.asdict(result))


def from_json(text: str) -> Scan:
    data = json.loads(text)
    updates = [Update(**{**u, "advisories": tuple(u["advisories"])}) for u in data.pop("updates")]
    return Scan(updates=updates, **data)


def import_paths() -> list[str]:
    """Where this process finds modules, so the child imports what it can (python3-apt from
    the system's dist-packages included, even when it was loaded before a path change)."""
    paths = [path for path in sys.path if path]
    apt_pkg = sys.modules.get("apt_pkg")
    if apt_pkg is not None and getattr(apt_pkg, "__file__", None):
        paths.append(str(Path(apt_pkg.__file__).parent))
    return paths


def scan_in_child(backend: str, root: Path, now_ms: int) -> Scan:
    """`scan(...)` in a fresh interpreter; a child that fails becomes a Scan with an error."""
    argv = [sys.executable, "-m", __name__, backend, str(root), str(now_ms)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(import_paths())}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Scan(backend, [], f"scan process: {type(exc).__name__}: {exc}", now_ms)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Scan(backend, [], f"scan process failed ({done.returncode}): {last[:300]}", now_ms)
    return from_json(done.stdout)


def main(argv: list[str]) -> int:
    backend, root, now_ms = argv
    print(to_json(scan(backend, Path(root), int(now_ms))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
