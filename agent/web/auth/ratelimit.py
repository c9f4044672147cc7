"""The login rate limit, pure: at most `failures` failed logins per user name and per client
address within a sliding `window`; beyond it, logins are refused (429 with Retry-After) until
the oldest counted failure leaves the window. The failures are the audit rows of the store, so
the limit holds across restarts and across every web process sharing the store."""

from __future__ import annotations

import math


def retry_after_s(failures_ms: list[int], now_ms: int, *, failures: int, window_s: float) -> int | None:
    """Seconds to wait before the next attempt, or None when one may be made now."""
    window_ms = int(window_s * 1000)
    recent = sorted(ms for ms in failures_ms if now_ms - window_ms < ms <= now_ms)
    if len(recent) < failures:
        return None
    # The attempt is allowed again once all but failures-1 of the recent ones have aged out.
    frees_at = recent[len(recent) - failures] + window_ms
    return max(1, math.ceil((frees_at - now_ms) / 1000))


def login_wait_s(by_user: list[int], by_addr: list[int], now_ms: int, *, failures: int,
                 window_s: float) -> int | None:
    """The longer wait of the two limits (per user name, per address), or None."""
    waits = [w for w in (retry_after_s(by_user, now_ms, failures=failures, window_s=window_s),
                         retry_after_s(by_addr, now_ms, failures=failures, window_s=window_s)) if w is not None]
    return max(waits) if waits else None
