"""Wall-clock milliseconds and the one reconnect backoff (MQTT broker, Modbus lines, silent devices)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


def now_ms() -> int:
    """Wall-clock time in integer milliseconds, the unit of every timestamp on the wire."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n (n >= 1 after the first failure): base * 2^(n-1), capped at `cap`,
    then shortened by a random share of up to `jitter`, so a fleet that lost its broker or
    gateway at the same moment does not come back in lock step."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.5  # 0.5: between half and all of the step ("equal jitter")

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        step = min(self.cap, self.base * 2 ** min(max(0, failures - 1), 60))
        return step * (1 - self.jitter * rand())
