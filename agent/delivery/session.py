"""Who this run of the agent is: a persisted sequence counter and a session id per start.

Every sealed message takes the next sequence number; numbers keep increasing across
restarts and reboots. The counter reserves numbers in blocks: the end of the block is
written (fsync + atomic rename) before any number in it is used, and a new run starts
at the end of the last reservation. A kill -9 or a power cut therefore skips at most
one block of numbers, and never reuses one. The skipped numbers are not a loss: the
session id changes on every start, and consumers count gaps within one session.

The session id is `<run>.<random>`: `run` counts agent starts on this node, the random
part keeps ids unique even if the state directory is wiped.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.core.timing import now_ms

log = logging.getLogger(__name__)

FILENAME = "session.json"
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Identity:
    session: str
    run: int
    boot_id: str
    rebooted: bool  # the kernel booted since the previous run of the agent


def _read_state(path: Path, clock_ms: Callable[[], int]) -> dict[str, object]:
    try:
        state = json.loads(path.read_text())
        if isinstance(state.get("run"), int) and isinstance(state.get("next_seq"), int):
            return state
        problem = "missing run or next_seq"
    except FileNotFoundError:
        return {"run": 0, "next_seq": 1, "boot_id": ""}
    except (OSError, ValueError, AttributeError) as exc:
        problem = str(exc)
    # Without the file we cannot know the last number used: start from the wall clock in
    # milliseconds, which is above any count this node could have reached honestly.
    floor = clock_ms()
    log.error("session state unreadable path=%s error=%s restarting_seq_at=%d", path, problem, floor)
    return {"run": 0, "next_seq": floor, "boot_id": ""}


class Session:
    """The run's identity plus the sequence counter; `next_seq` is thread-safe."""

    def __init__(
        self,
        state_dir: Path,
        *,
        block: int = 1000,
        boot_id: str | None = None,
        token: Callable[[], str] = lambda: secrets.token_hex(4),
        clock_ms: Callable[[], int] = now_ms,
    ):
        state_dir.mkdir(parents=True, exist_ok=True)
        self._path = state_dir / FILENAME
        self._block = block
        self._lock = threading.Lock()
        state = _read_state(self._path, clock_ms)
        boot = read_boot_id() if boot_id is None else boot_id
        run = int(state["run"]) + 1  # type: ignore[call-overload]
        self.identity = Identity(
            session=f"{run}.{token()}", run=run, boot_id=boot, rebooted=bool(state.get("boot_id")) and state["boot_id"] != boot
        )
        self._next = int(state["next_seq"])  # type: ignore[call-overload]
        self._limit = self._next
        self._reserve(self._next + block)

    @property
    def session(self) -> str:
        return self.identity.session

    def _reserve(self, limit: int) -> None:
        state = {"run": self.identity.run, "next_seq": limit, "boot_id": self.identity.boot_id,
                 "session": self.identity.session}
        write_atomically(self._path, json.dumps(state).encode())
        self._limit = limit

    def next_seq(self) -> int:
        with self._lock:
            if self._next >= self._limit:
                self._reserve(self._next + self._block)
            seq = self._next
            self._next += 1
            return seq

    @property
    def last_seq(self) -> int:
        """The last number handed out (or just below the first, before any)."""
        return self._next - 1


def read_state(state_dir: Path) -> dict[str, object] | None:
    """The persisted session state for `edge-agent status`, or None if there is none."""
    try:
        return json.loads((state_dir / FILENAME).read_text())
    except (OSError, ValueError):
        return None
