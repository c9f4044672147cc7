"""Who this run of the agent is: a persisted sequence counter and a session id per start.

Every sealed message takes the next sequence number; numbers keep increasing across
restarts and reboots and are never reused, and taking one never waits for the disk. Two
rules give that:

- Blocks reserved ahead: the end of a block of numbers is written to session.json (fsync
  and atomic rename) before the first number of the block is used, so a kill -9 or a
  power cut skips at most one block, and a restart never reuses a number.
- A floor from the clock: a run starts at the later of its reservation and the wall clock
  in milliseconds. If session.json cannot be written (disk full, read-only remount, I/O
  error), the run keeps counting past its reservation, in memory, and tries the file again
  at most once a second. The numbers it used unwritten are still never reused: they lie
  below the next run's clock floor as long as the run sealed fewer than 1,000 messages a
  second on average since it started (an agent seals tens). The clock floor also covers a
  lost, corrupt or wiped session.json. What it cannot cover is both at once: the file
  unwritable and the clock set back before the next start (say, a dead RTC battery), which
  the agent cannot tell from a correct clock; it logs `session state not writable` and
  `edge-agent status` shows it, so the operator knows the numbers are at risk.

The jump to the clock at each start is not a loss: the session id changes on every start,
and consumers count gaps within one session only.

The session id is `<run>.<random>`: `run` counts agent starts on this node, the random
part keeps ids unique even if the state directory is wiped.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.core.timing import now_ms

log = logging.getLogger(__name__)

FILENAME = "session.json"
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
RETRY_S = 1.0  # an unwritable session.json is tried again at most this often


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file; on
    failure (disk full: a short write) the old file stays and the temporary one goes."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # read-only: there is no temporary file either
        raise
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


def _read_state(path: Path) -> dict[str, object]:
    try:
        state = json.loads(path.read_text())
        if isinstance(state.get("run"), int) and isinstance(state.get("next_seq"), int):
            return state
        problem = "missing run or next_seq"
    except FileNotFoundError:
        return {"run": 0, "next_seq": 1, "boot_id": ""}
    except (OSError, ValueError, AttributeError) as exc:
        problem = str(exc)
    # Without the file we cannot know the last number used: the clock floor (see above) covers it.
    log.error("session state unreadable path=%s error=%s restarting_seq_at=clock", path, problem)
    return {"run": 0, "next_seq": 0, "boot_id": ""}


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
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._path = state_dir / FILENAME
        self._block = block
        self._monotonic = monotonic
        self._lock = threading.Lock()
        state = _read_state(self._path)
        boot = read_boot_id() if boot_id is None else boot_id
        run = int(state["run"]) + 1  # type: ignore[call-overload]
        self.identity = Identity(
            session=f"{run}.{token()}", run=run, boot_id=boot, rebooted=bool(state.get("boot_id")) and state["boot_id"] != boot
        )
        self._next = max(int(state["next_seq"]), clock_ms())  # type: ignore[call-overload]
        self._limit = self._next
        self.write_error = ""  # why session.json could not be written, while it cannot
        self._retry_at = 0.0
        self._reserve()

    @property
    def session(self) -> str:
        return self.identity.session

    @property
    def persisted(self) -> bool:
        """Whether every number used so far lies below a reservation on disk."""
        return self._next <= self._limit

    def _reserve(self) -> None:
        """Write the end of the next block; if that fails, keep counting and say so."""
        limit = self._next + self._block
        state = {"run": self.identity.run, "next_seq": limit, "boot_id": self.identity.boot_id,
                 "session": self.identity.session}
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self._path, json.dumps(state).encode())
        except OSError as exc:
            if not self.write_error:
                log.error("session state not writable, numbering on from memory path=%s error=%s next_seq=%d",
                          self._path, exc, self._next)
            self.write_error = str(exc)[:300]
            self._retry_at = self._monotonic() + RETRY_S
            return
        if self.write_error:
            log.info("session state writable again path=%s next_seq=%d", self._path, self._next)
        self.write_error = ""
        self._limit = limit

    def next_seq(self) -> int:
        with self._lock:
            if self._next >= self._limit and self._monotonic() >= self._retry_at:
                self._reserve()
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
