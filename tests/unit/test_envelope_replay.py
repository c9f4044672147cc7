"""The replay window on its own: duplicates, replays, order, bounded memory."""

from __future__ import annotations

import pytest

from agent.replay import DUPLICATE, REPLAY, ReplayGuard


def sig(n: int) -> str:
    return f"{n:08d}" + "A" * 78


def test_fresh_then_duplicate_then_conflict() -> None:
    guard = ReplayGuard(window=8)
    assert guard.admit("n1", "s", 1, sig(1)) is None
    assert guard.admit("n1", "s", 1, sig(1)) == DUPLICATE
    assert guard.admit("n1", "s", 1, sig(2)) == REPLAY


def test_window_edges() -> None:
    guard = ReplayGuard(window=8)
    assert guard.admit("n1", "s", 20, sig(20)) is None
    assert guard.admit("n1", "s", 13, sig(13)) is None  # 20 - 7: inside
    assert guard.admit("n1", "s", 12, sig(12)) == REPLAY  # 20 - 8: outside
    assert guard.admit("n1", "s", 13, sig(13)) == DUPLICATE


def test_jumping_ahead_forgets_slots_that_left_the_window() -> None:
    guard = ReplayGuard(window=4)
    for seq in range(1, 5):
        assert guard.admit("n1", "s", seq, sig(seq)) is None
    assert guard.admit("n1", "s", 6, sig(6)) is None  # slot of 5 (shared with 1) must be empty now
    assert guard.admit("n1", "s", 5, sig(5)) is None
    assert guard.admit("n1", "s", 100, sig(100)) is None
    assert guard.admit("n1", "s", 97, sig(97)) is None
    assert guard.admit("n1", "s", 96, sig(96)) == REPLAY


def test_nodes_and_sessions_are_separate() -> None:
    guard = ReplayGuard(window=8)
    assert guard.admit("n1", "s", 5, sig(5)) is None
    assert guard.admit("n2", "s", 5, sig(5)) is None
    assert guard.admit("n1", "t", 5, sig(5)) is None


def test_sessions_per_node_are_bounded_least_recently_used_first() -> None:
    guard = ReplayGuard(window=8, sessions_per_node=2)
    guard.admit("n1", "a", 1, sig(1))
    guard.admit("n1", "b", 1, sig(1))
    guard.admit("n1", "a", 2, sig(2))  # "a" is now the most recent
    guard.admit("n1", "c", 1, sig(1))  # evicts "b"
    assert guard.admit("n1", "a", 2, sig(2)) == DUPLICATE
    assert guard.admit("n1", "b", 1, sig(1)) is None  # forgotten: only the timestamp bounds it


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        ReplayGuard(window=0)
