"""Sequence bookkeeping that tells a fresh message from a duplicate or a replay.

A sliding window per (node, session), as in IPsec anti-replay: the highest sequence seen
plus a slot per sequence in the last `window`. Messages may arrive out of order inside the
window (a spool draining after a reconnect); anything older is a replay. Memory is bounded:
`window * 8` bytes per session, `sessions_per_node` sessions per node (least recently used
go first; a forgotten session is then bounded only by the timestamp check).

Verdicts, both final (docs/security.md):
- "duplicate": this exact signed message was already accepted. An MQTT QoS 1 redelivery
  looks like this (and so does an attacker's copy: it carries nothing new). Drop it quietly.
- "replay": a sequence older than the window, or a second, different message under a
  sequence already accepted. Never a transport effect: count it and raise an alarm.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DUPLICATE = "duplicate"
REPLAY = "replay"
_MARK_BYTES = 8
_EMPTY = bytes(_MARK_BYTES)


@dataclass
class _Window:
    highest: int
    marks: bytearray  # slot seq % size: the first 8 bytes of the accepted signature text


def _mark(signature: str) -> bytes:
    # base64url text never holds NUL, so a mark is never mistaken for an empty slot.
    return signature.encode()[:_MARK_BYTES].ljust(_MARK_BYTES, b"=")


class ReplayGuard:
    """Remembers what it accepted; `admit` returns None (fresh) or the reason to reject."""

    def __init__(self, window: int = 1024, sessions_per_node: int = 4) -> None:
        if window < 1 or sessions_per_node < 1:
            raise ValueError("window and sessions_per_node must be at least 1")
        self.window = window
        self.sessions_per_node = sessions_per_node
        self._nodes: dict[str, OrderedDict[str, _Window]] = {}

    def admit(self, node: str, session: str, seq: int, signature: str) -> str | None:
        sessions = self._nodes.setdefault(node, OrderedDict())
        state = sessions.get(session)
        mark = _mark(signature)
        if state is None:
            state = _Window(seq, bytearray(self.window * _MARK_BYTES))
            self._set(state, seq, mark)
            sessions[session] = state
            if len(sessions) > self.sessions_per_node:
                sessions.popitem(last=False)
            return None
        sessions.move_to_end(session)
        if seq > state.highest:
            for gone in range(state.highest + 1, min(seq, state.highest + self.window + 1)):
                self._set(state, gone, _EMPTY)
            state.highest = seq
            self._set(state, seq, mark)
            return None
        if seq <= state.highest - self.window:
            return REPLAY
        slot = self._get(state, seq)
        if slot == _EMPTY:
            self._set(state, seq, mark)
            return None
        return DUPLICATE if slot == mark else REPLAY

    def _set(self, state: _Window, seq: int, mark: bytes) -> None:
        at = (seq % self.window) * _MARK_BYTES
        state.marks[at:at + _MARK_BYTES] = mark

    def _get(self, state: _Window, seq: int) -> bytes:
        at = (seq % self.window) * _MARK_BYTES
        return bytes(state.marks[at:at + _MARK_BYTES])
