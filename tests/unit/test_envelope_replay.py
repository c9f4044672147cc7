"""The replay guard on its own: per node, across node and consumer restarts; genuine
out-of-order traffic (backlogs, the Last Will, retained and QoS 1 copies) never trips it;
memory is bounded and what it forgets fails closed; its state survives in a file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.delivery.session import Session
from agent.trust.replay import (DUPLICATE, REPLAY, FileState, Limits, MemoryState, NodeWindow, ReplayGuard,
                                StateFileError)

HOST, STATUS, PLC = "edge/n1/host", "edge/n1/status", "edge/n1/modbus/plc"


def sig(n: int, forged: bool = False) -> str:
    return f"{n:011d}{'F' if forged else 'A'}" + "A" * 74


# (case, arrivals as (seq, topic, forged?), what the guard says to each)
RULES = [
    ("fresh, then the same again, then other content under that number",
     [(1, HOST, False), (1, HOST, False), (1, HOST, True)], [None, DUPLICATE, REPLAY]),
    ("one topic's backlog after another's newer messages",
     [(100, PLC, False), (101, STATUS, False), (5, HOST, False), (6, HOST, False), (99, HOST, False)],
     [None, None, None, None, None]),
    ("the Last Will, sealed before the birth, arrives after it and everything since",
     [(10, HOST, False), (12, STATUS, False), *[(n, HOST, False) for n in range(13, 400)], (11, STATUS, False),
      (11, STATUS, False)], [None] * 390 + [DUPLICATE]),
    ("a retained message sent again on resubscribe, long after",
     [(1, STATUS, False), *[(n, HOST, False) for n in range(2, 600)], (1, STATUS, False)], [None] * 599 + [DUPLICATE]),
    ("an old message, neither recent nor the last on its topic",
     [*[(n, HOST, False) for n in range(1, 600)], (7, HOST, False)], [None] * 599 + [REPLAY]),
    ("a consumer that joins late: everything below the first number is unseen",
     [(900, HOST, False), (3, HOST, False), (4, STATUS, False), (899, PLC, False)], [None] * 4),
    ("a second message under a number already used on another topic",
     [(5, HOST, False), (5, PLC, True)], [None, REPLAY]),
    ("sessions do not matter: a number is a number",
     [(50, HOST, False), (49, STATUS, False), (51, HOST, False), (50, HOST, False)], [None, None, None, DUPLICATE]),
]


@pytest.mark.parametrize(("arrivals", "expected"), [c[1:] for c in RULES], ids=[c[0] for c in RULES])
def test_each_rule(arrivals, expected) -> None:
    guard = ReplayGuard()
    assert [guard.admit("n1", seq, sig(seq, forged), topic) for seq, topic, forged in arrivals] == expected


def test_nodes_are_separate() -> None:
    guard = ReplayGuard()
    assert guard.admit("n1", 5, sig(5), HOST) is None
    assert guard.admit("n2", 5, sig(5), "edge/n2/host") is None
    assert guard.admit("n1", 5, sig(5), HOST) == DUPLICATE


def node_runs(state_dir: Path, runs: int, per_run: int = 30) -> list[list[tuple[int, str, str]]]:
    """What a node publishes over `runs` starts of the real session counter: per run a Will
    (sealed first, delivered last), a birth, then host and Modbus readings."""
    out = []
    for _ in range(runs):
        session = Session(state_dir, block=16, boot_id="b")
        will, birth = session.next_seq(), session.next_seq()
        readings = [(session.next_seq(), HOST if n % 3 else PLC) for n in range(per_run)]
        out.append([(birth, STATUS, "birth")] + [(s, t, "reading") for s, t in readings] + [(will, STATUS, "will")])
    return out


@pytest.mark.parametrize("consumer_restarts", [False, True], ids=["one consumer run", "consumer restarts"])
def test_an_old_session_replayed_after_ten_node_restarts(tmp_path: Path, consumer_restarts: bool) -> None:
    """Eleven runs of a node (the real session counter); every reading of each of the ten
    earlier runs, sent again, is a replay, whether the consumer ran throughout or restarted
    from its state file after every node run."""
    runs = node_runs(tmp_path / "node", 11)
    state_file = tmp_path / "replay.json"
    limits = Limits(recent=16)  # the last run alone is longer: every old message is out of the recent window
    guard = ReplayGuard(FileState(state_file), limits)
    for run in runs:
        for seq, topic, _ in run:
            assert guard.admit("n1", seq, sig(seq), topic) is None, (seq, topic)
        if consumer_restarts:
            guard = ReplayGuard(FileState(state_file), limits)
    verdicts = {number: {guard.admit("n1", seq, sig(seq), topic) for seq, topic, what in run if what == "reading"}
                for number, run in enumerate(runs[:10], 1)}
    assert verdicts == {number: {REPLAY} for number in range(1, 11)}


def test_a_restarted_consumer_still_knows_the_retained_and_recent_copies(tmp_path: Path) -> None:
    state_file = tmp_path / "replay.json"
    guard = ReplayGuard(FileState(state_file))
    for seq, topic in [(1, STATUS), (2, HOST), (3, PLC), (4, HOST)]:
        guard.admit("n1", seq, sig(seq), topic)
    restarted = ReplayGuard(FileState(state_file))
    assert restarted.admit("n1", 1, sig(1), STATUS) == DUPLICATE  # retained, sent on resubscribe
    assert restarted.admit("n1", 2, sig(2), HOST) == DUPLICATE  # QoS 1 resend
    assert restarted.admit("n1", 2, sig(2, forged=True), HOST) == REPLAY
    assert restarted.admit("n1", 5, sig(5), HOST) is None


def test_forgotten_gaps_raise_the_low_water_mark_and_fail_closed() -> None:
    guard = ReplayGuard(limits=Limits(max_gaps=3))
    for seq in (10, 12, 14, 16, 18):  # gaps 0-9, 11, 13, 15, 17 on one topic: only the top 3 kept
        guard.admit("n1", seq, sig(seq), STATUS)
    assert guard._windows["n1"].low_water == 11
    assert guard.admit("n1", 13, sig(13), STATUS) is None
    assert guard.admit("n1", 11, sig(11), STATUS) == REPLAY  # a late Will whose gap was forgotten
    assert guard.admit("n1", 3, sig(3), HOST) is None  # below the mark, another topic's order still decides
    assert guard.admit("n1", 2, sig(2), HOST) == REPLAY  # ... and holds that topic to it


def test_forgotten_topics_raise_the_topic_floor() -> None:
    guard = ReplayGuard(limits=Limits(recent=1, max_gaps=1, max_topics=2))
    for seq, topic in [(1, "a"), (3, "b"), (5, "c"), (7, "c")]:  # forgets topic a, and gaps up to 4
        guard.admit("n1", seq, sig(seq), f"edge/n1/{topic}")
    window = guard._windows["n1"]
    assert (window.topic_floor, window.low_water) == (1, 4) and list(window.topics) == ["edge/n1/b", "edge/n1/c"]
    assert guard.admit("n1", 1, sig(1), "edge/n1/a") == REPLAY
    assert guard.admit("n1", 2, sig(2), "edge/n1/a") is None  # above the floor: never seen on a


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Limits(recent=0)


arrivals = st.lists(st.tuples(st.integers(0, 40), st.booleans(), st.sampled_from("abcd")), max_size=120)


def topic_of(seq: int, forged: bool, topic: str) -> str:
    """A genuine message's topic is part of what is signed: one number, one topic."""
    return f"edge/n1/{topic if forged else 'abcd'[seq % 4]}"


