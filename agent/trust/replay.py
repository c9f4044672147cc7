"""Sequence bookkeeping that tells a fresh message from a duplicate or a replay.

Per (node, session) the guard keeps: the highest sequence accepted; the gaps below it, i.e.
numbers it has never seen; and the last `recent` accepted messages (sequence and the start of
their signature). Sequence numbers are global to a session, but the agent's spool keeps order
only per stream and a Last Will is sealed when the connection opens and delivered much later,
so genuine messages often arrive below the highest: they fill a gap and are accepted.

Verdicts (docs/security.md):
- "duplicate": the same signed message as one of the last `recent` accepted, or as the last
  one accepted on its topic. An MQTT QoS 1 redelivery looks like the first, a retained
  message sent again when a consumer resubscribes like the second (and so does an attacker's
  copy: it carries nothing new). Drop it quietly; it is not an alarm.
- "replay": a sequence that was accepted earlier and is no longer recent, or a second,
  different message under an accepted sequence. No transport does this: count it and alarm.

Memory is bounded: `recent` entries, at most `max_gaps` gap ranges (the lowest gaps are
forgotten first, after which their numbers count as replays) and `max_topics` topics per
session; `sessions_per_node` sessions per node, least recently used forgotten first. A forgotten session starts afresh, so
replays of old sessions are bounded only by the timestamp check.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field

DUPLICATE = "duplicate"
REPLAY = "replay"
_MARK_CHARS = 12  # of the base64url signature: 72 bits, ample to tell two signatures apart


@dataclass
class _Session:
    highest: int
    gap_starts: list[int] = field(default_factory=list)  # sorted, disjoint, inclusive ranges
    gap_ends: list[int] = field(default_factory=list)
    recent: OrderedDict[int, str] = field(default_factory=OrderedDict)  # seq -> signature mark
    last_on_topic: OrderedDict[str, tuple[int, str]] = field(default_factory=OrderedDict)

    def add_gap(self, start: int, end: int, limit: int) -> None:
        if start <= end:
            self.gap_starts.append(start)
            self.gap_ends.append(end)
            if len(self.gap_starts) > limit:
                del self.gap_starts[0], self.gap_ends[0]

    def take_gap(self, seq: int) -> bool:
        """Remove `seq` from the gaps; False if it was not in one (it was seen, or forgotten)."""
        at = bisect_right(self.gap_starts, seq) - 1
        if at < 0 or seq > self.gap_ends[at]:
            return False
        start, end = self.gap_starts[at], self.gap_ends[at]
        if start == end:
            del self.gap_starts[at], self.gap_ends[at]
        elif seq == start:
            self.gap_starts[at] = seq + 1
        elif seq == end:
            self.gap_ends[at] = seq - 1
        else:
            self.gap_ends[at] = seq - 1
            self.gap_starts.insert(at + 1, seq + 1)
            self.gap_ends.insert(at + 1, end)
        return True


class ReplayGuard:
    """Remembers what it accepted; `admit` returns None (fresh) or the reason to reject."""

    def __init__(self, recent: int = 256, max_gaps: int = 16384, max_topics: int = 1024,
                 sessions_per_node: int = 4) -> None:
        if min(recent, max_gaps, max_topics, sessions_per_node) < 1:
            raise ValueError("recent, max_gaps, max_topics and sessions_per_node must be at least 1")
        self.recent = recent
        self.max_gaps = max_gaps
        self.max_topics = max_topics
        self.sessions_per_node = sessions_per_node
        self._nodes: dict[str, OrderedDict[str, _Session]] = {}

    def admit(self, node: str, session: str, seq: int, signature: str, topic: str = "") -> str | None:
        sessions = self._nodes.setdefault(node, OrderedDict())
        mark = signature[:_MARK_CHARS]
        state = sessions.get(session)
        if state is None:
            # Joined mid-session: everything below the first message is unseen, not replayed.
            state = sessions[session] = _Session(seq)
            state.add_gap(0, seq - 1, self.max_gaps)
            if len(sessions) > self.sessions_per_node:
                sessions.popitem(last=False)
        else:
            sessions.move_to_end(session)
            if seq > state.highest:
                state.add_gap(state.highest + 1, seq - 1, self.max_gaps)
                state.highest = seq
            elif not state.take_gap(seq):
                same = state.recent.get(seq) == mark or state.last_on_topic.get(topic) == (seq, mark)
                return DUPLICATE if same else REPLAY
        state.recent[seq] = mark
        if len(state.recent) > self.recent:
            state.recent.popitem(last=False)
        state.last_on_topic[topic] = (seq, mark)
        state.last_on_topic.move_to_end(topic)
        if len(state.last_on_topic) > self.max_topics:
            state.last_on_topic.popitem(last=False)
        return None
