"""The replay guard on its own: gaps, duplicates, replays, bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.trust.replay import DUPLICATE, REPLAY, ReplayGuard


def sig(n: int) -> str:
    return f"{n:012d}" + "A" * 74


def test_fresh_then_duplicate_then_conflict() -> None:
    guard = ReplayGuard(recent=8)
    assert guard.admit("n1", "s", 1, sig(1)) is None
    assert guard.admit("n1", "s", 1, sig(1)) == DUPLICATE
    assert guard.admit("n1", "s", 1, sig(2)) == REPLAY


def test_gaps_are_filled_once_in_any_order() -> None:
    guard = ReplayGuard(recent=2)
    assert guard.admit("n1", "s", 10, sig(10)) is None
    assert guard.admit("n1", "s", 20, sig(20)) is None
    for seq in (15, 11, 19, 3, 12, 18, 0):  # split, shrink from both ends, below the first
        assert guard.admit("n1", "s", seq, sig(seq)) is None, seq
    for seq in (15, 11, 19, 10):  # seen and no longer among the 2 most recent
        assert guard.admit("n1", "s", seq, sig(seq)) == REPLAY, seq
    assert guard.admit("n1", "s", 0, sig(0)) == DUPLICATE
    assert guard.admit("n1", "s", 14, sig(14)) is None
    assert guard.admit("n1", "s", 16, sig(16)) is None


def test_recent_memory_is_by_arrival_not_by_number() -> None:
    """A QoS 1 resend of a backlog message stays a duplicate though newer numbers arrived."""
    guard = ReplayGuard(recent=4)
    assert guard.admit("n1", "s", 5000, sig(5000)) is None
    assert guard.admit("n1", "s", 7, sig(7)) is None
    assert guard.admit("n1", "s", 9000, sig(9000)) is None
    assert guard.admit("n1", "s", 7, sig(7)) == DUPLICATE


def test_gap_memory_is_bounded_lowest_first() -> None:
    guard = ReplayGuard(recent=4, max_gaps=3)
    for seq in (10, 12, 14, 16, 18):  # gaps 0-9, 11, 13, 15, 17: only the top 3 kept
        guard.admit("n1", "s", seq, sig(seq))
    assert guard.admit("n1", "s", 13, sig(13)) is None
    assert guard.admit("n1", "s", 11, sig(11)) == REPLAY
    assert guard.admit("n1", "s", 3, sig(3)) == REPLAY


def test_nodes_and_sessions_are_separate() -> None:
    guard = ReplayGuard(recent=8)
    assert guard.admit("n1", "s", 5, sig(5)) is None
    assert guard.admit("n2", "s", 5, sig(5)) is None
    assert guard.admit("n1", "t", 5, sig(5)) is None


def test_sessions_per_node_are_bounded_least_recently_used_first() -> None:
    guard = ReplayGuard(recent=8, sessions_per_node=2)
    guard.admit("n1", "a", 1, sig(1))
    guard.admit("n1", "b", 1, sig(1))
    guard.admit("n1", "a", 2, sig(2))  # "a" is now the most recent
    guard.admit("n1", "c", 1, sig(1))  # evicts "b"
    assert guard.admit("n1", "a", 2, sig(2)) == DUPLICATE
    assert guard.admit("n1", "b", 1, sig(1)) is None  # forgotten: only the timestamp bounds it


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        ReplayGuard(recent=0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.booleans(), st.sampled_from("abc")), max_size=120),
       st.integers(1, 10))
def test_matches_an_unbounded_model(arrivals: list[tuple[int, bool, str]], recent: int) -> None:
    """With gap memory to spare, the guard answers exactly like a set of everything seen."""
    guard = ReplayGuard(recent=recent, max_gaps=1000)
    accepted: dict[int, str] = {}
    order: list[int] = []  # accepted sequences, by arrival
    last_on_topic: dict[str, int] = {}
    for seq, forged, topic in arrivals:
        signature = sig(seq + 1000 * forged)
        if seq not in accepted:
            expected = None
            accepted[seq] = signature
            order.append(seq)
            last_on_topic[topic] = seq
        elif accepted[seq] == signature and (seq in order[-recent:] or last_on_topic.get(topic) == seq):
            expected = DUPLICATE
        else:
            expected = REPLAY
        assert guard.admit("n1", "s", seq, signature, topic) == expected


def test_a_retained_message_sent_again_long_after_is_a_duplicate() -> None:
    guard = ReplayGuard(recent=4)
    assert guard.admit("n1", "s", 1, sig(1), "edge/n1/status") is None
    for seq in range(2, 100):
        assert guard.admit("n1", "s", seq, sig(seq), "edge/n1/host") is None
    assert guard.admit("n1", "s", 1, sig(1), "edge/n1/status") == DUPLICATE  # the retained copy
    assert guard.admit("n1", "s", 50, sig(50), "edge/n1/host") == REPLAY  # not the last on its topic