@settings(max_examples=300, deadline=None)
@given(arrivals, st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))
def test_nothing_forgotten_ever_makes_a_repeat_fresh(arrivals, recent: int, gaps: int, topics: int) -> None:
    """With tiny memory the guard refuses genuine late messages, but never accepts a message twice."""
    guard = ReplayGuard(limits=Limits(recent=recent, max_gaps=gaps, max_topics=topics))
    accepted: set[tuple[int, str, str]] = set()
    for seq, forged, topic in arrivals:
        message = (seq, topic_of(seq, forged, topic), sig(seq, forged))
        if guard.admit("n1", seq, message[2], message[1]) is None:
            assert message not in accepted
            accepted.add(message)


@settings(max_examples=300, deadline=None)
@given(arrivals, st.integers(1, 10))
def test_with_memory_to_spare_it_is_exact(arrivals, recent: int) -> None:
    """Enough gap memory: fresh exactly when never seen; duplicate exactly when the same as a
    recent one or the last on its topic."""
    guard = ReplayGuard(limits=Limits(recent=recent))
    accepted: dict[int, str] = {}
    order: list[int] = []
    last_on_topic: dict[str, int] = {}
    for seq, forged, topic in arrivals:
        signature = sig(seq, forged)
        if seq not in accepted:
            expected = None
            accepted[seq] = signature
            order.append(seq)
            last_on_topic[topic_of(seq, forged, topic)] = seq
        elif accepted[seq] == signature and (seq in order[-recent:]
                                             or last_on_topic.get(topic_of(seq, forged, topic)) == seq):
            expected = DUPLICATE
        else:
            expected = REPLAY
        assert guard.admit("n1", seq, signature, topic_of(seq, forged, topic)) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["host", "plc", "patches"]), min_size=1, max_size=60), st.randoms())
