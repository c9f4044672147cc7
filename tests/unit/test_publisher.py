"""Reconnect backoff: exponential, capped, jittered between half and all of the step."""

from __future__ import annotations

from agent.delivery.publisher import RECONNECT_MAX_S, RECONNECT_MIN_S, backoff_delay


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    lows = [backoff_delay(n, rand=lambda: 0.0) for n in range(12)]
    highs = [backoff_delay(n, rand=lambda: 1.0) for n in range(12)]
    assert highs[0] == RECONNECT_MIN_S and highs[1] == 2 * RECONNECT_MIN_S
    assert highs[-1] == RECONNECT_MAX_S and lows[-1] == RECONNECT_MAX_S / 2
    assert all(low == high / 2 for low, high in zip(lows, highs))
    assert highs == sorted(highs)


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert backoff_delay(10_000, rand=lambda: 0.5) == RECONNECT_MAX_S * 0.75
