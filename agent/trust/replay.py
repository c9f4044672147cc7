"""The replay guard: per node, tells a fresh message from a duplicate or a replay, across any
number of restarts of the node and of the consumer (docs/security.md, "Duplicate or replay").

A node's sequence numbers are its own and never reused (the agent persists its counter;
sessions do not matter here). Genuine messages still arrive out of order: the spool keeps
order per stream only, so one topic's backlog arrives after another's newer messages, and
the Last Will is sealed when a connection opens but delivered when it dies, after the birth
and everything since. In the spirit of IPsec's anti-replay window, per node the guard keeps
(`NodeWindow`):

- the window: the highest number accepted from the node and, above the low-water mark,
  the ranges of numbers not seen yet (gaps: at most `max_gaps`; forgetting the lowest raises
  the low-water mark to its end). Within the window the guard knows each number exactly;
- per topic (at most `max_topics`, least recently used forgotten first): the highest number
  accepted on it and the last message accepted on it (number and signature mark); the
  topic floor is the highest number of any topic forgotten (-1 if none), and stands in for
  a topic not remembered;
- the last `recent` messages accepted (number and signature mark), by arrival.

A message numbered `seq` on `topic` is fresh if `seq` is above the highest, lies in a gap,
or lies at or below the low-water mark and above its topic's highest (a stream's order
holds there even where the window no longer reaches). Otherwise it is `duplicate` if it is
the same signed message as one of the last `recent` accepted or as the last one on its topic
(an MQTT QoS 1 resend, a retained message sent again on resubscribe), else `replay`. Every
accepted number stays at or below its topic's highest and leaves the gaps for good, so
nothing forgotten can make a repeat fresh: memory limits fail closed (a Will whose gap was
forgotten is refused), never open.

The state lives behind `ReplayState` (load/save per node): `MemoryState`, `FileState` (one
JSON file, `edge-agent verify --state FILE`), or a database.
"""

from __future__ import annotations

import json
import logging
import os
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.trust.envelope import DUPLICATE, REPLAY

log = logging.getLogger(__name__)

MARK_CHARS = 12  # of the base64url signature: 72 bits, ample to tell two signatures apart


@dataclass(frozen=True)
class Limits:
    """Memory per node; docs/security.md gives the bytes. `recent` must exceed the agents'
    `spool.inflight` (default 64): that many messages may be sent again after a reconnect."""

    recent: int = 256
    max_gaps: int = 1024
    max_topics: int = 1024

    def __post_init__(self) -> None:
        if min(self.recent, self.max_gaps, self.max_topics) < 1:
            raise ValueError("recent, max_gaps and max_topics must be at least 1")


@dataclass
class NodeWindow:
    """What the guard remembers of one node (see the module docstring)."""

    low_water: int = -1  # gaps at or below it are forgotten
    topic_floor: int = -1  # the highest number of any forgotten topic
    highest: int = -1
    gap_starts: list[int] = field(default_factory=list)  # sorted, disjoint, inclusive ranges
    gap_ends: list[int] = field(default_factory=list)
    topics: OrderedDict[str, tuple[int, int, str]] = field(default_factory=OrderedDict)  # highest, last seq, mark
    recent: OrderedDict[int, str] = field(default_factory=OrderedDict)  # seq -> signature mark

    def admit(self, seq: int, mark: str, topic: str, limits: Limits) -> str | None:
        known = self.topics.get(topic)
        topic_high = self.topic_floor if known is None else known[0]
        if seq > self.highest or self._take_gap(seq) or topic_high < seq <= self.low_water:
            self._accept(seq, mark, topic, topic_high, limits)
            return None
        same = self.recent.get(seq) == mark or (known is not None and known[1:] == (seq, mark))
        return DUPLICATE if same else REPLAY

    def _accept(self, seq: int, mark: str, topic: str, topic_high: int, limits: Limits) -> None:
        if seq > self.highest:
            self._add_gap(self.highest + 1, seq - 1)
            self.highest = seq
        self.topics[topic] = (max(topic_high, seq), seq, mark)
        self.topics.move_to_end(topic)
        self.recent[seq] = mark
        self.trim(limits)

    def trim(self, limits: Limits) -> None:
        """Forget what is over `limits`, so that it fails closed."""
        while len(self.topics) > limits.max_topics:
            _, (high, _, _) = self.topics.popitem(last=False)
            self.topic_floor = max(self.topic_floor, high)
        if len(self.gap_ends) > limits.max_gaps:
            self.low_water = max(self.low_water, self.gap_ends[-limits.max_gaps - 1])
            del self.gap_starts[:-limits.max_gaps], self.gap_ends[:-limits.max_gaps]
        while len(self.recent) > limits.recent:
            self.recent.popitem(last=False)

    def _add_gap(self, start: int, end: int) -> None:
        if start <= end:
            self.gap_starts.append(start)
            self.gap_ends.append(end)

    def _take_gap(self, seq: int) -> bool:
        """Remove `seq` from the gaps; False if it was not in one (seen, or forgotten)."""
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

    def as_json(self) -> dict[str, Any]:
        return {"low_water": self.low_water, "topic_floor": self.topic_floor, "highest": self.highest,
                "gaps": [[s, e] for s, e in zip(self.gap_starts, self.gap_ends)],
                "topics": [[t, *marks] for t, marks in self.topics.items()],
                "recent": [[seq, mark] for seq, mark in self.recent.items()]}

    @classmethod
    def from_json(cls, data: Any) -> NodeWindow:
        """ValueError naming the field when `data` is not what `as_json` writes."""
        names = ("low_water", "topic_floor", "highest", "gaps", "topics", "recent")
        if not isinstance(data, dict) or set(data) != set(names):
            raise ValueError(f"needs exactly {', '.join(names)}")
        window = cls(*(_number(data[name], name) for name in names[:3]))
        for start, end in _rows(data["gaps"], "gaps", (int, int)):
            if start > end or start <= (window.gap_ends[-1] if window.gap_ends else window.low_water) \
                    or end >= window.highest:
                raise ValueError("gaps: ranges must be sorted, disjoint, above low_water and below highest")
            window._add_gap(start, end)
        for topic, high, last, mark in _rows(data["topics"], "topics", (str, int, int, str)):
            window.topics[topic] = (high, last, mark)
        for seq, mark in _rows(data["recent"], "recent", (int, str)):
            window.recent[seq] = mark
        return window


