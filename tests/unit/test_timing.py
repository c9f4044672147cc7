"""The one backoff: exponential, capped, jittered down by at most `jitter` of the step."""

from __future__ import annotations

import random

from agent.core.timing import Backoff


def test_backoff_doubles_up_to_the_cap() -> None:
    plain = Backoff(base=1.0, cap=8.0, jitter=0.0)
    assert [plain.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_jitter_stays_between_half_and_all_of_the_step() -> None:
    backoff = Backoff(base=0.5, cap=30.0, jitter=0.5)
    highs = [backoff.delay(n, rand=lambda: 0.0) for n in range(1, 13)]
    lows = [backoff.delay(n, rand=lambda: 1.0) for n in range(1, 13)]
    assert highs[0] == 0.5 and highs[1] == 1.0 and highs[-1] == 30.0
    assert all(low == high / 2 for low, high in zip(lows, highs))
    rng = random.Random(7)
    jittered = [backoff.delay(4, rand=rng.random) for _ in range(50)]
    assert all(2.0 <= d <= 4.0 for d in jittered) and len(set(jittered)) > 1


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert Backoff(base=0.5, cap=30.0).delay(10_000, rand=lambda: 0.5) == 30.0 * 0.75
