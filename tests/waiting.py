"""The one polling wait the tests share: poll a condition until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.05,
               tolerate: tuple[type[BaseException], ...] = ()) -> T:
    """The first truthy result of `condition()`; AssertionError naming `what` (and the last
    result) after `timeout` s. Exceptions in `tolerate` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = condition()
        except tolerate:
            last = None
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}"[:2000])
        time.sleep(interval)