def _number(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < -1:
        raise ValueError(f"{name}: must be an integer of -1 or more")
    return value


def _rows(value: Any, name: str, types: tuple[type, ...]) -> list[list[Any]]:
    ok = isinstance(value, list) and all(
        isinstance(row, list) and len(row) == len(types)
        and all(isinstance(item, kind) and not isinstance(item, bool) for item, kind in zip(row, types))
        for row in value)
    if not ok:
        raise ValueError(f"{name}: must be a list of [{', '.join(t.__name__ for t in types)}]")
    return value


class ReplayState(Protocol):
    """Where the guard keeps each node's window. `save` is called after every accepted message."""

    def load(self, node: str) -> NodeWindow | None: ...

    def save(self, node: str, window: NodeWindow) -> None: ...


class MemoryState:
    """Forgotten when the process ends: a restarted consumer starts afresh (bounded by max_age only)."""

    def __init__(self) -> None:
        self._windows: dict[str, NodeWindow] = {}

    def load(self, node: str) -> NodeWindow | None:
        return self._windows.get(node)

    def save(self, node: str, window: NodeWindow) -> None:
        self._windows[node] = window


class StateFileError(Exception):
    """A state file that cannot be used; the message names the file, the node and the field."""


STATE_FORMAT = "edge-agent replay state v1"


class FileState:
    """All nodes' windows in one JSON file, rewritten atomically (and fsynced) after every
    accepted message. A file that exists but cannot be read is refused: starting afresh
    would accept replays of everything it remembered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._windows: dict[str, NodeWindow] = {}
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise StateFileError(f"{path}: cannot read the replay state: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT or not isinstance(data.get("nodes"), dict):
            raise StateFileError(f"{path}: not a replay state file (format {STATE_FORMAT!r} with 'nodes')")
        for node, raw in data["nodes"].items():
            try:
                self._windows[node] = NodeWindow.from_json(raw)
            except ValueError as exc:
                raise StateFileError(f"{path}: node {node!r}: {exc}") from None

    def load(self, node: str) -> NodeWindow | None:
        return self._windows.get(node)

    def save(self, node: str, window: NodeWindow) -> None:
        self._windows[node] = window
        data = {"format": STATE_FORMAT, "nodes": {n: w.as_json() for n, w in self._windows.items()}}
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("wb") as out:
            out.write(json.dumps(data, separators=(",", ":")).encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a power cut
        finally:
            os.close(folder)


class ReplayGuard:
    """Remembers what it accepted; `admit` returns None (fresh) or the reason to reject."""

    def __init__(self, state: ReplayState | None = None, limits: Limits = Limits()) -> None:
        self.state: ReplayState = state or MemoryState()
        self.limits = limits
        self._windows: dict[str, NodeWindow] = {}
        self._unsaved = False

    def admit(self, node: str, seq: int, signature: str, topic: str) -> str | None:
        window = self._windows.get(node)
        if window is None:
            window = self._windows[node] = self.state.load(node) or NodeWindow()
            window.trim(self.limits)  # the limits may be lower than when it was saved
        reason = window.admit(seq, signature[:MARK_CHARS], topic, self.limits)
        if reason is None:
            self._save(node, window)
        return reason

    def _save(self, node: str, window: NodeWindow) -> None:
        try:
            self.state.save(node, window)
        except OSError as exc:
            if not self._unsaved:  # reported once per outage; the decision in memory stands
                log.error("replay state not saved node=%s error=%s: after a restart, messages accepted since "
                          "could be accepted again", node, exc)
            self._unsaved = True
            return
        if self._unsaved:
            log.info("replay state saved again node=%s", node)
        self._unsaved = False