def test_genuine_traffic_never_trips_the_guard(streams: list[str], rnd) -> None:
    """Numbers handed out in one order, each stream delivered in its own order but streams
    interleaved at random, the Will of each connection last, then everything sent again
    (QoS 1 resends and retained copies): every first arrival is fresh, every copy a duplicate."""
    numbers = iter(range(1, 10_000))
    will = next(numbers)
    queues: dict[str, list[int]] = {}
    for stream in streams:
        queues.setdefault(stream, []).append(next(numbers))
    delivered = []
    while any(queues.values()):
        stream = rnd.choice([s for s, q in queues.items() if q])
        delivered.append((queues[stream].pop(0), stream))
    delivered.append((will, "status"))
    guard = ReplayGuard()
    assert all(guard.admit("n1", seq, sig(seq), f"edge/n1/{t}") is None for seq, t in delivered)
    assert all(guard.admit("n1", seq, sig(seq), f"edge/n1/{t}") == DUPLICATE for seq, t in delivered)


def test_the_state_file_round_trips_and_is_json(tmp_path: Path) -> None:
    path = tmp_path / "replay.json"
    state = FileState(path)
    guard = ReplayGuard(state)
    for seq, topic in [(5, HOST), (9, STATUS), (7, PLC)]:
        guard.admit("n1", seq, sig(seq), topic)
    data = json.loads(path.read_text())
    assert data["nodes"]["n1"] == {"low_water": -1, "topic_floor": -1, "highest": 9, "gaps": [[0, 4], [6, 6], [8, 8]],
                                   "topics": [[HOST, 5, 5, sig(5)[:12]], [STATUS, 9, 9, sig(9)[:12]],
                                              [PLC, 7, 7, sig(7)[:12]]],
                                   "recent": [[5, sig(5)[:12]], [9, sig(9)[:12]], [7, sig(7)[:12]]]}
    assert FileState(path).load("n1") == state.load("n1")


@pytest.mark.parametrize(("content", "problem"), [
    (b"{not json", "cannot read the replay state"),
    (b'{"format": "something else", "nodes": {}}', "not a replay state file"),
    (b'{"format": "edge-agent replay state v1", "nodes": {"n1": {"low_water": -1}}}',
     "node 'n1': needs exactly low_water, topic_floor"),
    (b'{"format": "edge-agent replay state v1", "nodes": {"n1": {"low_water": -1, "topic_floor": -1, "highest": 5,'
     b' "gaps": [[3, 1]], "topics": [], "recent": []}}}', "node 'n1': gaps: ranges must be sorted"),
    (b'{"format": "edge-agent replay state v1", "nodes": {"n1": {"low_water": -1, "topic_floor": -1, "highest": 5,'
     b' "gaps": [], "topics": [["t", 1]], "recent": []}}}', r"node 'n1': topics: must be a list of \[str, int"),
])
def test_an_unreadable_state_file_is_refused_not_started_afresh(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "replay.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match=problem) as caught:
        FileState(path)
    assert str(path) in str(caught.value)


def test_a_state_file_that_cannot_be_written_is_reported_once_and_the_guard_goes_on(tmp_path: Path, caplog) -> None:
    path = tmp_path / "missing-folder" / "replay.json"
    guard = ReplayGuard(FileState(path))
    with caplog.at_level(logging.INFO):
        assert guard.admit("n1", 1, sig(1), HOST) is None
        assert guard.admit("n1", 2, sig(2), HOST) is None
        assert guard.admit("n1", 1, sig(1), HOST) == DUPLICATE
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "replay state not saved" in errors[0].getMessage()
        path.parent.mkdir()
        assert guard.admit("n1", 3, sig(3), HOST) is None
    assert "replay state saved again" in caplog.text and json.loads(path.read_text())["nodes"]["n1"]["highest"] == 3


def test_memory_state_keeps_the_window_for_the_process_only() -> None:
    state = MemoryState()
    ReplayGuard(state).admit("n1", 1, sig(1), HOST)
    assert ReplayGuard(state).admit("n1", 1, sig(1), HOST) == DUPLICATE
    assert ReplayGuard().admit("n1", 1, sig(1), HOST) is None
    assert isinstance(state.load("n1"), NodeWindow)
