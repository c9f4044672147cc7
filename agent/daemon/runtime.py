"""The daemon's runtime status file (`status.json` in the state dir): connection, collectors,
devices, storage faults. The daemon writes it; `edge-agent status` reads it without a broker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUNTIME_FILE = "status.json"


def write_runtime(state_dir: Path, snapshot: dict[str, Any]) -> None:
    """Replace status.json atomically (no fsync: it is rewritten at every change)."""
    path = state_dir / RUNTIME_FILE
    tmp = path.with_name(f".{RUNTIME_FILE}.tmp")
    tmp.write_text(json.dumps(snapshot, sort_keys=True, indent=1))
    os.replace(tmp, path)


def read_runtime(state_dir: Path) -> dict[str, Any] | None:
    """The last snapshot the daemon wrote, or None if there is none (or it cannot be read)."""
    try:
        runtime = json.loads((state_dir / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None
    return runtime if isinstance(runtime, dict) else None
