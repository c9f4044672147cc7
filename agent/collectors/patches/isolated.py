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
import threading
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


class ChildScans:
    """Runs `scan(...)` in a fresh interpreter each call; a child that fails becomes a Scan with an
    error. `stop()` ends a scan in progress: the agent is stopping, and a scan that takes seconds
    (minutes with apt-get on a slow disk) would otherwise hold the stop until it ends, past
    systemd's TimeoutStopSec, and the agent would be killed before its goodbye and spool close."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._stopping = False

    def command(self, backend: str, root: Path, now_ms: int) -> list[str]:
        return [sys.executable, "-m", __name__, backend, str(root), str(now_ms)]

    def __call__(self, backend: str, root: Path, now_ms: int) -> Scan:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(import_paths())}
        with self._lock:
            if self._stopping:
                return Scan(backend, [], "scan process: not started, the agent is stopping", now_ms)
            try:
                child = subprocess.Popen(self.command(backend, root, now_ms), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=env)
            except OSError as exc:
                return Scan(backend, [], f"scan process: {type(exc).__name__}: {exc}", now_ms)
            self._child = child
        try:
            out, err = child.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            child.kill()
            child.communicate()
            return Scan(backend, [], f"scan process: TimeoutExpired: {exc}", now_ms)
        finally:
            with self._lock:
                self._child = None
        if child.returncode != 0:
            last = (err.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
            return Scan(backend, [], f"scan process failed ({child.returncode}): {last[:300]}", now_ms)
        return from_json(out)

    def stop(self) -> None:
        """End the scan in progress (SIGTERM) and refuse new ones."""
        with self._lock:
            self._stopping = True
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()


def main(argv: list[str]) -> int:
    backend, root, now_ms = argv
    print(to_json(scan(backend, Path(root), int(now_ms))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
