"""The daemon's runtime status file (`status.json` in the state dir): connection, collectors,
devices, storage faults. The daemon writes it; `edge-agent status` reads it without a broker.

A full disk is exactly when the operator needs this file, and exactly when a new file cannot
be written. So the file is padded with spaces to a size with room to spare (JSON ignores
them), and when the atomic replace fails the daemon rewrites the file in place, in blocks
it already owns. A reader may catch an in-place rewrite half done: `read_runtime` reads
again before giving up.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUNTIME_FILE = "status.json"
BLOCK = 4096


def _padded(snapshot: dict[str, Any]) -> bytes:
    text = json.dumps(snapshot, sort_keys=True, indent=1).encode()
    size = (len(text) // BLOCK + 2) * BLOCK  # at least one block to spare
    return text + b" " * (size - len(text) - 1) + b"\n"


def write_runtime(state_dir: Path, snapshot: dict[str, Any]) -> bool:
    """Replace status.json (atomically if the disk allows, else in place); False if it could
    not be written at all (read-only, or the snapshot outgrew the file on a full disk)."""
    path = state_dir / RUNTIME_FILE
    data = _padded(snapshot)
    tmp = path.with_name(f".{RUNTIME_FILE}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)  # no fsync: it is rewritten at every change
        return True
    except OSError as exc:
        replace_error = exc
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # read-only: there is no temporary file either
    try:
        text = data.rstrip()
        with path.open("r+b") as handle:
            room = os.fstat(handle.fileno()).st_size
            if len(text) >= room:
                raise OSError(f"snapshot of {len(text)} bytes outgrew the file's {room}")
            handle.write(text + b" " * (room - len(text) - 1) + b"\n")
        return True
    except OSError as exc:
        log.warning("status file not written path=%s error=%s in_place_error=%s", path, replace_error, exc)
        return False


def read_runtime(state_dir: Path, attempts: int = 3) -> dict[str, Any] | None:
    """The last snapshot the daemon wrote, or None if there is none (or it cannot be read)."""
    for attempt in range(attempts):
        try:
            runtime = json.loads((state_dir / RUNTIME_FILE).read_text())
        except OSError:
            return None
        except ValueError:
            if attempt + 1 < attempts:
                time.sleep(0.05)  # caught an in-place rewrite half done
            continue
        return runtime if isinstance(runtime, dict) else None
    return None
